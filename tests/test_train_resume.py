"""End to end through `python -m audiolm_pt.main` in subprocesses: SIGTERM saves and exits 0;
a run killed (SIGKILL) at a random step and resumed logs bit-identical losses to an
uninterrupted run — reading real ArrayRecord data through the Grain pipeline, so the data
position saved in the checkpoint is exercised too; a 2-process run equals a 1-process run and
its checkpoint restores in one process. The subprocesses share a persistent compilation cache
to keep this affordable."""

import json
import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile as sf

from audiolm_pt.data.builders.tfds_builder import build_dataset
from audiolm_pt.run_metrics import JSONL_NAME, read_jsonl

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO_TOKENIZER = os.path.join(ROOT, "audiolm_pt", "assets", "demo_tokenizer.model")
FLAGS = (
    "--config=configs/contrastive.py:tiny",
    "--config.data.source=synthetic",
    "--config.data.pipeline.global_batch_size=8",
    "--config.data.pipeline.max_frames=24",
    "--config.data.pipeline.max_text_len=8",
    "--config.model.text.vocab_size=500",
    "--config.optimizer.warmup_steps=2",
    "--config.train.log_every=1",
)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    cache = tmp_path_factory.mktemp("jax_cache")
    return dict(
        os.environ,
        XLA_FLAGS="--xla_force_host_platform_device_count=2",
        JAX_COMPILATION_CACHE_DIR=str(cache),
        JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
        JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0",
    )


