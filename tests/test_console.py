"""The console a person reads: one progress line per log interval (step/total, loss,
examples/s, elapsed, ETA), one line per evaluation, and no INFO chatter from absl, Orbax,
JAX or TensorFlow unless --verbosity asks for it."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from audiolm_pt.train.progress import Progress, duration

ROOT = Path(__file__).resolve().parents[1]
# absl's prefix of an INFO line: "I1130 19:41:08.330316 140635575303040 build.py:129] ..."
INFO = re.compile(r"^I\d{4} [\d:.]+\s+\d+ (\S+?):\d+\]")


def test_duration_reads_like_a_clock():
    assert [duration(s) for s in (0, 42, 185, 3720, -3)] == ["0s", "42s", "3m05s", "1h02m", "0s"]


def test_progress_line_and_eta():
    progress = Progress(0, 100, enabled=False)
    first = progress.line(10, 2.5, 32.0, step_time=0.5, now=100.0)
    # Before a second report the ETA is the steps left times the last step's time.
    assert first.startswith("step  10/100 ( 10%) | loss 2.5000 | 32.0 ex/s")
    assert first.endswith("ETA 45s")
    # Then the mean step time since the first report: 10 steps in 2 s, 80 steps left.
    second = progress.line(20, 2.0, 40.0, step_time=9.0, now=102.0)
    assert second.endswith("ETA 16s")


def _train(tmp_path, *extra):
    args = [
        sys.executable,
        "-m",
        "audiolm_pt.main",
        "--config=configs/contrastive.py:tiny",
        f"--workdir={tmp_path}",
        "--config.data.source=synthetic",
        "--config.data.pipeline.global_batch_size=8",
        "--config.data.pipeline.max_frames=64",
        "--config.data.pipeline.max_text_len=8",
        "--config.train.num_steps=4",
        "--config.train.log_every=2",
        "--config.checkpoint.every_steps=2",
        "--config.checkpoint.async_save=False",
        "--config.optimizer.warmup_steps=1",
        *extra,
    ]
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=8"}
    result = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def _info_sources(text):
    return {m.group(1) for line in text.splitlines() if (m := INFO.match(line))}


@pytest.fixture(scope="module")
def ours():
    """The file names of audiolm_pt's modules, whose INFO lines stay on."""
    return {p.name for p in (ROOT / "audiolm_pt").rglob("*.py")}


@pytest.mark.slow  # ~35 s: a whole training run
def test_training_console_is_progress_lines_and_our_own_notes(tmp_path, ours):
    result = _train(tmp_path)
    lines = result.stdout.splitlines()
    assert [line.split(" |")[0] for line in lines if line.startswith("step")] == [
        "step 2/4 ( 50%)",
        "step 4/4 (100%)",
    ]
    assert all("ETA" in line and "ex/s" in line for line in lines if line.startswith("step"))
    console = result.stdout + result.stderr
    assert _info_sources(console) <= ours, _info_sources(console) - ours
    assert "oneDNN" not in console
    assert "leaked" not in console


def _dry_run(*extra):
    args = [sys.executable, "-m", "audiolm_pt.main", "--config=configs/demo.py:contrastive"]
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=8"}
    result = subprocess.run(
        [*args, "--dry_run", *extra], cwd=ROOT, capture_output=True, text=True, timeout=600, env=env
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout + result.stderr


def test_verbosity_brings_the_libraries_info_back(ours):
    """The check above can fail: with --verbosity=0 other libraries' INFO lines appear (JAX's
    backend notice at start-up, TensorFlow's C++ lines); without it they do not."""
    assert _info_sources(_dry_run()) <= ours
    assert _info_sources(_dry_run("--verbosity=0")) - ours
