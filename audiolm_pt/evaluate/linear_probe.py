"""The linear-probe evaluator: for each label task, clips of the train/valid/test splits that
carry the label, their frozen features pooled by masked mean (logistic regression) and by a
trained attention pool, scored on the test split at the setting chosen on validation."""

from collections.abc import Sequence
from typing import Any

import numpy as np

from audiolm_pt.evaluate import probe
from audiolm_pt.evaluate import tasks as label_tasks
from audiolm_pt.evaluate.context import ROLES, Context
from audiolm_pt.evaluate.registry import register

POOLINGS = ("mean", "attention")


def _split_data(context: Context, role: str, task, pooling: str) -> tuple[probe.ProbeData, int]:
    target = label_tasks.targets(task, context.clips(role))
    encoded = context.encoded(role)
    if pooling == "mean":
        inputs = np.stack([encoded[i].pooled for i in target.index])
    else:
        inputs = [encoded[i].frames for i in target.index]
    return probe.ProbeData(inputs, target.multi_hot), target.unseen


@register("linear_probe")
def linear_probe(
    context: Context,
    tasks: Sequence[str] = label_tasks.DEMO_TASKS,
    poolings: Sequence[str] = POOLINGS,
    c_grid: Sequence[float] = probe.C_GRID,
    attention_steps: int = 300,
) -> dict[str, Any]:
    """Per task and pooling: test score (accuracy, or mAP when multi-label) and the chosen
    setting; per task the clip counts, chance accuracy and clips left out (label unseen in
    training)."""
    for pooling in poolings:
        if pooling not in POOLINGS:
            raise ValueError(f"linear_probe.poolings: {pooling!r} not one of {POOLINGS}")
    out: dict[str, Any] = {}
    train_clips = context.clips("train")
    for name in tasks:
        if not any(name in c.labels for c in train_clips):
            out[name] = {"unavailable": f"no training clip has label {name!r}"}
            continue
        task = label_tasks.LabelTask.from_clips(name, train_clips)
        result: dict[str, Any] = {"metric": "mAP" if task.multi_label else "accuracy"}
        for pooling in poolings:
            splits = {role: _split_data(context, role, task, pooling) for role in ROLES}
            data = {role: d for role, (d, _) in splits.items()}
            if any(len(d.targets) == 0 for d in data.values()):
                result[pooling] = {"unavailable": "a split has no clip with this label"}
                continue
            try:
                if pooling == "mean":
                    result[pooling] = probe.linear_probe(
                        data["train"], data["valid"], data["test"], task.multi_label, c_grid
                    )
                else:
                    result[pooling] = probe.attention_probe(
                        data["train"],
                        data["valid"],
                        data["test"],
                        task.multi_label,
                        steps=attention_steps,
                    )
            except ValueError as err:
                result[pooling] = {"unavailable": str(err)}
            result["unseen_label"] = {role: u for role, (_, u) in splits.items()}
            result["num_clips"] = {role: len(d.targets) for role, d in data.items()}
        test_targets = label_tasks.targets(task, context.clips("test")).multi_hot
        if not task.multi_label and len(test_targets):
            result["chance"] = float(test_targets.mean(axis=0).max())
        out[name] = result
    return out