@pytest.fixture(scope="module")
def tfds_flags(tmp_path_factory):
    """Trainer flags that read a 24-clip ArrayRecord dataset (8-clip batches cross epochs)."""
    root = tmp_path_factory.mktemp("resume_data")
    rng = np.random.default_rng(0)
    rows = []
    for i in range(24):
        rel = f"audio/clip{i}.wav"
        (root / "audio").mkdir(exist_ok=True)
        t = np.arange(int(rng.uniform(0.3, 0.6) * 16000)) / 16000
        wave = 0.3 * np.sin(2 * np.pi * rng.uniform(200, 2000) * t) + 0.01 * rng.normal(size=t.size)
        sf.write(root / rel, wave.astype(np.float32), 16000)
        captions = [
            {"text": f"tone number {i}", "style": "short"},
            {"text": "tone", "style": "tags"},
        ]
        rows.append(
            {"id": f"c{i}", "split": "train", "audio": rel, "captions": captions, "labels": {}}
        )
    (root / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    build_dataset(
        str(root), str(root / "tfds"), format="demo", name="resume_tones", store_waveform=True
    )
    return (
        "--config.data.source=tfds",
        "--config.data.tfds_names=('resume_tones',)",
        f"--config.data.data_dir={root / 'tfds'}",
        f"--config.data.pipeline.tokenizer={DEMO_TOKENIZER}",
        "--config.data.pipeline.num_workers=0",
    )


def _command(workdir, num_steps, every, *extra):
    return [
        sys.executable,
        "-m",
        "audiolm_pt.main",
        *FLAGS,
        f"--workdir={workdir}",
        f"--config.train.num_steps={num_steps}",
        f"--config.checkpoint.every_steps={every}",
        *extra,
    ]


def _start(workdir, num_steps, every, env, *extra):
    os.makedirs(workdir, exist_ok=True)
    log = open(os.path.join(workdir, "stderr.log"), "a")  # noqa: SIM115 - lives with the process
    return subprocess.Popen(
        _command(workdir, num_steps, every, *extra), cwd=ROOT, env=env, stdout=log, stderr=log
    )


def _wait_for_step(workdir, step, proc, timeout=600):
    path = os.path.join(workdir, JSONL_NAME)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.exists(path) and any(r["step"] >= step for r in read_jsonl(workdir)):
            return
        assert proc.poll() is None, f"trainer exited early with {proc.returncode}"
        time.sleep(0.2)
    raise TimeoutError(f"no step {step} in {path}")


def _losses(workdir):
    """{step: loss} keeping the last line written for each step."""
    return {r["step"]: r["loss"] for r in read_jsonl(workdir) if "loss" in r}


def _log(workdir):
    with open(os.path.join(workdir, "stderr.log")) as f:
        return f.read()


def _checkpoints(workdir):
    return sorted(int(p) for p in os.listdir(os.path.join(workdir, "checkpoints")) if p.isdigit())


def _exact_resume(tmp_path, env, num_steps, every, seed, data_flags):
    # The uninterrupted run goes alongside the one that is killed and resumed.
    straight = str(tmp_path / "straight")
    uninterrupted = _start(straight, num_steps, every, env, *data_flags)

    kill_at = random.Random(seed).randint(every + 1, num_steps - 2)
    broken = str(tmp_path / "broken")
    proc = _start(broken, num_steps, every, env, *data_flags)
    _wait_for_step(broken, kill_at, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_after = max(_losses(broken))
    assert killed_after < num_steps
    proc = _start(broken, num_steps, every, env, *data_flags)
    assert proc.wait(timeout=3600) == 0, _log(broken)
    assert "train state from resumed at step" in _log(broken)
    assert uninterrupted.wait(timeout=3600) == 0, _log(straight)

    expected, got = _losses(straight), _losses(broken)
    assert sorted(expected) == list(range(1, num_steps + 1))
    assert got == expected  # bit for bit: JSON floats round-trip exactly
    return kill_at


@pytest.mark.slow  # ~45 s; the default run resumes after SIGTERM
def test_sigkill_at_random_step_then_resume_is_bit_exact(tmp_path, env, tfds_flags):
    kill_at = _exact_resume(tmp_path, env, num_steps=8, every=2, seed=0, data_flags=tfds_flags)
    print(f"killed at or after step {kill_at}")


@pytest.mark.slow
def test_sigkill_resume_bit_exact_over_2000_steps(tmp_path, env, tfds_flags):
    _exact_resume(tmp_path, env, num_steps=2000, every=100, seed=1, data_flags=tfds_flags)


def test_sigterm_saves_at_step_boundary_and_exits_zero(tmp_path, env):
    workdir = str(tmp_path / "run")
    proc = _start(workdir, 100_000, 0, env)
    _wait_for_step(workdir, 2, proc)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=600) == 0, _log(workdir)
    saved = _checkpoints(workdir)
    assert len(saved) == 1
    assert 2 <= saved[0] < 100_000
    assert "preempted: saved step" in _log(workdir)
    # The saved step is the last one trained: its loss was logged before the save.
    assert max(_losses(workdir)) == saved[0]


def _two_processes(workdir, env, *flags, num_steps=4, every=4):
    two_env = dict(env, DEVICES_PER_PROCESS="1", PORT=str(20000 + (os.getpid() + 7) % 20000))
    command = _command(workdir, num_steps, every, *flags)[3:]
    result = subprocess.run(
        ["bash", "launch/local_multiprocess.sh", "2", *command],
        cwd=ROOT,
        env=two_env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert result.returncode == 0, result.stderr
    return _losses(workdir)


@pytest.mark.slow
def test_two_process_run_equals_one_process_and_restores_in_one(tmp_path, env):
    one = str(tmp_path / "one")
    proc = _start(one, 4, 2, env)
    assert proc.wait(timeout=1800) == 0, _log(one)
    two = str(tmp_path / "two")
    expected, got = _losses(one), _two_processes(two, env, every=2)
    assert sorted(got) == [1, 2, 3, 4]
    for step, loss in expected.items():
        assert got[step] == pytest.approx(loss, abs=1e-5)
    # The 2-process checkpoint resumes in one process (2 devices) and trains on.
    proc = subprocess.run(
        _command(two, 5, 2), cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800
    )
    assert proc.returncode == 0, proc.stderr
    assert "train state from resumed at step 4" in proc.stderr
    assert max(_losses(two)) == 5


BUCKETS = ("--config.data.pipeline.bucket_frames=(40,50)", "--config.data.pipeline.max_frames=64")


@pytest.mark.slow  # ~25 s of training runs
def test_bucketed_training_logs_its_shapes_and_trains_alike_with_features_on_device(
    tmp_path, env, tfds_flags
):
    """Clips of 30-60 frames in buckets 40/50/64: the run names its step shapes at start-up
    and trains through batches of several shapes. The same run with the features computed in
    the jitted step from the stored waveform gives, without random masks, the same losses
    (the stored features are float16)."""
    flags = (
        *tfds_flags,
        *BUCKETS,
        "--config.data.pipeline.time_masks=0",
        "--config.data.pipeline.freq_masks=0",
    )
    # Both at once: two processes of start-up and compiling overlap on two cores.
    procs = {
        source: _start(
            str(tmp_path / source), 3, 3, env, *flags,
            f"--config.data.pipeline.feature_source={source}",
        )
        for source in ("stored", "device")
    }  # fmt: skip
    losses = {}
    for source, proc in procs.items():
        workdir = str(tmp_path / source)
        assert proc.wait(timeout=1800) == 0, _log(workdir)
        assert "padded to one of (40, 50, 64) frames" in _log(workdir)
        assert "at most 3" in _log(workdir)
        losses[source] = _losses(workdir)
    assert sorted(losses["stored"]) == sorted(losses["device"]) == [1, 2, 3]
    for step, loss in losses["stored"].items():
        assert losses["device"][step] == pytest.approx(loss, abs=2e-3)


@pytest.mark.slow
def test_two_processes_agree_on_each_batch_bucket(tmp_path, env, tfds_flags):
    """Each host's half batch picks its own bucket; the hosts pad to the larger, so the run
    completes, and padding being masked, its losses equal those of the unbucketed run."""
    # One clip per host and batch: about every other batch, the hosts' buckets differ.
    flags = (*tfds_flags, "--config.data.pipeline.global_batch_size=2")
    bucketed = _two_processes(
        str(tmp_path / "bucketed"), env, *flags, "--config.data.pipeline.bucket_frames=(45,)",
        BUCKETS[1],
    )  # fmt: skip
    plain = _two_processes(str(tmp_path / "plain"), env, *flags, BUCKETS[1])
    assert sorted(bucketed) == [1, 2, 3, 4]
    for step, loss in plain.items():
        assert bucketed[step] == pytest.approx(loss, abs=1e-5)


@pytest.mark.slow
def test_two_processes_on_tfds_data_equal_one_process(tmp_path, env, tfds_flags):
    """Each host holds contiguous rows of every global batch, so the global batch (and with
    it every dropout mask) is the one-process batch, row for row."""
    one = str(tmp_path / "one")
    proc = _start(one, 4, 4, env, *tfds_flags, BUCKETS[1])
    assert proc.wait(timeout=1800) == 0, _log(one)
    two = _two_processes(str(tmp_path / "two"), env, *tfds_flags, BUCKETS[1])
    expected = _losses(one)
    assert sorted(two) == sorted(expected) == [1, 2, 3, 4]
    for step, loss in expected.items():
        assert two[step] == pytest.approx(loss, abs=1e-5)


@pytest.mark.slow
def test_resume_with_another_process_count_continues_exactly(tmp_path, env, tfds_flags):
    """Saved by 1 process and resumed by 2, or saved by 2 and resumed by 1: steps 5-8 see
    exactly the batches, and give exactly the losses, of an uninterrupted run."""
    # A constant schedule: the interrupted runs are first told to stop at step 4.
    flags = (*tfds_flags, BUCKETS[1], "--config.optimizer.schedule=constant")
    whole = str(tmp_path / "whole")
    assert _start(whole, 8, 4, env, *flags).wait(timeout=1800) == 0, _log(whole)
    expected = _losses(whole)
    one_two = str(tmp_path / "one_then_two")
    assert _start(one_two, 4, 4, env, *flags).wait(timeout=1800) == 0, _log(one_two)
    got = _two_processes(one_two, env, *flags, num_steps=8)
    two_one = str(tmp_path / "two_then_one")
    _two_processes(two_one, env, *flags)
    assert _start(two_one, 8, 4, env, *flags).wait(timeout=1800) == 0, _log(two_one)
    assert "reads on from global batch 4" in _log(two_one)
    for run in (got, _losses(two_one)):
        assert sorted(run) == list(range(1, 9))
        for step in range(5, 9):
            assert run[step] == pytest.approx(expected[step], abs=1e-5), step
