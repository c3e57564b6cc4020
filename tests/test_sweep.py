"""Sweeps: grid and arg helpers, start-up checks naming point and key, local runs (skip when
done, failures recorded while the rest goes on, dependency skips, retries, templates), emitted
SLURM and TPU scripts executed against fake launchers, and the data-scaling study file."""

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest
import soundfile as sf

from audiolm_pt import experiment
from audiolm_pt.sweep import SweepError, grid, load_sweep, parse_arg
from audiolm_pt.sweep.__main__ import main as sweep_main
from audiolm_pt.sweep.emit import emit
from audiolm_pt.sweep.local import run_local
from audiolm_pt.sweep.spec import check, load_config, order, parse_sweep
from configs.sweeps.data_scaling_demo import FRACTIONS, SEEDS, STEPS

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO = "configs/demo.py:contrastive,tiny"

# Stands in for the interpreter: `fake.py -m MODULE --flags`. Records every call; training
# fails with status 3 when --config.seed=13 unless the point dir holds a file named `allow`;
# with --config.seed=7 it waits for SIGTERM, records it and exits 0 (as the trainer does).
FAKE_PYTHON = textwrap.dedent(
    """
    import json, os, signal, sys, time
    module, args = sys.argv[2], sys.argv[3:]
    flags = dict(a[2:].split("=", 1) for a in args)
    workdir = flags["workdir"]
    os.makedirs(workdir, exist_ok=True)
    with open(os.path.join(workdir, "calls.jsonl"), "a") as f:
        f.write(json.dumps([module, flags]) + "\\n")
    with open(os.path.join(workdir, "jax_cache_dirs.txt"), "a") as f:
        f.write(os.environ.get("JAX_COMPILATION_CACHE_DIR", "unset") + "\\n")
    print("fake", module, "in", workdir)
    if module == "audiolm_pt.main" and flags.get("config.seed") == "13":
        if not os.path.exists(os.path.join(workdir, "allow")):
            print("boom: seed 13 is unlucky")
            sys.exit(3)
    if module == "audiolm_pt.main" and flags.get("config.seed") == "7":
        def stop(signum, frame):
            print("SIGTERM: saved, stopping", flush=True)
            sys.exit(0)
        signal.signal(signal.SIGTERM, stop)
        open(os.path.join(workdir, "started"), "w").close()
        time.sleep(60)
    """
)


def _point(name, **kw):
    return {"name": name, "config": DEMO, **kw}


def _toy_sweep():
    return parse_sweep(
        {
            "name": "toy",
            "points": [
                _point(
                    "a",
                    overrides={"seed": 1},
                    evals=["linear_probe"],
                    eval_flags={"limit": 50},
                    tags={"x": 1},
                ),
                _point("b", overrides={"seed": 13}, tags={"x": 2}),
                _point("c", after=["b"]),
                _point(
                    "d",
                    after=["a"],
                    overrides={
                        "checkpoint.init_from": "{point_dir:a}/checkpoints",
                        "data.data_dir": "{root}/tfds",
                        "data.tfds_names": ("demo", "other"),
                        "checkpoint.async_save": False,
                    },
                ),
            ],
        }
    )


@pytest.fixture
def fake_python(tmp_path):
    path = tmp_path / "fake.py"
    path.write_text(FAKE_PYTHON)
    return [sys.executable, str(path)]


def _calls(root, name):
    path = os.path.join(root, name, "calls.jsonl")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f]


def _point_file(root, name):
    with open(os.path.join(root, name, "sweep_point.json")) as f:
        return json.load(f)


# ----------------------------------------------------------------------------- helpers


def test_grid_is_the_product_of_the_axes_with_tags():
    points = grid(
        {"f": (0.1, 1.0), "obj": ("c", "h")},
        lambda v: {"name": f"{v['obj']}{v['f']}", "tags": {"extra": 1}},
    )
    assert [p["name"] for p in points] == ["c0.1", "h0.1", "c1.0", "h1.0"]
    assert points[1]["tags"] == {"f": 0.1, "obj": "h", "extra": 1}


def test_parse_arg_types_values_from_the_defaults():
    defaults = {"steps": 600, "fractions": (0.1, 0.3), "name": "x", "fast": False}
    assert parse_arg(None, defaults) == defaults
    assert parse_arg("steps=5,fractions=0.5+1,fast=true,name=a b", defaults) == {
        "steps": 5,
        "fractions": (0.5, 1.0),
        "name": "a b",
        "fast": True,
    }
    with pytest.raises(SweepError, match="'stepz=5'"):
        parse_arg("stepz=5", defaults)
    with pytest.raises(SweepError, match="steps='many'"):
        parse_arg("steps=many", defaults)


