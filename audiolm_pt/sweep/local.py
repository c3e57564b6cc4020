"""Runs a sweep's points here, one after another, as subprocesses.

Point P trains (and is evaluated) in ROOT/P with its output in ROOT/P/log.txt, and records
ROOT/P/sweep_point.json: tags, config, resolved overrides, command lines, git commit, start
and end times, attempts, status (`running`, `done`, `failed`, `skipped`, `interrupted`) with
its reason, and the log's tail when it did not finish. ROOT/sweep_status.json holds every
point's status. A `done` point is skipped on re-run (delete ROOT/P to run it again, e.g.
after changing its definition); any other is run again (training resumes from its
checkpoints). A failure does not stop the other points; a point whose `after` did not
finish is `skipped`. Ctrl-C is forwarded to the running command as SIGTERM (the trainer saves
at its next step and stops), the point is recorded `interrupted` and the sweep stops.
The points share one JAX compilation cache, ROOT/jax_cache (or $JAX_COMPILATION_CACHE_DIR when
set): the points of one arm compile the same programs, about 15 s of each point's start-up.
"""

import collections
import datetime
import fnmatch
import json
import os
import shlex
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from typing import Any, TextIO

from audiolm_pt.sweep.commands import commands
from audiolm_pt.sweep.spec import Point, Sweep, SweepError, order, point_dir, resolve

POINT_FILE = "sweep_point.json"
STATUS_FILE = "sweep_status.json"
LOG_FILE = "log.txt"
LOG_TAIL_LINES = 40
# Seconds an interrupted command may take to save and stop before it is killed.
STOP_GRACE_SECONDS = 300
CACHE_ENV = "JAX_COMPILATION_CACHE_DIR"
Status = dict[str, Any]  # {"status": ..., "reason": ... or None}


def run_local(
    sweep: Sweep,
    root: str,
    *,
    only: Sequence[str] = (),
    python: Sequence[str] = (sys.executable,),
    dry_run: bool = False,
    out: TextIO | None = None,
) -> dict[str, Status]:
    """Runs the selected points (`only`: names or shell patterns; default all) in dependency
    order and returns every point's status; unselected points keep their recorded one.
    `dry_run` prints the commands of the points that would run."""
    out = out or sys.stdout
    selected = select(sweep, only)
    status: dict[str, Status] = {}
    planned: set[str] = set()  # what a dry run would run
    git = git_state()
    for point in order(sweep):
        record = read_json(os.path.join(point_dir(root, point), POINT_FILE)) or {}
        recorded = {"status": record.get("status", "pending"), "reason": record.get("reason")}
        if point.name not in selected or recorded["status"] == "done":
            status[point.name] = recorded
            if recorded["status"] == "done":
                print(f"[{point.name}] done, skipped", file=out)
            continue
        steps = commands(point, root, python)
        blocked = next(
            (d for d in point.after if status[d]["status"] != "done" and d not in planned), None
        )
        if blocked is not None:
            reason = f"dependency {blocked} {status[blocked]['status']}"
            status[point.name] = {"status": "skipped", "reason": reason}
            print(f"[{point.name}] skipped: {reason}", file=out)
            if not dry_run:
                state = {"attempts": record.get("attempts", 0), **status[point.name]}
                _record(root, sweep, point, steps, git, state)
                _write_status(root, sweep, status)
        elif dry_run:
            print(f"# {point.name}", file=out)
            for argv in steps:
                print(shlex.join(argv), file=out)
            status[point.name] = {"status": "pending", "reason": None}
            planned.add(point.name)
        else:
            try:
                status[point.name] = _run_point(root, sweep, point, steps, git, record, out)
            finally:
                status.setdefault(point.name, {"status": "interrupted", "reason": "interrupted"})
                _write_status(root, sweep, status)
            if status[point.name]["status"] == "interrupted":
                raise KeyboardInterrupt
    return status


def select(sweep: Sweep, only: Sequence[str]) -> set[str]:
    names = [p.name for p in sweep.points]
    if not only:
        return set(names)
    chosen = set()
    for pattern in only:
        matched = fnmatch.filter(names, pattern)
        if not matched:
            raise SweepError(f"--only={pattern}: matches no point; points: {names}")
        chosen.update(matched)
    return chosen


