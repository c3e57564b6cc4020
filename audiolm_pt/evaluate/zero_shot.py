"""Zero-shot classification from class names. Contrastive models: each class name goes
through prompt templates, the normalised text embeddings are averaged (and renormalised) per
class, and clips are scored by cosine similarity. Captioning-only models (CapPa-style): each
clip scores each prompted class text by its summed token log-probability under the decoder,
averaged over templates. Accuracy and the confusion counts (`confusion`: `classes` and
`counts`, rows true, columns predicted; lists, so not among the flattened scalars) for
single-label tasks, macro mAP for every task."""

from collections.abc import Sequence
from typing import Any

import numpy as np

from audiolm_pt.evaluate import metrics
from audiolm_pt.evaluate import tasks as label_tasks
from audiolm_pt.evaluate.context import Context
from audiolm_pt.evaluate.registry import register

TEMPLATES = ("{}", "the sound of {}.", "a recording of {}.")
ZERO_SHOT_TASKS = ("instrument_family", "event_category", "language", "domain")


def class_text(label: str) -> str:
    return label.replace("_", " ")


def class_embeddings(embed_text, classes: Sequence[str], templates: Sequence[str]) -> np.ndarray:
    """[C, E]: per class, the renormalised mean of its prompts' normalised embeddings."""
    texts = [t.format(class_text(c)) for c in classes for t in templates]
    emb = np.asarray(embed_text(texts), np.float64).reshape(len(classes), len(templates), -1)
    emb /= np.linalg.norm(emb, axis=-1, keepdims=True)
    mean = emb.mean(axis=1)
    return mean / np.linalg.norm(mean, axis=-1, keepdims=True)


def _likelihood_scores(context: Context, clips, classes, templates) -> np.ndarray:
    texts = [t.format(class_text(c)) for c in classes for t in templates]
    scores = [context.inference.caption_logprob(clip.features, texts) for clip in clips]
    return np.stack(scores).reshape(len(clips), len(classes), len(templates)).mean(axis=-1)


@register("zero_shot")
def zero_shot(
    context: Context,
    tasks: Sequence[str] = ZERO_SHOT_TASKS,
    templates: Sequence[str] = TEMPLATES,
    split: str = "test",
    scoring: str = "auto",
) -> dict[str, Any]:
    """Per task: accuracy and confusion counts (single-label), mAP, class count and chance
    accuracy."""
    inference = context.inference
    if scoring == "auto":
        scoring = "embedding" if inference.has_text else "likelihood"
    if scoring not in ("embedding", "likelihood"):
        raise ValueError(f"zero_shot.scoring={scoring!r}: expected embedding, likelihood or auto")
    if context.features != "model":
        return {"unavailable": "zero-shot needs the model's text side"}
    clips = context.clips(split)
    out: dict[str, Any] = {"scoring": scoring}
    for name in tasks:
        if not any(name in c.labels for c in clips):
            out[name] = {"unavailable": f"no {split} clip has label {name!r}"}
            continue
        task = label_tasks.LabelTask.from_clips(name, clips)
        target = label_tasks.targets(task, clips)
        chosen = [clips[i] for i in target.index]
        if scoring == "embedding":
            encoded = context.encoded(split)
            audio = np.stack([encoded[i].embedding for i in target.index])
            scores = audio @ class_embeddings(inference.embed_text, task.classes, templates).T
        else:
            scores = _likelihood_scores(context, chosen, task.classes, templates)
        result = {
            "mAP": metrics.mean_average_precision(scores, target.multi_hot),
            "num_classes": len(task.classes),
            "num_clips": len(chosen),
        }
        if not task.multi_label:
            result["accuracy"] = metrics.accuracy(scores, target.single)
            result["chance"] = float(np.max(target.multi_hot.mean(axis=0)))
            result["confusion"] = {
                "classes": list(task.classes),
                "counts": metrics.confusion_counts(scores, target.single).tolist(),
            }
        out[name] = result
    return out