def test_order_puts_dependencies_first():
    sweep = parse_sweep(
        {"name": "s", "points": [_point("late", after=["early"]), _point("early"), _point("z")]}
    )
    assert [p.name for p in order(sweep)] == ["early", "late", "z"]


# ----------------------------------------------------------------------------- checks


@pytest.mark.parametrize(
    ("points", "message"),
    [
        ([_point("a"), _point("a")], "point 'a': duplicate name"),
        ([_point("a", after=["nope"])], "point 'a': after: unknown point 'nope'"),
        (
            [_point("a", after=["b"]), _point("b", after=["a"])],
            "point 'a': after: dependency cycle a -> b -> a",
        ),
        ([_point("a", overides={})], "point 'a': unknown config key 'overides'"),
        ([_point("a/b")], "point 'a/b': name must match"),
        (
            [_point("a", overrides={"checkpoint.init_from": "{point_dir:ghost}/c"})],
            r"point 'a': overrides.checkpoint.init_from: \{point_dir:ghost\}",
        ),
    ],
)
def test_structure_errors_name_point_and_key(points, message):
    with pytest.raises(SweepError, match=message):
        parse_sweep({"name": "s", "points": points})


@pytest.mark.parametrize(
    ("point", "message"),
    [
        (
            _point("a", overrides={"data.pipeline.data_fractoin": 0.5}),
            "point 'a': overrides.data.pipeline.data_fractoin: the config has no key "
            "'data_fractoin'",
        ),
        (
            _point("a", overrides={"optimizer.nope.deeper": 1}),
            "point 'a': overrides.optimizer.nope.deeper: the config has no key 'nope'",
        ),
        (_point("a", overrides={"train.num_steps": "many"}), "point 'a': overrides.train"),
        (
            _point("a", overrides={"data.pipeline.data_fraction": 2.0}),
            "point 'a': data.pipeline.data_fraction: must be in (0, 1]",
        ),
        (_point("a", config="configs/nope.py"), "point 'a': config configs/nope.py"),
        (_point("a", evals=["probe"]), "point 'a': evals: unknown evaluator 'probe'"),
        (
            _point("a", evals=["linear_probe"], eval_options={"linear_probe": {"pool": 1}}),
            "point 'a': eval_options.linear_probe.pool: unknown option",
        ),
        (
            _point("a", evals=["retrieval"], eval_options={"captioning": {}}),
            "point 'a': eval_options.captioning: evaluator not in evals",
        ),
        (
            _point("a", evals=["retrieval"], eval_flags={"limt": 5}),
            "point 'a': eval_flags.limt: python -m audiolm_pt.evaluate: error: unrecognized",
        ),
        (
            _point("a", evals=["retrieval"], eval_flags={"limit": "many"}),
            "point 'a': eval_flags.limit: python -m audiolm_pt.evaluate: error: argument --limit",
        ),
        (
            _point("a", evals=["retrieval"], eval_flags={"workdir": "/x"}),
            "point 'a': eval_flags.workdir: set by the sweep from the point",
        ),
    ],
)
def test_config_errors_name_point_and_key(point, message):
    sweep = parse_sweep({"name": "s", "points": [_point("ok"), point]})
    with pytest.raises(SweepError, match=re.escape(message)):
        check(sweep, "/runs")


def test_a_good_sweep_passes_the_checks():
    check(_toy_sweep(), "/runs")


def test_command_line_reports_a_bad_sweep_file(tmp_path, capsys):
    sweep_file = tmp_path / "bad.py"
    sweep_file.write_text(
        "def get_sweep(arg):\n"
        f"    return {{'name': 'b', 'points': [{{'name': 'p', 'config': {DEMO!r},"
        " 'overrides': {'train.num_stepz': 1}}]}\n"
    )
    assert sweep_main([f"--sweep={sweep_file}", f"--root={tmp_path / 'r'}"]) == 2
    assert "point 'p': overrides.train.num_stepz" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()  # nothing ran
    assert sweep_main([f"--sweep={sweep_file}", "--root=r", "--emit=tpu", "--only=p"]) == 2