def _run_point(
    root: str,
    sweep: Sweep,
    point: Point,
    steps: list[list[str]],
    git: Mapping[str, Any],
    record: Mapping[str, Any],
    out: TextIO,
) -> Status:
    workdir = point_dir(root, point)
    os.makedirs(workdir, exist_ok=True)
    log_path = os.path.join(workdir, LOG_FILE)
    times = {"start_time": _now(), "attempts": record.get("attempts", 0) + 1}
    _record(root, sweep, point, steps, git, {**times, "status": "running", "reason": None})
    print(f"[{point.name}] running, log in {log_path}", file=out, flush=True)
    result = {"status": "done", "reason": None}
    cache = os.environ.get(CACHE_ENV) or os.path.join(os.path.abspath(root), "jax_cache")
    env = {**os.environ, CACHE_ENV: cache}
    try:
        for stage, argv in zip(("train", "evaluate"), steps, strict=False):
            code = _run_command(argv, log_path, env)
            if code is None:
                result = {"status": "interrupted", "reason": f"{stage} interrupted"}
                break
            if code != 0:
                result = {"status": "failed", "reason": f"{stage} exited with status {code}"}
                break
    except KeyboardInterrupt:  # between commands
        result = {"status": "interrupted", "reason": "interrupted"}
    final = {**times, **result, "end_time": _now()}
    if result["status"] != "done":
        final["log_tail"] = _tail(log_path)
    _record(root, sweep, point, steps, git, final)
    reason = f": {result['reason']}" if result["reason"] else ""
    print(f"[{point.name}] {result['status']}{reason}", file=out, flush=True)
    return result


def _run_command(argv: list[str], log_path: str, env: Mapping[str, str]) -> int | None:
    """The exit status of `argv` run with environment `env` (output appended to `log_path`),
    None when interrupted. The
    command runs in its own session so that Ctrl-C reaches this runner only, which stops the
    command with SIGTERM."""
    with open(log_path, "a", encoding="utf-8") as log:
        log.write(f"\n=== {_now()} $ {shlex.join(argv)}\n")
        log.flush()
        proc = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env
        )
        try:
            return proc.wait()
        except KeyboardInterrupt:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=STOP_GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            return None


def _record(
    root: str,
    sweep: Sweep,
    point: Point,
    steps: list[list[str]],
    git: Mapping[str, Any],
    state: Mapping[str, Any],
) -> None:
    """Writes ROOT/P/sweep_point.json: the point's definition plus `state` (status, reason,
    times, attempts, log tail)."""
    kept = ("status", "reason", "start_time", "end_time", "attempts", "log_tail")
    value = {
        "name": point.name,
        "sweep": sweep.name,
        "tags": dict(point.tags),
        "config": point.config,
        "overrides": {k: resolve(v, root) for k, v in point.overrides.items()},
        "after": list(point.after),
        "evals": list(point.evals),
        "eval_options": dict(point.eval_options),
        "eval_flags": dict(point.eval_flags),
        "commands": [shlex.join(argv) for argv in steps],
        "git": dict(git),
        **{k: state[k] for k in kept if k in state},
    }
    workdir = point_dir(root, point)
    os.makedirs(workdir, exist_ok=True)
    _write_json(os.path.join(workdir, POINT_FILE), value)


def _write_status(root: str, sweep: Sweep, status: Mapping[str, Status]) -> None:
    counts = collections.Counter(s["status"] for s in status.values())
    os.makedirs(root, exist_ok=True)
    _write_json(
        os.path.join(root, STATUS_FILE),
        {"sweep": sweep.name, "updated": _now(), "counts": dict(counts), "points": dict(status)},
    )


def read_json(path: str) -> dict[str, Any] | None:
    """A JSON object file, or None when it is missing or unreadable."""
    try:
        with open(path, encoding="utf-8") as f:
            value = json.load(f)
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _write_json(path: str, value: Mapping[str, Any]) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(value, f, indent=2, sort_keys=True)
    os.replace(tmp, path)


def git_state() -> dict[str, Any]:
    """{"commit", "dirty"} of the checkout in the working directory (None outside one)."""

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", *args], capture_output=True, text=True, check=True)
        except (OSError, subprocess.CalledProcessError):
            return None
        return done.stdout.strip()

    commit = git("rev-parse", "HEAD")
    changes = git("status", "--porcelain", "--untracked-files=no") if commit else None
    return {"commit": commit, "dirty": None if changes is None else bool(changes)}


def _tail(path: str) -> str:
    with open(path, encoding="utf-8", errors="replace") as f:
        return "".join(collections.deque(f, maxlen=LOG_TAIL_LINES))


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
