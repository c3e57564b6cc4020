"""The benchmark instruments: log-log fits recover known exponents, the per-device byte
accounting follows the shardings, the contrastive loss's memory grows as its layout says,
and each script's smoke run writes a report whose figures agree with each other.

The scripts are run as the lead runs them (`python benchmarks/<name>.py --smoke`), in a
subprocess; their helpers are imported the way the scripts import each other.
"""

import json
import math
import os
import statistics
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import common  # noqa: E402
import memory  # noqa: E402
import scaling  # noqa: E402

from audiolm_pt.train import mfu  # noqa: E402
from audiolm_pt.train.build import TEXT_TOWER  # noqa: E402

META_KEYS = {
    "date",
    "command",
    "git_commit",
    "jax",
    "jaxlib",
    "platform",
    "device_kind",
    "device_count",
    "xla_flags",
    "cpu_count",
    "load_avg_start",
    "load_avg_end",
    "wall_s",
}


def run_script(name: str, tmp_path: Path, *flags: str, devices: int = 1) -> dict:
    out = tmp_path / f"{name}.json"
    env = {
        **os.environ,
        "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}",
        "JAX_PLATFORMS": "cpu",
    }
    cmd = [sys.executable, str(ROOT / "benchmarks" / f"{name}.py"), "--smoke", f"--out={out}"]
    done = subprocess.run([*cmd, *flags], env=env, capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text())
    assert set(report["meta"]) >= META_KEYS
    assert len(report["meta"]["load_avg_start"]) == len(report["meta"]["load_avg_end"]) == 3
    assert report["meta"]["device_count"] == devices
    return report


def test_fit_loglog_recovers_known_exponents():
    xs = np.array([8, 16, 32, 64, 128], float)
    for slope in (0.5, 1.0, 2.0):
        fit = common.fit_loglog(xs, 3e-3 * xs**slope)
        assert fit["slope"] == pytest.approx(slope, abs=1e-9)
        assert fit["intercept"] == pytest.approx(math.log(3e-3), abs=1e-9)
        assert fit["r2"] == pytest.approx(1.0)
    # Timings with 5% multiplicative noise still give the exponent to a few hundredths.
    noise = np.random.default_rng(0).normal(1.0, 0.05, xs.size)
    noisy = common.fit_loglog(xs, 2.0 * xs**1.5 * noise)
    assert noisy["slope"] == pytest.approx(1.5, abs=0.05)
    assert 0.98 < noisy["r2"] < 1.0
    with pytest.raises(ValueError, match="two or more"):
        common.fit_loglog([1.0], [1.0])


def test_scaling_fits_each_sweep_against_its_flops():
    """Timings from a known cost model: batch^1 * frames^1.3 * tokens^0.2, with FLOPs that
    grow as batch^1 * frames^1.1 * tokens^0.2."""
    base = (16, 500, 32)
    sweeps = {"batch": (8, 16, 32, 64), "frames": (250, 500, 1000), "tokens": (16, 32, 64)}
    shapes = scaling.sweep_shapes(base, sweeps)
    assert len(shapes) == len(set(shapes)) == 4 + 2 + 2
    points = [
        {
            "shape": list(s),
            "step_s": 1e-6 * s[0] * s[1] ** 1.3 * s[2] ** 0.2,
            "flops": 1e3 * s[0] * s[1] ** 1.1 * s[2] ** 0.2,
        }
        for s in shapes
    ]
    fits = scaling.fit_sweeps(points, base, sweeps)
    assert fits["batch"]["values"] == [8, 16, 32, 64]
    assert fits["frames"]["values"] == [250, 500, 1000]
    assert fits["batch"]["time_slope"] == pytest.approx(1.0)
    assert fits["frames"]["time_slope"] == pytest.approx(1.3)
    assert fits["frames"]["flops_slope"] == pytest.approx(1.1)
    assert fits["tokens"]["time_slope"] == pytest.approx(0.2)
    assert fits["batch"]["verdict"] == "linear, as the FLOPs predict"
    assert fits["frames"]["verdict"] == "super-linear, steeper than the FLOPs (1.10)"
    assert fits["tokens"]["verdict"] == "sub-linear, as the FLOPs predict"