# ----------------------------------------------------------------------------- local runs


def test_local_run_records_skips_retries_and_resolves_templates(tmp_path, fake_python, capsys):
    root = str(tmp_path / "runs")
    sweep = _toy_sweep()
    status = run_local(sweep, root, python=fake_python)
    assert {n: s["status"] for n, s in status.items()} == {
        "a": "done",
        "b": "failed",
        "c": "skipped",
        "d": "done",
    }
    assert status["b"]["reason"] == "train exited with status 3"
    assert status["c"]["reason"] == "dependency b failed"
    # a trained then was evaluated; b failed in training and was not evaluated.
    assert [m for m, _ in _calls(root, "a")] == ["audiolm_pt.main", "audiolm_pt.evaluate"]
    assert [m for m, _ in _calls(root, "b")] == ["audiolm_pt.main"]
    assert _calls(root, "c") == []
    (_, flags), *_ = _calls(root, "d")
    assert flags["config.checkpoint.init_from"] == f"{root}/a/checkpoints"
    assert flags["config.data.data_dir"] == f"{root}/tfds"
    assert flags["config.data.tfds_names"] == "('demo', 'other')"
    assert flags["config.checkpoint.async_save"] == "false"
    assert flags["workdir"] == f"{root}/d"
    (_, eval_flags) = _calls(root, "a")[1]
    assert eval_flags == {"workdir": f"{root}/a", "evals": "linear_probe", "limit": "50"}

    b = _point_file(root, "b")
    assert b["status"] == "failed"
    assert "boom: seed 13 is unlucky" in b["log_tail"]
    assert b["tags"] == {"x": 2}
    assert b["sweep"] == "toy"
    assert b["attempts"] == 1
    assert b["start_time"] <= b["end_time"]
    assert shlex.split(b["commands"][0])[-1] == "--config.seed=13"
    assert b["git"]["commit"] is None or re.fullmatch(r"[0-9a-f]{40}", b["git"]["commit"])
    assert "boom" in (tmp_path / "runs" / "b" / "log.txt").read_text()
    d = _point_file(root, "d")
    assert d["overrides"]["checkpoint.init_from"] == f"{root}/a/checkpoints"
    assert "log_tail" not in d
    with open(os.path.join(root, "sweep_status.json")) as f:
        recorded = json.load(f)
    assert recorded["counts"] == {"done": 2, "failed": 1, "skipped": 1}
    assert recorded["points"]["c"] == {"status": "skipped", "reason": "dependency b failed"}

    # Re-run: done points are skipped, the failed one is retried (and fails again).
    status = run_local(sweep, root, python=fake_python)
    assert len(_calls(root, "a")) == 2  # unchanged
    assert len(_calls(root, "b")) == 2
    assert _point_file(root, "b")["attempts"] == 2
    assert status["c"]["status"] == "skipped"
    # Once b can succeed, b and then c run; --only limits a run to the points named.
    open(os.path.join(root, "b", "allow"), "w").close()
    status = run_local(sweep, root, python=fake_python, only=["c"])
    assert status["c"] == {"status": "skipped", "reason": "dependency b failed"}
    status = run_local(sweep, root, python=fake_python, only=["b*", "c"])
    assert {n: s["status"] for n, s in status.items()} == dict.fromkeys("abcd", "done")
    assert "[a] done, skipped" in capsys.readouterr().out
    with pytest.raises(SweepError, match="--only=zz"):
        run_local(sweep, root, python=fake_python, only=["zz"])


def test_points_share_a_compilation_cache_unless_one_is_given(tmp_path, fake_python, monkeypatch):
    def cache_dirs(root):
        return (tmp_path / root / "a" / "jax_cache_dirs.txt").read_text().split()

    monkeypatch.delenv("JAX_COMPILATION_CACHE_DIR", raising=False)
    run_local(_toy_sweep(), str(tmp_path / "r1"), python=fake_python, only=["a"])
    assert cache_dirs("r1") == [str(tmp_path / "r1" / "jax_cache")] * 2  # train, evaluate
    monkeypatch.setenv("JAX_COMPILATION_CACHE_DIR", str(tmp_path / "mine"))
    run_local(_toy_sweep(), str(tmp_path / "r2"), python=fake_python, only=["a"])
    assert cache_dirs("r2") == [str(tmp_path / "mine")] * 2


