"""Shared helpers of the benchmark scripts: the run's metadata (date, command, commit,
versions, devices, XLA_FLAGS, machine load at start and end, so a noisy run shows), the JSON
report, a config at a batch shape and its trainer, blocked step timing, log-log fits and
plain-text tables. Only the model and train-step path is imported (no Grain, TFDS or clu), so
the scripts run on accelerator images that lack the data stack.

Scripts run as `python benchmarks/<name>.py`; importing this module puts the repository root
on `sys.path` so that `configs.*` resolve as they do for `python -m audiolm_pt.main`.
"""

import argparse
import ast
import dataclasses
import datetime
import importlib
import importlib.metadata
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def parser(description: str, name: str) -> argparse.ArgumentParser:
    """An argument parser with the flags every benchmark has: `--smoke` and `--out`."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--smoke", action="store_true", help="tiny sizes, a few steps: a check")
    p.add_argument(
        "--out", default=str(ROOT / "benchmarks" / "results" / f"{name}.json"), help="JSON path"
    )
    return p


def _git(*args: str) -> str:
    try:
        out = subprocess.run(
            ["git", "-C", str(ROOT), *args], capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""


def run_metadata() -> dict[str, Any]:
    """What a reader needs to judge the figures; call once jax's devices are configured."""
    devices = jax.devices()
    commit = _git("rev-parse", "HEAD") or "unknown"
    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "command": "python " + " ".join(shlex.quote(a) for a in sys.argv),
        "git_commit": commit,
        "git_dirty": bool(_git("status", "--porcelain", "--untracked-files=no")),
        "python": platform.python_version(),
        "jax": jax.__version__,
        "jaxlib": importlib.metadata.version("jaxlib"),
        "platform": devices[0].platform,
        "device_kind": devices[0].device_kind,
        "device_count": len(devices),
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "cpu_count": os.cpu_count(),
        "machine": platform.platform(),
        "load_avg_start": list(os.getloadavg()),
        "start_time": time.time(),
    }


def write_report(path: str, meta: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    """Adds the end-of-run load and wall time to `meta`, writes `{"meta", **body}` as JSON."""
    meta = dict(meta)
    meta["load_avg_end"] = list(os.getloadavg())
    meta["wall_s"] = time.time() - meta.pop("start_time")
    report = {"meta": meta, **body}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(report, indent=1, default=_plain) + "\n")
    print(f"wrote {path}")
    return report


def _plain(x: Any) -> Any:
    if isinstance(x, np.generic):
        return x.item()
    raise TypeError(f"not JSON serialisable: {type(x).__name__}")


def load_config(spec: str) -> Any:
    """`name:arg` -> `configs/<name>.py`'s `get_config(arg)` (`demo:hybrid`, `hybrid:small`),
    then any `+key=value` overrides after it (`demo:contrastive+model.audio.token_keep=0.5`;
    values as Python literals)."""
    spec, *overrides = spec.split("+")
    name, _, arg = spec.partition(":")
    try:
        module = importlib.import_module(f"configs.{name}")
    except ModuleNotFoundError as e:
        raise ValueError(f"config {spec!r}: no configs/{name}.py") from e
    config = module.get_config(arg or None)
    for override in overrides:
        key, _, value = override.partition("=")
        *path, leaf = key.split(".")
        node = config
        for part in path:
            node = node[part]
        if leaf not in node:
            raise ValueError(f"config {spec!r}: no key {key!r} to override")
        node[leaf] = ast.literal_eval(value)
    return config


@dataclasses.dataclass(frozen=True)
class Case:
    """One experiment config at one batch shape: `config` (the ConfigDict, the shape written
    into its `data.pipeline`) and `parsed`, the experiment config `audiolm_pt.main` reads."""

    spec: str
    config: Any
    parsed: Any

    @property
    def model(self) -> Any:
        return self.parsed.model

    @property
    def shape(self) -> tuple[int, int, int]:
        """(global batch, frames, tokens)."""
        p = self.config.data.pipeline
        return p.global_batch_size, p.max_frames, p.max_text_len