def test_matmul_peak_per_device_counts_each_devices_matmul():
    devices = jax.devices()[:2]
    per_device, flops = mfu.matmul_peak_per_device("float32", 64, 2, devices)
    assert flops == 2 * 64**3
    best, by_size = mfu.best_matmul_peak("float32", (32, 64), 2, devices)
    assert set(by_size) == {32, 64}
    assert best == max(by_size.values()) > 0
    assert per_device > 0


def test_sustained_matmul_rate_counts_matmuls_over_the_window(monkeypatch):
    # A clock that advances 0.3 s per reading: the window closes at the fourth reading,
    # after three matmuls, 1.2 s from the start.
    clock = iter(0.3 * i for i in range(100))
    monkeypatch.setattr(mfu.time, "perf_counter", lambda: next(clock))
    rate = mfu.sustained_matmul_rate("float32", 64, 1.0, jax.devices()[:2])
    assert rate == pytest.approx(2 * 64**3 * 3 / 1.2)


def _replicated_bytes(abstract, shardings) -> int:
    leaves, specs = jax.tree.leaves(abstract), jax.tree.leaves(shardings)
    return sum(
        math.prod(x.shape) * x.dtype.itemsize
        for x, s in zip(leaves, specs, strict=True)
        if s.is_fully_replicated
    )


def _trainable_bytes(params, text_locked: bool) -> int:
    return sum(
        x.size * x.dtype.itemsize
        for path, x in jax.tree_util.tree_flatten_with_path(params)[0]
        if not (text_locked and TEXT_TOWER in jax.tree_util.keystr(path))
    )


def test_state_bytes_per_device_follow_the_shardings():
    """Under FSDP an array is either split N ways or replicated, so the bytes a device holds
    are total/N plus (N-1)/N of the replicated ones; data-parallel holds everything; AdamW
    keeps two moments per trainable parameter (none for the demo's locked text tower)."""
    case = common.make_case("demo:contrastive,tiny", 8, 64, 8)
    for n in (2, 8):
        devices = jax.devices()[:n]
        trainer = common.trainer_for(case, devices, memory.mesh_values("fsdp", n))
        fsdp = memory.state_bytes(trainer)
        dp = memory.state_bytes(common.trainer_for(case, devices, memory.mesh_values("dp", n)))
        params = fsdp["params_bytes_total"]
        assert dp["params_bytes_total"] == params
        assert dp["params_bytes_per_device"] == params
        assert dp["opt_state_bytes_per_device"] == dp["opt_state_bytes_total"]
        trainable = _trainable_bytes(trainer.abstract["params"], case.model.text.locked)
        assert (trainable < params) == case.model.text.locked
        assert 2 * trainable <= fsdp["opt_state_bytes_total"] <= 2 * trainable + 64
        for key in ("params", "opt_state"):
            total = fsdp[f"{key}_bytes_total"]
            replicated = _replicated_bytes(trainer.abstract[key], trainer.shardings[key])
            assert replicated < total / n
            expected = (total - replicated) / n + replicated
            assert fsdp[f"{key}_bytes_per_device"] == pytest.approx(expected, abs=0.5)


def test_contrastive_loss_memory_is_linear_sharded_and_quadratic_gathered():
    out = memory.loss_memory(jax.devices(), (1, 2, 4, 8), per_device_batch=64, dim=32)
    fits = out["fits"]
    assert fits["sharded"]["slope"] < 1.3
    assert fits["sharded_chunked"]["slope"] < 1.3
    assert fits["unsharded"]["slope"] > 1.8
    last = {p["variant"]: p for p in out["points"] if p["devices"] == 8}
    assert last["unsharded"]["logits_bytes"] == 512 * 512 * 4
    assert last["sharded"]["logits_bytes"] == 64 * 512 * 4
    # The gathered layout holds at least its [B, B] logits; the sharded one far less.
    assert last["unsharded"]["temp_bytes"] >= 512 * 512 * 4
    assert last["sharded"]["temp_bytes"] < last["unsharded"]["temp_bytes"] / 4