def test_dry_run_prints_commands_and_writes_nothing(tmp_path, fake_python, capsys):
    root = str(tmp_path / "runs")
    status = run_local(_toy_sweep(), root, python=fake_python, dry_run=True)
    assert {s["status"] for s in status.values()} == {"pending"}
    out = capsys.readouterr().out
    commands = [shlex.split(line) for line in out.splitlines() if not line.startswith("#")]
    assert len(commands) == 5  # a (train, evaluate), b, c, d
    assert commands[0][2:4] == ["-m", "audiolm_pt.main"]
    assert f"--workdir={root}/a" in commands[0]
    assert not os.path.exists(root)


@pytest.fixture
def ctrl_c_raises():
    """SIGINT raising KeyboardInterrupt, as in a terminal: a process started in the background
    by a non-interactive shell inherits SIGINT ignored, and Python then leaves it so."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.mark.usefixtures("ctrl_c_raises")
def test_ctrl_c_stops_the_running_point_cleanly_and_a_rerun_retries_it(tmp_path, fake_python):
    root = str(tmp_path / "runs")
    sweep = parse_sweep(
        {"name": "s", "points": [_point("slow", overrides={"seed": 7}), _point("next")]}
    )
    started = tmp_path / "runs" / "slow" / "started"

    def interrupt_once_started():
        deadline = time.monotonic() + 30
        while not started.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGINT)  # what Ctrl-C does to this process

    threading.Thread(target=interrupt_once_started, daemon=True).start()
    with pytest.raises(KeyboardInterrupt):
        run_local(sweep, root, python=fake_python)
    slow = _point_file(root, "slow")
    assert (slow["status"], slow["reason"]) == ("interrupted", "train interrupted")
    assert "SIGTERM: saved, stopping" in slow["log_tail"]
    assert not os.path.exists(os.path.join(root, "next"))  # the sweep stopped
    with open(os.path.join(root, "sweep_status.json")) as f:
        assert json.load(f)["counts"] == {"interrupted": 1}
    started.unlink()
    threading.Thread(target=interrupt_once_started, daemon=True).start()
    with pytest.raises(KeyboardInterrupt):
        run_local(sweep, root, python=fake_python)
    assert _point_file(root, "slow")["attempts"] == 2  # retried, not skipped


@pytest.mark.slow
def test_real_trainer_points_and_encoder_init(tmp_path, monkeypatch):
    """Two 2-step synthetic-data runs through the real trainer, the second initialised from
    the first's encoder (about a minute on 2 cores)."""
    synthetic = {
        "data.source": "synthetic",
        "train.num_steps": 2,
        "train.log_every": 1,
        "optimizer.warmup_steps": 0,
        "evals.heldout_loss.every_steps": 100,
    }
    sweep = parse_sweep(
        {
            "name": "real",
            "points": [
                _point("first", overrides=synthetic),
                _point(
                    "second",
                    after=["first"],
                    overrides={
                        **synthetic,
                        "checkpoint.init_from": "{point_dir:first}/checkpoints",
                        "checkpoint.init_mode": "encoder",
                    },
                ),
            ],
        }
    )
    root = str(tmp_path)
    check(sweep, root)
    monkeypatch.chdir(REPO)  # the trainer finds configs/ from its working directory
    status = run_local(sweep, root)
    assert {n: s["status"] for n, s in status.items()} == {"first": "done", "second": "done"}
    log = (tmp_path / "second" / "log.txt").read_text()
    assert "train state from init_from at step 0" in log
    with open(os.path.join(root, "second", "metrics.jsonl")) as f:
        assert [json.loads(line)["step"] for line in f] == [1, 2]


# ----------------------------------------------------------------------------- emitted scripts


def _fake_bin(directory, name, body):
    path = directory / name
    path.write_text("#!/usr/bin/env bash\n" + body)
    path.chmod(0o755)
    return path


