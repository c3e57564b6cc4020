"""Gathers every run under a directory into one tidy table: one row per (run, step, metric).

    python -m audiolm_pt.collect --root=DIR [--out=DIR/results.parquet] [--csv]

A run is any directory holding `config.json`. Columns, in order: run (its path under DIR),
sweep, one column per tag of the sweep points (`sweep_point.json`; a tag named like a fixed
column gets a `tag_` prefix), num_train_clips (the `kept` records of `data_info.json`, summed
over sources), global_batch_size, status (of the sweep point), step, examples_seen
(step × global batch), source, metric, value.

`source` is "train" (rows of `metrics.jsonl`), "heldout" (the held-out loss evaluator's
`eval/heldout_loss/<metric>` keys, named `<metric>`) or "eval" (`DIR/eval/<step>.json` of
`audiolm_pt.evaluate`, numeric leaves of its results joined with "/", e.g.
`retrieval/audio_to_text/R@1`). A variant evaluation (a clip limit, another dataset or
features; `DIR/eval/<step>.<variant>.json` and `eval@<variant>/` keys) has source
"eval@<variant>", so it is never mistaken for the standard one. The evaluation scalars that
the evaluator also logs to `metrics.jsonl` are taken from the JSON file when it has that
evaluator at that step, and from `metrics.jsonl` otherwise. A step logged twice (a resumed
run) keeps its last value.

Unreadable files and lines are skipped and counted by reason in the summary; nothing stops
the collection. Runs without `sweep_point.json` are collected with empty tags and status.
"""

import argparse
import collections
import json
import os
import re
import sys
from collections.abc import Iterator, Mapping
from typing import Any

import pandas as pd

from audiolm_pt.nested_scalars import scalars

FIXED_HEAD = ("run", "sweep")
FIXED_TAIL = (
    "num_train_clips",
    "global_batch_size",
    "status",
    "step",
    "examples_seen",
    "source",
    "metric",
    "value",
)
HELDOUT_PREFIX = "eval/heldout_loss/"
EVAL_PREFIX = "eval/"
VARIANT_PREFIX = "eval@"
_EVAL_FILE = re.compile(r"^(\d+)(?:\.([a-z0-9_-]+))?\.json$")


class Collection:
    """The table and what was left out of it, by reason."""

    def __init__(self, table: pd.DataFrame, runs: list[str], skipped: Mapping[str, int]):
        self.table = table
        self.runs = runs
        self.skipped = dict(sorted(skipped.items()))

    def summary(self) -> str:
        lines = [f"{len(self.runs)} runs, {len(self.table)} rows"]
        if len(self.table):
            by_source = self.table.groupby("source").size()
            lines.append("rows by source: " + ", ".join(f"{k} {v}" for k, v in by_source.items()))
            status = self.table.drop_duplicates("run").set_index("run")["status"]
            unfinished = status[status.notna() & (status != "done")]
            for run, state in unfinished.items():
                lines.append(f"point {run}: {state}")
        for reason, count in self.skipped.items():
            lines.append(f"skipped {count}: {reason}")
        return "\n".join(lines)


def find_runs(root: str) -> list[str]:
    """Every directory under `root` (itself included) holding config.json, sorted."""
    runs = []
    for path, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d != "checkpoints")
        if "config.json" in files:
            runs.append(path)
    return sorted(runs)


def collect(root: str) -> Collection:
    skipped: collections.Counter = collections.Counter()
    runs = find_runs(root)
    frames = [_run_rows(root, run, skipped) for run in runs]
    rows = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    tag_keys: list[str] = []
    for frame in frames:
        tag_keys += [k for k in frame.attrs["tags"] if k not in tag_keys]
    columns = [*FIXED_HEAD, *tag_keys, *FIXED_TAIL]
    table = rows.reindex(columns=columns)
    key = ["run", "source", "step", "metric"]
    repeated = table.duplicated(key, keep="last")
    if repeated.any():
        skipped["rows superseded by a later log of the same step"] += int(repeated.sum())
    table = table[~repeated].sort_values(key, kind="stable").reset_index(drop=True)
    table = table.infer_objects()  # text columns with gaps become strings, not objects
    for column in ("run", "sweep", "status", "source", "metric"):
        table[column] = table[column].astype("str")
    for column in ("num_train_clips", "global_batch_size", "step", "examples_seen"):
        table[column] = table[column].astype("Int64")
    table["value"] = table["value"].astype("float64")
    return Collection(table, [_run_name(root, r) for r in runs], skipped)


def _run_name(root: str, run: str) -> str:
    rel = os.path.relpath(run, root)
    return os.path.basename(os.path.abspath(root)) if rel == "." else rel