@pytest.mark.slow
def test_train_step_smoke_report_is_consistent(tmp_path):
    report = run_script("train_step", tmp_path)
    assert report["failed"] == []
    (row,) = report["rows"]
    used = report["peak"]["used_flops_per_device"]
    assert len(report["peak"]["measured"]) == 2  # before the config and at the end
    assert used == max(v for m in report["peak"]["measured"] for v in m["by_size"].values())
    batch, flops, n = row["batch"], row["flops_per_step"], row["devices"]
    step_s, device_s = row["loop"]["step_s"], row["device_step_s"]
    assert (batch, row["frames"], row["tokens"]) == (4, 64, 8)
    assert row["steps_per_s"] == pytest.approx(1 / step_s)
    assert row["examples_per_s"] == pytest.approx(batch / step_s)
    assert row["tflops_per_device"] == pytest.approx(flops / step_s / n / 1e12)
    assert row["mfu_measured"] == pytest.approx(flops / step_s / n / used)
    assert device_s == pytest.approx(statistics.median(row["device_step_s_all"]))
    assert row["device"]["mfu_measured"] == pytest.approx(flops / device_s / n / used)
    assert row["host_overhead_s"] == pytest.approx(step_s - device_s)
    assert sum(row["mfu_budget"].values()) == pytest.approx(1.0)
    paired = row["device_paired"]
    assert len(paired["rounds"]) == 2
    for r in paired["rounds"]:
        assert r["mfu"] == pytest.approx(flops / r["step_s"] / n / r["peak"])
    assert paired["mfu"] == pytest.approx(statistics.median(r["mfu"] for r in paired["rounds"]))
    # The compiler's FLOP count of the same step agrees with the analytic one within 35%
    # (elementwise work weighs more at this tiny shape than at real ones).
    assert 0.9 < row["xla_over_analytic"] < 1.35


@pytest.mark.slow
def test_memory_smoke_report_fsdp_and_loss(tmp_path):
    report = run_script("memory", tmp_path)
    assert report["errors"] == []
    rows = {(r["devices"], r["mesh"]): r for r in report["rows"]}
    assert set(rows) == {(1, "dp"), (1, "fsdp"), (2, "dp"), (2, "fsdp")}
    assert rows[(1, "fsdp")]["same_as"] == "dp"
    assert rows[(2, "dp")]["params_opt_over_total_per_n"] == pytest.approx(2.0)
    assert 1.0 <= rows[(2, "fsdp")]["params_opt_over_total_per_n"] <= 1.15
    for r in report["rows"]:
        assert r["peak_bytes_estimate"] == (
            r["argument_bytes"] + r["output_bytes"] - r["alias_bytes"] + r["temp_bytes"]
        )
    assert [s["within_15_percent"] for s in report["fsdp"]] == [True, True]
    assert set(report["loss"]["fits"]) == set(memory.LOSS_VARIANTS)


@pytest.mark.slow
def test_scaling_smoke_report_slopes_match_its_points(tmp_path):
    report = run_script("scaling", tmp_path)
    assert report["failed"] == []
    (config,) = report["configs"]
    assert len(config["points"]) == len(
        scaling.sweep_shapes((4, 64, 8), {"batch": (2, 4), "frames": (32, 64), "tokens": (8, 16)})
    )
    for fit in config["fits"].values():
        slope = np.polyfit(np.log(fit["values"]), np.log(fit["step_s"]), 1)[0]
        assert fit["time_slope"] == pytest.approx(slope)


