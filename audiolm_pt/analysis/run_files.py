"""What one run directory holds for inspection, read into tables: training metrics from
`metrics.jsonl`, the evaluation of a step (`eval/<step>.json`) and its side files (zero-shot
confusion counts, retrieval examples, caption samples with their log-mel features). A missing
artefact reads as None, so a notebook shows what the run has."""

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from audiolm_pt import eval_summary

# The trainer's names (audiolm_pt.run_metrics, which imports TensorFlow through clu).
METRICS_NAME = "metrics.jsonl"
HELDOUT_LOSS = "eval/heldout_loss/loss"


def _metric_lines(run_dir: str | Path, key: str) -> pd.DataFrame:
    """The lines of `metrics.jsonl` that hold `key`, one per step (a step logged twice, as
    by a resumed run, keeps its last line), in step order."""
    with open(Path(run_dir) / METRICS_NAME, encoding="utf-8") as f:
        lines = [json.loads(line) for line in f if line.strip()]
    table = pd.DataFrame([line for line in lines if key in line])
    if table.empty:
        return pd.DataFrame(columns=["step", key])
    table = table.drop_duplicates("step", keep="last").sort_values("step")
    return table.reset_index(drop=True)


def read_train_metrics(run_dir: str | Path) -> pd.DataFrame:
    """Every training metric per logged step (the lines with a `loss`)."""
    train = _metric_lines(run_dir, "loss")
    if train.empty:
        raise ValueError(f"{Path(run_dir) / METRICS_NAME}: no training line (with 'loss')")
    return train


def read_heldout_loss(run_dir: str | Path) -> pd.DataFrame:
    """Columns step and loss of the held-out loss evaluations (empty when none ran)."""
    heldout = _metric_lines(run_dir, HELDOUT_LOSS)
    return heldout[["step", HELDOUT_LOSS]].rename(columns={HELDOUT_LOSS: "loss"})


def eval_steps(run_dir: str | Path) -> list[int]:
    """The steps with an `eval/<step>.json`, ascending."""
    folder = Path(run_dir) / "eval"
    return sorted(int(p.stem) for p in folder.glob("*.json") if p.stem.isdigit())


def resolve_step(run_dir: str | Path, step: int | None) -> int:
    """`step`, or the newest evaluated step when None; a step without results fails."""
    steps = eval_steps(run_dir)
    if not steps:
        raise FileNotFoundError(f"{run_dir}: no eval/<step>.json (run audiolm_pt.evaluate)")
    if step is None:
        return steps[-1]
    if step not in steps:
        raise FileNotFoundError(f"{run_dir}: no evaluation of step {step}; evaluated: {steps}")
    return step


def read_eval(run_dir: str | Path, step: int) -> dict[str, Any]:
    """The evaluators' results of `step` (the `results` of `eval/<step>.json`)."""
    with open(Path(run_dir) / "eval" / f"{step}.json", encoding="utf-8") as f:
        return json.load(f)["results"]


def linear_probe_table(results: dict[str, Any]) -> pd.DataFrame | None:
    """One row per (task, pooling) probed: metric, chance, the model's valid and test scores,
    each hand-crafted baseline's test score and the model's gain over the better one, test
    clips; a task no pooling could probe has one row with its note. None when no probe ran."""
    probes = results.get("linear_probe")
    if not probes:
        return None
    scored = eval_summary.probe_rows(results)
    rows = []
    for task, result in sorted(probes.items()):
        clips = result.get("num_clips", {}).get("test", 0)
        mine = [r for r in scored if r["task"] == task]
        for r in mine:
            rows.append({**r, "test clips": clips, "note": ""})
        if not mine:
            rows.append({"task": task, "pooling": "", "test clips": clips,
                         "note": result.get("unavailable", "")})  # fmt: skip
    columns = ["task", "pooling", "metric", "chance", "valid", "model"]
    columns += [*eval_summary.BASELINE_NAMES, "gain", "test clips", "note"]
    table = pd.DataFrame(rows).reindex(columns=columns)
    table = table.rename(columns=eval_summary.BASELINE_NAMES)
    return table.astype(dict.fromkeys(("chance", "valid", "model", "gain"), float)).set_index(
        ["task", "pooling"]
    )


def confusions(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per zero-shot task with confusion counts: `classes`, `counts` [C, C] (rows true) and
    `accuracy`."""
    out = {}
    for task, result in sorted(results.get("zero_shot", {}).items()):
        if isinstance(result, dict) and "confusion" in result:
            confusion = result["confusion"]
            out[task] = {
                "classes": list(confusion["classes"]),
                "counts": np.asarray(confusion["counts"], np.int64),
                "accuracy": result["accuracy"],
            }
    return out


def retrieval_examples(run_dir: str | Path, step: int) -> pd.DataFrame | None:
    """One row per saved example query: direction, query, its clip, hit, rank and the
    top-ranked items as "item (score)" with a * on relevant ones; None when not saved."""
    path = Path(run_dir) / "eval" / f"{step}_retrieval_examples.json"
    if not path.is_file():
        return None
    with open(path, encoding="utf-8") as f:
        saved = json.load(f)
    rows = []
    for direction, item in (("text_to_audio", "clip"), ("audio_to_text", "caption")):
        for example in saved.get(direction, []):
            top = [
                f"{'*' if r['relevant'] else ''}{r[item]} ({r['score']:.3f})"
                for r in example["retrieved"]
            ]
            rows.append(
                {
                    "direction": direction,
                    "query": example.get("query", example["query_clip"]),
                    "query clip": example["query_clip"],
                    "hit": example["hit"],
                    "rank": example["rank"],
                    f"top {saved['top_k']}": " | ".join(top),
                }
            )
    return pd.DataFrame(rows)


def caption_samples(run_dir: str | Path, step: int) -> dict[str, np.ndarray] | None:
    """The arrays of `eval/<step>_caption_samples.npz`; None when not saved."""
    path = Path(run_dir) / "eval" / f"{step}_caption_samples.npz"
    if not path.is_file():
        return None
    with np.load(path) as saved:
        return {k: saved[k] for k in saved.files}
