"""The command lines of a sweep point: `python -m audiolm_pt.main` with the point's config and
overrides, then `python -m audiolm_pt.evaluate` when the point has evaluations."""

import json
from collections.abc import Sequence
from typing import Any

from audiolm_pt.sweep.spec import Point, point_dir, resolve


def format_value(value: Any) -> str:
    """An override value as `--config.key=VALUE` text that ml_collections parses back."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, list | tuple):
        return repr(tuple(value))
    return repr(value)


def train_args(point: Point, root: str) -> list[str]:
    """The trainer's flags (what follows `python -m audiolm_pt.main`)."""
    overrides = [
        f"--config.{key}={format_value(resolve(value, root))}"
        for key, value in point.overrides.items()
    ]
    return [f"--config={point.config}", f"--workdir={point_dir(root, point)}", *overrides]


def eval_args(point: Point, root: str) -> list[str]:
    """The evaluation's flags (what follows `python -m audiolm_pt.evaluate`); empty when the
    point has no evaluation."""
    if not point.evals:
        return []
    args = [f"--workdir={point_dir(root, point)}", f"--evals={','.join(point.evals)}"]
    if point.eval_options:
        args.append(f"--options={json.dumps(point.eval_options, sort_keys=True)}")
    return args + [f"--{flag}={value}" for flag, value in point.eval_flags.items()]


def commands(point: Point, root: str, python: Sequence[str]) -> list[list[str]]:
    """Training, then evaluation when the point has one; `python` starts an interpreter."""
    out = [[*python, "-m", "audiolm_pt.main", *train_args(point, root)]]
    if point.evals:
        out.append([*python, "-m", "audiolm_pt.evaluate", *eval_args(point, root)])
    return out
