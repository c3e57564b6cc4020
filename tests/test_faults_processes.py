"""Fault injection on processes (issue 15): a trainer killed with SIGKILL while its Grain
workers run leaves nothing behind. Before the fix the workers (about 900 MB each on the demo)
lived on under init, holding the resource tracker open, so it never unlinked the semaphores in
/dev/shm registered with it."""

import os
import re
import signal
import subprocess
import sys
import time

import pytest
from test_train_resume import FLAGS, ROOT, env, tfds_flags  # noqa: F401  (fixtures)


def _children(pid: int) -> set[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return {int(p) for p in out.split()}


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _ours_in_shm(pid: int) -> list[str]:
    return [name for name in os.listdir("/dev/shm") if f"-{pid}-" in name]


@pytest.mark.slow  # a training run with two workers: about 25 s
def test_sigkill_leaves_no_worker_tracker_or_shared_memory(tmp_path, env, tfds_flags):  # noqa: F811
    command = [
        sys.executable,
        "-m",
        "audiolm_pt.main",
        *FLAGS,
        *[f for f in tfds_flags if "num_workers" not in f],
        "--config.data.pipeline.num_workers=2",
        f"--workdir={tmp_path}",
        "--config.train.num_steps=100000",
    ]
    with open(tmp_path / "stderr.log", "w") as log:
        trainer = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 300
        # Training, so the workers are past start-up, blocked on a full queue of batches.
        while not re.search(r"step +[2-9]/", (tmp_path / "stderr.log").read_text()):
            assert trainer.poll() is None, (tmp_path / "stderr.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "training never started"
            time.sleep(0.5)
        descendants = _children(trainer.pid)
        assert _ours_in_shm(trainer.pid), "the test needs the workers' semaphores in /dev/shm"
    finally:
        trainer.send_signal(signal.SIGKILL)
        trainer.wait()
    deadline = time.monotonic() + 30
    try:
        while any(_alive(p) for p in descendants) or _ours_in_shm(trainer.pid):
            assert time.monotonic() < deadline, (
                f"left behind: processes {[p for p in descendants if _alive(p)]}, "
                f"/dev/shm {_ours_in_shm(trainer.pid)}"
            )
            time.sleep(0.5)
    finally:  # a failing run must not leave them to the rest of the suite
        for pid in descendants:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        for name in _ours_in_shm(trainer.pid):
            os.unlink(f"/dev/shm/{name}")
