"""Ranking and classification metrics of the evaluators: retrieval recall@k and mAP@k,
accuracy, confusion counts and macro mean average precision.

Ties are ranked pessimistically: an item scored equal to a relevant one is placed before it,
so a constant scorer earns chance-level (or worse) figures, never credit for ties.
"""

from collections.abc import Sequence

import numpy as np
from sklearn.metrics import average_precision_score, confusion_matrix


def pessimistic_order(scores: np.ndarray, relevant: np.ndarray) -> np.ndarray:
    """Per-row ranking of items [Q, N] by descending score, irrelevant first among ties."""
    return np.lexsort((relevant.astype(np.int8), -scores), axis=-1)


def retrieval_metrics(
    scores: np.ndarray, relevant: np.ndarray, ks: Sequence[int] = (1, 5, 10), map_k: int = 10
) -> dict[str, float]:
    """R@k (a query counts as hit when any relevant item is in its top k) and mAP@map_k
    (AP over the top map_k, normalised by min(#relevant, map_k)) for scores/relevant [Q, N].
    A query without any relevant item is an error."""
    scores = np.asarray(scores, np.float64)
    relevant = np.asarray(relevant, bool)
    if scores.shape != relevant.shape or scores.ndim != 2:
        raise ValueError(f"scores {scores.shape} and relevant {relevant.shape} must be [Q, N]")
    num_relevant = relevant.sum(axis=1)
    if (num_relevant == 0).any():
        raise ValueError(f"{int((num_relevant == 0).sum())} queries have no relevant item")
    order = pessimistic_order(scores, relevant)
    hits = np.take_along_axis(relevant, order, axis=1)
    first_hit = hits.argmax(axis=1)
    out = {f"R@{k}": float(np.mean(first_hit < k)) for k in ks}
    top = hits[:, :map_k].astype(np.float64)
    precision = np.cumsum(top, axis=1) / np.arange(1, top.shape[1] + 1)
    ap = (precision * top).sum(axis=1) / np.minimum(num_relevant, map_k)
    out[f"mAP@{map_k}"] = float(ap.mean())
    return out


def text_to_audio(similarity: np.ndarray, caption_clip: np.ndarray) -> dict[str, float]:
    """similarity [captions, clips]; caption_clip[i] the index of caption i's clip (its one
    relevant item)."""
    relevant = np.arange(similarity.shape[1])[None, :] == np.asarray(caption_clip)[:, None]
    return retrieval_metrics(similarity, relevant)


def audio_to_text(similarity: np.ndarray, caption_clip: np.ndarray) -> dict[str, float]:
    """similarity [clips, captions]; every caption of a clip is relevant to it."""
    relevant = np.arange(similarity.shape[0])[:, None] == np.asarray(caption_clip)[None, :]
    return retrieval_metrics(similarity, relevant)


def accuracy(scores: np.ndarray, targets: np.ndarray) -> float:
    """Top-1 accuracy of scores [n, C] against class indices [n] (first maximum wins)."""
    return float(np.mean(np.argmax(scores, axis=1) == np.asarray(targets)))


def confusion_counts(scores: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """[C, C] counts for scores [n, C] and class indices [n]: row = true class, column =
    predicted class (first maximum wins, as in `accuracy`)."""
    scores = np.asarray(scores)
    return confusion_matrix(
        np.asarray(targets), np.argmax(scores, axis=1), labels=np.arange(scores.shape[1])
    )


def mean_average_precision(scores: np.ndarray, targets: np.ndarray) -> float:
    """Macro mAP over the classes with at least one positive; targets multi-hot [n, C]."""
    targets = np.asarray(targets) > 0
    present = targets.any(axis=0)
    if not present.any():
        raise ValueError("no class has a positive example")
    return float(
        np.mean(
            [average_precision_score(targets[:, c], scores[:, c]) for c in np.flatnonzero(present)]
        )
    )


def one_hot(indices: np.ndarray, num_classes: int) -> np.ndarray:
    return np.eye(num_classes, dtype=np.float32)[np.asarray(indices)]