def test_emitted_slurm_script_chains_jobs_by_id(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "sbatch.log"
    # A fake sbatch: logs its arguments (one JSON list per call), prints ids 101, 102, ...
    _fake_bin(
        bin_dir,
        "sbatch",
        f"""n=$(( $(cat {log} 2>/dev/null | wc -l) + 101 ))
{sys.executable} -c 'import json, sys; print(json.dumps(sys.argv[1:]))' "$@" >> {log}
echo "$n;cluster"
""",
    )
    root = str(tmp_path / "runs")
    script = tmp_path / "launch.sh"
    script.write_text(emit(_toy_sweep(), root, "slurm", repo=str(tmp_path)))
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "SBATCH_ARGS": "--nodes=2"}
    done = subprocess.run(["bash", str(script)], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    # Order: a (train 101, eval 102), b (103), c (104, after b), d (105, after a).
    assert [c[c.index("launch/slurm_gpu.sbatch") + 2] for c in calls if _trains(c)] == [
        f"--workdir={root}/{n}" for n in "abcd"
    ]
    a_train, a_eval, b_train, c_train, d_train = calls
    assert a_train[:2] == ["--parsable", "--nodes=2"]
    assert "--dependency=afterok:101" in a_eval
    assert "--dependency=afterok:103" in c_train
    assert "--dependency=afterok:101" in d_train
    assert not any(a.startswith("--dependency") for a in a_train + b_train)
    assert a_train[a_train.index("launch/slurm_gpu.sbatch") + 1 :] == [
        f"--config={DEMO}",
        f"--workdir={root}/a",
        "--config.seed=1",
    ]
    assert f"--config.checkpoint.init_from={root}/a/checkpoints" in d_train
    assert "--config.data.tfds_names=('demo', 'other')" in d_train
    wrap = next(a for a in a_eval if a.startswith("--wrap="))[len("--wrap=") :]
    assert shlex.split(wrap)[1:] == [
        "-m",
        "audiolm_pt.evaluate",
        f"--workdir={root}/a",
        "--evals=linear_probe",
        "--limit=50",
    ]
    assert f"--output={root}/a/slurm-%j.out" in a_train
    assert os.path.isdir(os.path.join(root, "d"))  # SLURM needs the output directory
    assert "d: job 105" in done.stdout


def _trains(call):
    return "launch/slurm_gpu.sbatch" in call


def test_emitted_tpu_script_runs_in_order_and_skips_after_a_failure(tmp_path):
    repo = tmp_path / "repo"
    (repo / "launch").mkdir(parents=True)
    log = tmp_path / "calls.log"
    # Fake pod launcher and interpreter: log their arguments; the launcher fails for point b.
    (repo / "launch" / "tpu_pod.sh").write_text(
        f'echo "pod $*" >> {log}\n[[ "$*" != *"--workdir=gs://bucket/runs/b"* ]]\n'
    )
    python = _fake_bin(tmp_path, "python", f'echo "python $*" >> {log}\n')
    script = tmp_path / "launch.sh"
    script.write_text(emit(_toy_sweep(), "gs://bucket/runs", "tpu", repo=str(repo)))
    env = {**os.environ, "TPU_NAME": "pod1", "TPU_ZONE": "z1", "PYTHON": str(python)}
    done = subprocess.run(["bash", str(script)], capture_output=True, text=True, env=env)
    assert done.returncode == 1
    assert "c: skipped, a dependency failed" in done.stderr
    assert "failed: " in done.stderr
    lines = log.read_text().splitlines()
    assert [line.split()[0] for line in lines] == ["pod", "python", "pod", "pod"]
    assert lines[0].startswith("pod --name=pod1 --zone=z1 -- --config=configs/demo.py:contrastive")
    assert "--workdir=gs://bucket/runs/b" in lines[2]
    assert "--config.checkpoint.init_from=gs://bucket/runs/a/checkpoints" in lines[3]
    assert lines[1] == (
        "python -m audiolm_pt.evaluate --workdir=gs://bucket/runs/a --evals=linear_probe --limit=50"
    )
    # Without the pod's name the script refuses to start.
    env.pop("TPU_NAME")
    assert subprocess.run(["bash", str(script)], capture_output=True, env=env).returncode != 0


def test_emit_writes_the_script_under_root(tmp_path, capsys):
    sweep_file = tmp_path / "toy.py"
    sweep_file.write_text(
        "def get_sweep(arg):\n"
        f"    return {{'name': 't', 'points': [{{'name': 'p', 'config': {DEMO!r}}}]}}\n"
    )
    root = tmp_path / "r"
    args = [f"--sweep={sweep_file}", f"--root={root}", "--emit=slurm"]
    assert sweep_main([*args, "--dry_run"]) == 0
    printed = capsys.readouterr().out
    assert "launch/slurm_gpu.sbatch" in printed
    assert not root.exists()
    assert sweep_main(args) == 0
    assert (root / "launch_slurm.sh").read_text() == printed
    assert subprocess.run(["bash", "-n", str(root / "launch_slurm.sh")]).returncode == 0


# ----------------------------------------------------------------------------- the study file


def _clip(rng, seconds=1.0, rate=16000):
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * rng.uniform(200, 2000) * t)).astype(np.float32)