@pytest.fixture(scope="module")
def demo_tfds(tmp_path_factory):
    """A 10-clip corpus in the demo format, built as TFDS `demo` without waveforms."""
    import soundfile as sf

    from audiolm_pt.data.builders.tfds_builder import build_dataset

    root = tmp_path_factory.mktemp("bench_demo")
    src, rate, rows = root / "corpus", 16000, []
    rng = np.random.default_rng(0)
    for i in range(10):
        rel = f"audio/clip{i}.flac"
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        t = np.arange(rate) / rate
        wave = 0.3 * np.sin(2 * np.pi * rng.uniform(200, 2000) * t) + 0.01 * rng.normal(size=rate)
        sf.write(src / rel, wave.astype(np.float32), rate)
        rows.append(
            {
                "id": f"clip{i}",
                "split": "train",
                "audio": rel,
                "domain": "music",
                "duration": 1.0,
                "sample_rate": rate,
                "captions": [{"text": f"a soft tone number {i}", "style": "short"}],
                "labels": {"domain": "music"},
            }
        )
    (src / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    build_dataset(str(src), str(root / "tfds"), format="demo", name="demo")
    return root / "tfds"


@pytest.mark.slow
def test_input_pipeline_smoke_compares_with_the_step(tmp_path, demo_tfds):
    report = run_script("input_pipeline", tmp_path, f"--data_dir={demo_tfds}", "--compare_step")
    # No stored waveforms: only the stored-feature pipeline can run.
    assert [(r["pipeline"], r["workers"]) for r in report["rows"]] == [("grain/stored", 0)]
    assert [r["round"] for r in report["rounds"]] == [0]
    (row,) = report["compare_step"]
    assert row["config"] == "demo:contrastive,tiny"
    assert row["pipeline_workers"] == 1  # configs/demo.py's setting
    assert row["ratio"] == pytest.approx(
        row["pipeline_examples_per_s"] / row["step_examples_per_s"]
    )


@pytest.mark.slow
def test_frontend_cost_smoke_report_covers_every_path(tmp_path):
    report = run_script("frontend_cost", tmp_path)
    rows = {(r["frontend"], r["features"]): r for r in report["rows"]}
    assert set(rows) == {(f, s) for f in ("fbank", "log_mel") for s in ("stored", "host", "device")}
    for (frontend, source), row in rows.items():
        assert row["skipped"] == {}
        assert row["host_cpu_s_per_example"] > 0
        host = rows[(frontend, "host")]["host_cpu_s_per_example"]
        assert row["host_cpu_vs_host_path"] == pytest.approx(row["host_cpu_s_per_example"] / host)
        # Only the device path has a device half, and its batches carry int16 samples.
        assert ("device_s_per_example" in row) == (source == "device")
    assert report["frontend_options"]["log_mel"]["log_mel"]["n_mels"] == 80


@pytest.mark.slow
def test_gpu_check_smoke_runs_the_bf16_step_on_cpu(tmp_path):
    """`benchmarks/gpu_check.sh --smoke`: the GPU check's own path (its installs skipped when
    everything imports) at toy size in bfloat16 with float32 parameters."""
    out = tmp_path / "gpu_check.json"
    env = {
        **os.environ,
        "PYTHON": sys.executable,
        "GPU_CHECK_OUT": str(out),
        "XLA_FLAGS": "--xla_force_host_platform_device_count=1",
        "JAX_PLATFORMS": "cpu",
    }
    script = ROOT / "benchmarks" / "gpu_check.sh"
    done = subprocess.run(["bash", str(script), "--smoke"], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["failed"] == []
    assert report["peak"]["dtype"] == "bfloat16"
    (row,) = report["rows"]
    assert row["dtype"] == "bfloat16"
    assert 0 < row["mfu_measured"] <= 1.5  # a noisy CPU peak, but a real ratio
    bad = subprocess.run(["bash", str(script), "--fast"], env=env, capture_output=True, text=True)
    assert bad.returncode == 2
    assert "--fast" in bad.stderr


def test_config_specs_split_and_take_overrides():
    specs = common.split_specs("demo:contrastive,wide+model.audio.token_keep=0.5,hybrid:small")
    assert specs == ["demo:contrastive,wide+model.audio.token_keep=0.5", "hybrid:small"]
    config = common.load_config(specs[0])
    assert config.model.audio.token_keep == 0.5
    assert config.model.audio.transformer.width == 256  # the arg still applies
    with pytest.raises(ValueError, match=r"model\.audio\.no_such_key"):
        common.load_config("demo:contrastive+model.audio.no_such_key=1")


@pytest.mark.slow
def test_peer_torch_smoke_report_is_consistent(tmp_path):
    """`benchmarks/peer_torch.py --smoke`: the FLOP check, the agreement check and the rounds'
    ratios agree with the times they come from."""
    report = run_script("peer_torch", tmp_path)
    (row,) = report["rows"]
    assert row["flops"]["ratio"] == 1.0
    assert row["agreement"]["loss_abs_diff"] < 1e-5
    for r in row["rounds"]:
        assert set(r["order"]) == {"ours", "torch_eager", "torch_compile"}
    ratios = [min(r["torch_eager"], r["torch_compile"]) / r["ours"] for r in row["rounds"]]
    assert row["ours_over_best_torch"]["per_round"] == pytest.approx(ratios)
    assert report["peak_flops"] == max(max(p.values()) for p in report["peaks"])
    for mode in row["modes"].values():
        assert mode["peak_fraction"] == pytest.approx(
            row["train_flops_per_step"] / mode["step_s"] / report["peak_flops"]
        )
    assert set(row["where_time_goes"]) == {"audio_front_end", "audio_encoder"}