def make_case(
    spec: str,
    batch: int,
    frames: int,
    tokens: int,
    *,
    dtype: str | None = None,
    remat: str | None = None,
) -> Case:
    """Config `spec` at (batch, frames, tokens); `dtype` is the model's compute dtype and
    `remat` overrides every transformer stack's remat policy. Position tables grow to the shape."""
    from audiolm_pt import experiment  # light: no trainer imports

    config = load_config(spec)
    m = config.model
    if dtype:
        m.compute_dtype = dtype
    for part in ("audio", "text", "decoder"):
        if remat:
            m[part].transformer.remat = remat
    m.audio.max_frames = max(m.audio.max_frames, frames)
    m.text.max_positions = max(m.text.max_positions, tokens)
    m.decoder.max_length = max(m.decoder.max_length, tokens)
    # Synthetic batches at the case's shape: no dataset, so no tokenizer is required.
    config.data.source = "synthetic"
    p = config.data.pipeline
    p.global_batch_size, p.max_frames, p.max_text_len = batch, frames, tokens
    return Case(spec, config, experiment.parse(config))


def trainer_for(
    case: Case,
    devices: Sequence[jax.Device],
    sharding_values: dict[str, Any] | None = None,
    total_steps: int = 100_000,
) -> Any:
    """The trainer `audiolm_pt.main.run` would build for the case, on `devices`;
    `sharding_values` replace the config's mesh factors."""
    from audiolm_pt.train.build import build_from_config

    return build_from_config(
        case.parsed,
        sharding_overrides=sharding_values,
        devices=list(devices),
        total_steps=total_steps,
    )


def host_batches(case: Case, count: int = 2) -> list[dict[str, np.ndarray]]:
    """`count` distinct synthetic global batches of the case's shape, as numpy."""
    from audiolm_pt.train.synthetic_batch import synthetic_batch

    return [synthetic_batch(case.model, *case.shape, seed=0, index=i) for i in range(count)]


def time_blocked(
    step: Callable, state: Any, batch: Any, steps: int
) -> tuple[Any, list[float], list[float]]:
    """Runs `steps` steps on a batch already on device, waiting for each: (state, dispatch
    seconds until the call returned, seconds until the step's outputs were ready)."""
    dispatch, total = [], []
    for _ in range(steps):
        start = time.perf_counter()
        state, metrics = step(state, batch)
        returned = time.perf_counter()
        jax.block_until_ready((state, metrics))
        dispatch.append(returned - start)
        total.append(time.perf_counter() - start)
    return state, dispatch, total


def split_specs(text: str) -> list[str]:
    """`"demo:contrastive,tiny,hybrid:small"` -> ["demo:contrastive,tiny", "hybrid:small"]:
    a piece without a colon continues the previous config's arg."""
    specs: list[str] = []
    for piece in filter(None, text.split(",")):
        if ":" in piece or not specs:
            specs.append(piece)
        else:
            specs[-1] += "," + piece
    return specs


def parse_ints(text: str) -> tuple[int, ...]:
    """`"1,2,4"` -> (1, 2, 4)."""
    return tuple(int(x) for x in text.split(",") if x.strip())


def use_cpu_devices(count: int) -> None:
    """Asks for `count` simulated CPU devices unless XLA_FLAGS already sets a count; call
    before jax first touches a device. Accelerator backends are unaffected."""
    if count > 1 and "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
        jax.config.update("jax_num_cpu_devices", count)


def fit_loglog(xs: Sequence[float], ys: Sequence[float]) -> dict[str, float]:
    """Least-squares fit of log y = slope * log x + intercept: `slope` is the growth exponent
    (1 linear, 2 quadratic); `r2` says how well one power law describes the points."""
    if len(xs) != len(ys) or len(xs) < 2:
        raise ValueError(f"need two or more (x, y) pairs, got {len(xs)} x and {len(ys)} y")
    lx, ly = np.log(np.asarray(xs, float)), np.log(np.asarray(ys, float))
    slope, intercept = np.polyfit(lx, ly, 1)
    residual = ly - (slope * lx + intercept)
    spread = np.sum((ly - ly.mean()) ** 2)
    r2 = 1.0 - np.sum(residual**2) / spread if spread > 0 else 1.0
    return {"slope": float(slope), "intercept": float(intercept), "r2": float(r2)}


Column = tuple[str, str, str | Callable[[Any], str]]


def print_table(rows: Sequence[dict[str, Any]], columns: Sequence[Column]) -> None:
    """Prints `rows` under `columns` of (key, header, format spec or function); a row that
    lacks a key shows an empty cell."""

    def cell(row, key, fmt):
        if row.get(key) is None:
            return ""
        return fmt(row[key]) if callable(fmt) else format(row[key], fmt)

    table = [[h for _, h, _ in columns]]
    table += [[cell(r, k, f) for k, _, f in columns] for r in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(columns))]
    for line in table:
        print(
            "  ".join(
                c.rjust(w) if i else c.ljust(w)
                for i, (c, w) in enumerate(zip(line, widths, strict=True))
            )
        )