@pytest.fixture(scope="module")
def demo_tfds(tmp_path_factory):
    """A 6-clip demo-format TFDS build; labels of the four tagging tasks, some clips without
    some tasks, one label only in the test split."""
    from audiolm_pt.data.builders.tfds_builder import build_dataset

    root = tmp_path_factory.mktemp("study")
    labels = [
        {"language": "en", "voice": "f1"},
        {"language": "de", "voice": "m3"},
        {"instrument_family": "brass"},
        {"instrument_family": "organ", "event_category": "drum"},
        {"event_category": ["bd", "drum"]},
        {"language": "fr", "voice": "f1"},  # test split: not in the vocabulary
    ]
    rng = np.random.default_rng(0)
    rows = []
    for i, clip_labels in enumerate(labels):
        split = "train" if i < 5 else "test"
        rel = f"audio/{split}/c{i}.flac"
        (root / "corpus" / rel).parent.mkdir(parents=True, exist_ok=True)
        sf.write(root / "corpus" / rel, _clip(rng), 16000)
        rows.append(
            {
                "id": f"c{i}",
                "split": split,
                "audio": rel,
                "domain": "speech",
                "duration": 1.0,
                "sample_rate": 16000,
                "captions": [{"text": f"clip {i}", "style": "short"}],
                "labels": {"domain": "speech", **clip_labels},
            }
        )
    manifest = "".join(json.dumps(r) + "\n" for r in rows)
    (root / "corpus" / "manifest.jsonl").write_text(manifest)
    build_dataset(str(root / "corpus"), str(root / "tfds"), format="demo", name="demo")
    return str(root / "tfds")


STUDY = "configs/sweeps/data_scaling_demo.py"


def test_study_sweep_points_tags_and_tagging_vocabulary(demo_tfds):
    sweep = load_sweep(f"{STUDY}:steps=300,fractions=0.1+1.0,seeds=0+1,data_dir={demo_tfds}")
    names = [p.name for p in sweep.points]
    assert names == [
        "tagging_s0",
        "tagging_s1",
        *[
            f"{arm}_f{f}_s{seed}"
            for seed in (0, 1)
            for f in ("0.1", "1")
            for arm in ("contrastive", "captioning", "hybrid", "contrastive_tagging_init")
        ],
    ]
    points = {p.name: p for p in sweep.points}
    tagging = points["tagging_s1"].overrides
    vocab = (
        "event_category:bd",
        "event_category:drum",
        "instrument_family:brass",
        "instrument_family:organ",
        "language:de",
        "language:en",
        "voice:f1",
        "voice:m3",
    )
    assert tagging["data.pipeline.label_vocab"] == vocab
    assert tagging["model.heads.num_labels"] == 8
    assert tagging["data.pipeline.label_task"] == "language,voice,instrument_family,event_category"
    assert points["tagging_s0"].config == "configs/tagging.py:tiny"
    for point in sweep.points:  # same steps and data for every point, the seed of its name
        assert point.overrides["train.num_steps"] == 300
        assert point.overrides["seed"] == point.tags["seed"] == int(point.name[-1])
        assert point.overrides["data.pipeline.seed"] == point.tags["seed"]
        assert point.overrides["data.data_dir"] == demo_tfds
        assert point.tags["model_size"] == "tiny"
    init = points["contrastive_tagging_init_f0.1_s1"]
    assert init.after == ("tagging_s1",)
    assert init.overrides["checkpoint.init_from"] == "{point_dir:tagging_s1}/checkpoints"
    assert init.overrides["checkpoint.init_mode"] == "encoder"
    assert init.tags == {
        "arm": "contrastive_tagging_init",
        "objective": "contrastive",
        "data_fraction": 0.1,
        "init": "tagging",
        "model_size": "tiny",
        "seed": 1,
    }
    assert points["contrastive_f1_s0"].overrides["train.text_cache_dir"] == "{root}/text_cache"
    assert points["captioning_f1_s0"].overrides["data.pipeline.data_fraction"] == 1.0
    assert points["captioning_f1_s0"].evals == ("linear_probe", "zero_shot", "captioning")
    assert points["hybrid_f0.1_s0"].evals == (
        "linear_probe", "zero_shot", "retrieval", "captioning"
    )  # fmt: skip
    assert points["contrastive_f1_s0"].evals == ("linear_probe", "zero_shot", "retrieval")
    assert {json.dumps(p.eval_flags) for p in sweep.points} == {'{"limit": 1600}'}
    check(sweep, "/runs")  # every override exists in its config, the pipeline is valid
    # The tagging run's encoder can initialise the other arms: same audio encoder config.
    encoders = {
        name: _configured(points[name]).model.audio
        for name in ("tagging_s0", "contrastive_tagging_init_f0.1_s0", "captioning_f1_s0")
    }
    assert encoders["tagging_s0"] == encoders["contrastive_tagging_init_f0.1_s0"]
    assert encoders["tagging_s0"] == encoders["captioning_f1_s0"]


