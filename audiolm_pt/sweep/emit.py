"""Launch scripts for a sweep: one command per point for `launch/tpu_pod.sh` or
`launch/slurm_gpu.sbatch`, in dependency order, followed by the point's evaluation.

SLURM: every point is submitted at once; a point's training job waits for the training jobs
of the points it needs (`--dependency=afterok:`), and its evaluation is a one-GPU job after
its own training. Extra sbatch flags (nodes, partition, account, time) come from
`$SBATCH_ARGS` when the script runs.

TPU: points run one after another on the slice named by `$TPU_NAME` / `$TPU_ZONE` (extra
`tpu_pod.sh` flags from `$TPU_ARGS`); each evaluation runs on the launching machine
(`$PYTHON`, default .venv/bin/python), which must see the run directory. A failed point is
reported and the others go on; a point whose dependency failed is skipped.
"""

import os
import shlex

from audiolm_pt.sweep.commands import eval_args, train_args
from audiolm_pt.sweep.spec import Sweep, order, point_dir

MODES = ("tpu", "slurm")
_PYTHON = '"${PYTHON:-.venv/bin/python}"'


def emit(sweep: Sweep, root: str, mode: str, repo: str | None = None) -> str:
    """The bash script launching every point of `sweep` under `root` with `mode`; it starts
    in `repo` (default: the working directory, where the launch scripts are)."""
    if mode not in MODES:
        raise ValueError(f"--emit={mode!r}: expected one of {MODES}")
    repo = repo or os.getcwd()
    header = [
        "#!/usr/bin/env bash",
        f"# Sweep {sweep.name}: {len(sweep.points)} points on {mode.upper()}, written by",
        "# `python -m audiolm_pt.sweep --emit`. See audiolm_pt/sweep/emit.py for the contract.",
        # SLURM: stop at the first refused submission; TPU: run every point it can.
        "set -euo pipefail" if mode == "slurm" else "set -uo pipefail",
        f"cd {shlex.quote(repo)}",
    ]
    body = _slurm(sweep, root) if mode == "slurm" else _tpu(sweep, root)
    return "\n".join(header + body) + "\n"


def _comment(point) -> str:
    tags = " ".join(f"{k}={v}" for k, v in point.tags.items())
    after = f" (after {', '.join(point.after)})" if point.after else ""
    return f"# {point.name}{after} {tags}".rstrip()


def _slurm(sweep: Sweep, root: str) -> list[str]:
    lines = []
    job = {p.name: f"job_{i}" for i, p in enumerate(sweep.points)}
    for point in order(sweep):
        workdir = point_dir(root, point)
        var = job[point.name]
        deps = ":".join(f"${job[d]}" for d in point.after)
        dependency = [f"--dependency=afterok:{deps}"] if deps else []
        train = [
            f"--job-name={sweep.name}.{point.name}",
            f"--output={workdir}/slurm-%j.out",
            *dependency,
            "launch/slurm_gpu.sbatch",
            *train_args(point, root),
        ]
        lines += [
            "",
            _comment(point),
            f"mkdir -p {shlex.quote(workdir)}",
            f"{var}=$(sbatch --parsable ${{SBATCH_ARGS:-}} {_join(train)})",
            f"{var}=${{{var}%%;*}}",
        ]
        if point.evals:
            wrap = f"{_PYTHON} {shlex.join(['-m', 'audiolm_pt.evaluate', *eval_args(point, root)])}"
            evaluate = [
                f"--job-name={sweep.name}.{point.name}.eval",
                f"--output={workdir}/eval-%j.out",
                "--nodes=1",
                "--ntasks=1",
                "--gpus-per-node=1",
                f"--wrap={wrap}",
            ]
            lines.append(f"sbatch --parsable --dependency=afterok:${var} {_join(evaluate)}")
        lines.append(f'echo "{point.name}: job ${var}"')
    return lines


def _tpu(sweep: Sweep, root: str) -> list[str]:
    lines = [
        'TPU=(--name="${TPU_NAME:?set TPU_NAME}" --zone="${TPU_ZONE:?set TPU_ZONE}")',
        "declare -A failed=()",
    ]
    for point in order(sweep):
        name = shlex.quote(point.name)
        launch = 'bash launch/tpu_pod.sh "${TPU[@]}" ${TPU_ARGS:-} --'
        run = f"{launch} {_join(train_args(point, root))}"
        if point.evals:
            run += f" \\\n    && {_PYTHON} -m audiolm_pt.evaluate {_join(eval_args(point, root))}"
        blocked = " || ".join(f'-n "${{failed[{shlex.quote(d)}]:-}}"' for d in point.after)
        lines += ["", _comment(point)]
        if blocked:
            lines += [
                f"if [[ {blocked} ]]; then",
                f'  failed[{name}]=1; echo "{point.name}: skipped, a dependency failed" >&2',
                f"elif {run}; then",
            ]
        else:
            lines.append(f"if {run}; then")
        lines += [
            f'  echo "{point.name}: done"',
            "else",
            f'  failed[{name}]=1; echo "{point.name}: failed" >&2',
            "fi",
        ]
    lines.append('[[ ${#failed[@]} -eq 0 ]] || { echo "failed: ${!failed[*]}" >&2; exit 1; }')
    return lines


def _join(args: list[str]) -> str:
    """Arguments quoted for bash, except `$job_N` references, which must expand."""
    return " ".join(a if a.startswith("--dependency=afterok:$") else shlex.quote(a) for a in args)
