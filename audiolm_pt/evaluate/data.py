"""Evaluation clips read whole from a built TFDS split: every frame, every caption and every
label of each clip, in the split's stored order. Unusable records are skipped and counted by
reason, never raised and never dropped silently."""

import collections
import dataclasses

import numpy as np

from audiolm_pt.data import pipeline
from audiolm_pt.data.schema import labels_of
from audiolm_pt.data.transforms import as_str


@dataclasses.dataclass(frozen=True)
class Clip:
    id: str
    features: np.ndarray  # float32 [T, n_mels], all valid frames
    captions: tuple[str, ...]
    caption_styles: tuple[str, ...]
    labels: dict[str, list[str]]


@dataclasses.dataclass(frozen=True)
class Split:
    clips: list[Clip]
    skipped: dict[str, int]


class BadRecordError(ValueError):
    """A record that cannot be evaluated; the message is the reason counted."""


def clip_of(record: dict) -> Clip:
    """A `Clip` from a schema record; raises `BadRecordError` naming what is wrong with it."""
    try:
        fbank = np.asarray(record["fbank"], np.float32)
        num_frames = int(record["num_frames"])
    except (KeyError, TypeError, ValueError) as err:
        raise BadRecordError("malformed") from err
    if fbank.ndim != 2 or not 0 < num_frames <= len(fbank):
        raise BadRecordError("malformed")
    features = fbank[:num_frames]
    if not np.isfinite(features).all():
        raise BadRecordError("non_finite_features")
    return Clip(
        id=as_str(record["id"]),
        features=features,
        captions=tuple(as_str(c) for c in record.get("captions", ())),
        caption_styles=tuple(as_str(s) for s in record.get("caption_styles", ())),
        labels=labels_of(record),
    )


def read_records(records, limit: int | None = None) -> Split:
    """Clips of a random-access sequence of schema records (the first `limit`)."""
    clips, skipped = [], collections.Counter()
    count = len(records) if limit is None else min(limit, len(records))
    for i in range(count):
        try:
            record = records[i]
        except Exception:  # a record the source cannot even decode
            skipped["unreadable"] += 1
            continue
        try:
            clips.append(clip_of(record))
        except BadRecordError as bad:
            skipped[str(bad)] += 1
    return Split(clips, dict(sorted(skipped.items())))


def read_split(name: str, split: str, data_dir: str | None, limit: int | None = None) -> Split:
    """The clips of TFDS dataset `name`, split `split`."""
    return read_records(pipeline.tfds_source(name, split, data_dir or None), limit)