def _configured(point):
    """The point's config with its overrides applied."""
    config = load_config(point.config)
    for key, value in point.overrides.items():
        *parents, leaf = key.split(".")
        node = config
        for part in parents:
            node = node[part]
        node[leaf] = value
    return experiment.parse(config)


def test_study_defaults_and_data_dir_from_the_environment(demo_tfds, monkeypatch):
    monkeypatch.setenv("AUDIOLM_PT_STUDY_DATA_DIR", demo_tfds)
    sweep = load_sweep(STUDY)
    fractions = sorted({p.tags["data_fraction"] for p in sweep.points})
    assert fractions == sorted(FRACTIONS)
    assert sorted({p.tags["seed"] for p in sweep.points}) == sorted(SEEDS) == [0, 1, 2]
    assert len(FRACTIONS) >= 3
    assert len(sweep.points) == 3 + 3 * 3 * 4
    assert {p.overrides["train.num_steps"] for p in sweep.points} == {STEPS}
    assert {p.overrides["data.data_dir"] for p in sweep.points} == {demo_tfds}


def test_study_without_its_data_fails_naming_data_dir(tmp_path):
    with pytest.raises(SweepError, match=f"data_dir={tmp_path}/none"):
        load_sweep(f"{STUDY}:data_dir={tmp_path}/none")


def test_a_study_point_records_its_training_subset(demo_tfds, tmp_path):
    from audiolm_pt import main

    sweep = load_sweep(f"{STUDY}:fractions=0.1+0.5+1.0,data_dir={demo_tfds}")
    points = {p.name: p for p in sweep.points}
    # 5 training clips: round(0.5) = 0 -> at least 1; round(2.5) = 2 (half to even); 5.
    fingerprints = set()
    for name, kept in (("hybrid_f0.1_s0", 1), ("hybrid_f0.5_s0", 2), ("hybrid_f1_s0", 5)):
        main.write_data_info(_configured(points[name]), str(tmp_path))
        with open(tmp_path / "data_info.json") as f:
            info = json.load(f)
        fingerprints.add(info["demo"].pop("fingerprint"))
        fraction = points[name].tags["data_fraction"]
        assert info == {"demo": {"records": 5, "kept": kept, "fraction": fraction}}
    assert len(fingerprints) == 1  # one split
    assert len(next(iter(fingerprints))) == 16
    # Resuming (checkpoints exist) on other data stops, naming what changed.
    (tmp_path / "checkpoints").mkdir()
    main.write_data_info(_configured(points["hybrid_f1_s0"]), str(tmp_path))  # same data: fine
    with pytest.raises(ValueError, match=r"demo\.fraction 1\.0 -> 0\.5; demo\.kept 5 -> 2"):
        main.write_data_info(_configured(points["hybrid_f0.5_s0"]), str(tmp_path))


def test_data_changes_name_what_differs():
    from audiolm_pt.main import data_changes

    was = {"a": {"records": 5, "kept": 5, "fingerprint": "x"}, "b": {"records": 1}}
    now = {"a": {"records": 5, "kept": 5, "fingerprint": "y"}, "c": {"records": 1}}
    assert data_changes(was, now) == [
        "source b removed", "source c added", "a.fingerprint x -> y"
    ]  # fmt: skip
    legacy = {"a": {"records": 5, "kept": 5}}  # written before fingerprints: not compared
    assert data_changes(legacy, {"a": {"records": 5, "kept": 5, "fingerprint": "y"}}) == []
