"""The summary of one evaluation's results (`eval/<step>.json`'s `results`): probe rows with
each model score beside its hand-crafted baselines and the gain over the better one, retrieval
and zero-shot figures against chance, as rows and as a plain-text table.

Light on purpose (no JAX): the evaluation CLI prints it, notebooks and the analysis helpers
read saved results through it."""

from collections.abc import Mapping
from typing import Any

BASELINE_NAMES = {"logmel_stats": "log-mel", "mfcc_stats": "MFCC"}
# The linear probe's poolings, in the order rows are shown.
POOLINGS = ("mean", "mean_std", "stages", "attention")
HEADLINE_POOLING = "mean_std"


def probe_rows(results: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per (task, pooling) the linear probe scored: task, pooling, metric, chance,
    model (test), valid, each baseline's test score and the gain (None where absent)."""
    rows = []
    for task, result in sorted(results.get("linear_probe", {}).items()):
        if not isinstance(result, Mapping):
            continue
        for pooling in POOLINGS:
            scores = result.get(pooling)
            if not isinstance(scores, Mapping) or "test" not in scores:
                continue
            baselines = scores.get("baselines", {})
            row = {
                "task": task,
                "pooling": pooling,
                "metric": result.get("metric", ""),
                "chance": result.get("chance"),
                "model": scores["test"],
                "valid": scores.get("valid"),
                "gain": scores.get("gain"),
            }
            for name in BASELINE_NAMES:
                row[name] = baselines.get(name, {}).get("test")
            rows.append(row)
    return rows


def mean_gain(rows: list[dict[str, Any]], pooling: str = HEADLINE_POOLING) -> float | None:
    """Mean gain over the single-label (accuracy) tasks probed with `pooling`."""
    gains = [
        r["gain"]
        for r in rows
        if r["pooling"] == pooling and r["metric"] == "accuracy" and r["gain"] is not None
    ]
    return sum(gains) / len(gains) if gains else None


def _num(value: Any) -> str:
    return "-" if value is None else f"{value:.3f}"


def format_summary(results: Mapping[str, Any]) -> str:
    """The evaluation as a plain-text table."""
    lines = []
    rows = probe_rows(results)
    if rows:
        names = list(BASELINE_NAMES)
        header = ["task", "pooling", "metric", "model", *BASELINE_NAMES.values(), "gain", "chance"]
        lines.append("linear probes on the test split (model vs hand-crafted mean+std features)")
        table = [header]
        for r in rows:
            gain = "-" if r["gain"] is None else f"{r['gain']:+.3f}"
            values = [_num(r["model"]), *(_num(r[n]) for n in names), gain, _num(r["chance"])]
            table.append([r["task"], r["pooling"], r["metric"], *values])
        widths = [max(len(row[i]) for row in table) for i in range(len(header))]
        for row in table:
            lines.append("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))
        for pooling in dict.fromkeys(r["pooling"] for r in rows):
            gain = mean_gain(rows, pooling)
            if gain is not None:
                beaten = sum(
                    r["gain"] > 0
                    for r in rows
                    if r["pooling"] == pooling
                    and r["metric"] == "accuracy"
                    and r["gain"] is not None
                )
                total = sum(
                    r["pooling"] == pooling and r["metric"] == "accuracy" and r["gain"] is not None
                    for r in rows
                )
                lines.append(
                    f"{pooling}: mean gain over the better baseline {gain:+.3f} on the "
                    f"single-label tasks; beats it on {beaten} of {total}"
                )
    retrieval = results.get("retrieval", {})
    if "audio_to_text" in retrieval:
        parts = [
            f"{d.replace('_', ' ')} R@1 {retrieval[d]['R@1']:.3f} R@10 {retrieval[d]['R@10']:.3f}"
            for d in ("audio_to_text", "text_to_audio")
        ]
        chance = retrieval.get("chance_R@1")
        lines.append(f"retrieval: {'; '.join(parts)} (chance R@1 {_num(chance)})")
    zero_shot = results.get("zero_shot", {})
    for task, result in sorted(zero_shot.items()):
        if isinstance(result, Mapping) and "accuracy" in result:
            uniform = 1.0 / result["num_classes"]
            lines.append(
                f"zero-shot {task}: accuracy {result['accuracy']:.3f} over "
                f"{result['num_classes']} classes ({result['accuracy'] / uniform:.1f}x the "
                f"uniform chance {uniform:.3f}; majority class {_num(result.get('chance'))})"
            )
    return "\n".join(lines)
