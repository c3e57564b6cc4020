"""The linear-probe evaluator: for each label task, clips of the train/valid/test splits that
carry the label, their frozen features pooled by masked mean, by mean and standard deviation,
by the mean and standard deviation of every encoder stage concatenated (`stages`: the input to
each transformer block and the output, as BYOL-A and several HEAR entries pool several layers;
logistic regression on any of these) or by a trained attention pool, scored on the test split
at the setting chosen on validation.

Beside every model score stand the hand-crafted baselines of `handcrafted` (log-mel and MFCC
frames) put through the same probe on the same clips and splits with the same grid: their
mean+std statistics for the pooled probes, their frames for the attention probe. `gain` is the
model's test score minus the better baseline's."""

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from audiolm_pt.eval_summary import POOLINGS
from audiolm_pt.evaluate import handcrafted, probe
from audiolm_pt.evaluate import tasks as label_tasks
from audiolm_pt.evaluate.context import ROLES, Context
from audiolm_pt.evaluate.registry import register
from audiolm_pt.models.audio_encoder import NO_STAGES

log = logging.getLogger(__name__)

BASELINES = tuple(handcrafted.BASELINES)


def _inputs(context: Context, role: str, features: str, index: np.ndarray, pooling: str):
    encoded = context.encoded(role, features)
    if pooling == "attention":
        return [encoded[i].frames for i in index]
    if features == "model" and pooling == "mean_std":
        return np.stack([handcrafted.mean_std(encoded[i].frames) for i in index])
    if features == "model" and pooling == "stages":
        return np.stack([encoded[i].stage_stats.reshape(-1) for i in index])
    # The model's masked mean; a baseline's pooled features are always its mean and std.
    return np.stack([encoded[i].pooled for i in index])


def _fit(
    context: Context,
    task: label_tasks.LabelTask,
    features: str,
    pooling: str,
    c_grid: Sequence[float],
    attention_steps: int,
) -> dict[str, Any]:
    """One probe of `features` pooled by `pooling`: its scores, or why it is unavailable."""
    targets = {role: label_tasks.targets(task, context.clips(role)) for role in ROLES}
    if any(len(t.index) == 0 for t in targets.values()):
        return {"unavailable": "a split has no clip with this label"}
    if features == "model" and pooling == "stages" and not context.inference.encoder.has_stages:
        return {"unavailable": NO_STAGES}
    data = {
        role: probe.ProbeData(_inputs(context, role, features, t.index, pooling), t.multi_hot)
        for role, t in targets.items()
    }
    try:
        if pooling == "attention":
            return probe.attention_probe(
                data["train"], data["valid"], data["test"], task.multi_label, steps=attention_steps
            )
        return probe.linear_probe(
            data["train"], data["valid"], data["test"], task.multi_label, c_grid
        )
    except ValueError as err:
        return {"unavailable": str(err)}


@register("linear_probe")
def linear_probe(
    context: Context,
    tasks: Sequence[str] = label_tasks.DEMO_TASKS,
    poolings: Sequence[str] = POOLINGS,
    c_grid: Sequence[float] = probe.C_GRID,
    attention_steps: int = 300,
    baselines: Sequence[str] = BASELINES,
) -> dict[str, Any]:
    """Per task and pooling: test score (accuracy, or mAP when multi-label), the chosen
    setting, each baseline's scores under `baselines` and the `gain` over the better one; per
    task the clip counts, chance accuracy and clips left out (label unseen in training).
    Baselines are fitted only when the context's own features are the model's."""
    for pooling in poolings:
        if pooling not in POOLINGS:
            raise ValueError(f"linear_probe.poolings: {pooling!r} not one of {POOLINGS}")
    for name in baselines:
        if name not in BASELINES:
            raise ValueError(f"linear_probe.baselines: {name!r} not one of {BASELINES}")
    if context.features != "model":
        baselines = ()
    out: dict[str, Any] = {}
    train_clips = context.clips("train")
    for i, name in enumerate(tasks, 1):
        log.info("linear_probe: task %d/%d %s", i, len(tasks), name)
        if not any(name in c.labels for c in train_clips):
            out[name] = {"unavailable": f"no training clip has label {name!r}"}
            continue
        task = label_tasks.LabelTask.from_clips(name, train_clips)
        result: dict[str, Any] = {"metric": "mAP" if task.multi_label else "accuracy"}
        # Both pooled probes of a baseline read its mean+std statistics: fit them once.
        fitted: dict[tuple[str, bool], dict[str, Any]] = {}
        for pooling in poolings:
            scores = _fit(context, task, context.features, pooling, c_grid, attention_steps)
            if "test" in scores and baselines:
                attention = pooling == "attention"
                for base in baselines:
                    if (base, attention) not in fitted:
                        fitted[base, attention] = _fit(
                            context, task, base, pooling, c_grid, attention_steps
                        )
                compared = {b: fitted[b, attention] for b in baselines}
                scores["baselines"] = compared
                tests = [s["test"] for s in compared.values() if "test" in s]
                if tests:
                    scores["gain"] = scores["test"] - max(tests)
            result[pooling] = scores
        splits = {role: label_tasks.targets(task, context.clips(role)) for role in ROLES}
        result["unseen_label"] = {role: t.unseen for role, t in splits.items()}
        result["num_clips"] = {role: len(t.index) for role, t in splits.items()}
        test_targets = splits["test"].multi_hot
        if not task.multi_label and len(test_targets):
            result["chance"] = float(test_targets.mean(axis=0).max())
        out[name] = result
    return out