def _run_rows(root: str, run: str, skipped: collections.Counter) -> pd.DataFrame:
    """The rows of one run; `attrs["tags"]` lists its tag columns in order."""
    config = _read_json(os.path.join(run, "config.json"), skipped) or {}
    point = _read_json(os.path.join(run, "sweep_point.json"), skipped, missing_ok=True) or {}
    data_info = _read_json(os.path.join(run, "data_info.json"), skipped, missing_ok=True)
    batch = _dig(config, "data", "pipeline", "global_batch_size")
    clips = None
    if data_info:
        kept = [v.get("kept") for v in data_info.values() if isinstance(v, Mapping)]
        if kept and all(isinstance(k, int) for k in kept):
            clips = sum(kept)
        else:
            skipped["data_info.json without kept counts"] += 1
    tags = point.get("tags") if isinstance(point.get("tags"), Mapping) else {}
    tags = {(f"tag_{k}" if k in FIXED_HEAD + FIXED_TAIL else k): v for k, v in tags.items()}
    evals, covered = _eval_rows(run, skipped)
    records = []
    for step, source, metric, value in _metrics_rows(run, skipped):
        evaluator = metric.split("/", 1)[0]
        if (step, source, evaluator) in covered:
            continue
        records.append((step, source, metric, value))
    records += evals
    frame = pd.DataFrame(records, columns=["step", "source", "metric", "value"])
    frame.insert(0, "run", _run_name(root, run))
    frame["sweep"] = point.get("sweep")
    for key, value in tags.items():
        frame[key] = value
    frame["num_train_clips"] = clips
    frame["global_batch_size"] = batch if isinstance(batch, int) else None
    frame["status"] = point.get("status")
    frame["examples_seen"] = frame["step"] * batch if isinstance(batch, int) else None
    frame.attrs["tags"] = list(tags)
    return frame


def _metrics_rows(run: str, skipped: collections.Counter) -> Iterator[tuple]:
    """(step, source, metric, value) of metrics.jsonl; eval/ keys other than the held-out
    loss come back with source "eval" and the "eval/" prefix removed, eval@<variant>/ keys
    with source "eval@<variant>"."""
    path = os.path.join(run, "metrics.jsonl")
    if not os.path.exists(path):
        return
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError:
                skipped["metrics.jsonl: unreadable line"] += 1
                continue
            step = row.get("step") if isinstance(row, dict) else None
            if not isinstance(step, int) or isinstance(step, bool):
                skipped["metrics.jsonl: line without an integer step"] += 1
                continue
            for key, value in row.items():
                if key == "step":
                    continue
                if not _is_number(value):
                    skipped["metrics.jsonl: non-numeric value"] += 1
                    continue
                if key.startswith(HELDOUT_PREFIX):
                    yield step, "heldout", key[len(HELDOUT_PREFIX) :], float(value)
                elif key.startswith(EVAL_PREFIX):
                    yield step, "eval", key[len(EVAL_PREFIX) :], float(value)
                elif key.startswith(VARIANT_PREFIX) and "/" in key:
                    source, metric = key.split("/", 1)
                    yield step, source, metric, float(value)
                else:
                    yield step, "train", key, float(value)


def _eval_rows(run: str, skipped: collections.Counter) -> tuple[list[tuple], set[tuple]]:
    """(rows of DIR/eval/<step>[.<variant>].json, the (step, source, evaluator) they cover)."""
    rows, covered = [], set()
    eval_dir = os.path.join(run, "eval")
    names = sorted(os.listdir(eval_dir)) if os.path.isdir(eval_dir) else []
    for name in names:
        match = _EVAL_FILE.match(name)
        if not match:
            continue
        value = _read_json(os.path.join(eval_dir, name), skipped)
        results = value.get("results") if value else None
        if not isinstance(results, Mapping):
            if value is not None:
                skipped["eval json without results"] += 1
            continue
        step = int(match.group(1))
        source = f"{VARIANT_PREFIX}{match.group(2)}" if match.group(2) else "eval"
        covered.update((step, source, evaluator) for evaluator in results)
        rows += [(step, source, metric, v) for metric, v in scalars(results).items()]
    return rows, covered


def _read_json(path: str, skipped: collections.Counter, missing_ok: bool = False) -> Any:
    """A JSON object file, or None (missing, or unreadable: counted)."""
    name = _kind(path)
    try:
        with open(path, encoding="utf-8") as f:
            value = json.load(f)
    except FileNotFoundError:
        if not missing_ok:
            skipped[f"{name}: missing"] += 1
        return None
    except (OSError, ValueError):
        skipped[f"{name}: unreadable"] += 1
        return None
    if not isinstance(value, dict):
        skipped[f"{name}: not a JSON object"] += 1
        return None
    return value


def _kind(path: str) -> str:
    """The file's role, for counting: eval/<step>.json files count together."""
    parent = os.path.basename(os.path.dirname(path))
    name = os.path.basename(path)
    return "eval/<step>.json" if parent == "eval" and _EVAL_FILE.match(name) else name


def _dig(value: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def write(collection: Collection, out: str, csv: bool = False) -> list[str]:
    """Writes the table as Parquet at `out` (and CSV beside it); returns the paths."""
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    collection.table.to_parquet(out, index=False)
    paths = [out]
    if csv:
        csv_path = os.path.splitext(out)[0] + ".csv"
        collection.table.to_csv(csv_path, index=False)
        paths.append(csv_path)
    return paths


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m audiolm_pt.collect")
    parser.add_argument("--root", required=True, help="directory searched for runs")
    parser.add_argument("--out", default=None, help="Parquet file (default ROOT/results.parquet)")
    parser.add_argument("--csv", action="store_true", help="also write a CSV beside it")
    args = parser.parse_args(argv)
    if not os.path.isdir(args.root):
        print(f"--root={args.root}: no such directory", file=sys.stderr)
        return 2
    collection = collect(args.root)
    paths = write(collection, args.out or os.path.join(args.root, "results.parquet"), args.csv)
    print(collection.summary())
    print("wrote " + ", ".join(paths))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
