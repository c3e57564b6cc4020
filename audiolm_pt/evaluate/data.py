"""Evaluation clips read whole from a built TFDS split: every frame, every caption and every
label of each clip, in the split's stored order. Unusable records are skipped and counted by
reason, never raised and never dropped silently."""

import collections
import dataclasses

import numpy as np

from audiolm_pt.data import pipeline
from audiolm_pt.data.pipeline_config import PipelineConfig
from audiolm_pt.data.processing import SkipError, clip_features
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


def clip_of(record: dict, cfg: PipelineConfig | None = None) -> Clip:
    """A `Clip` from a schema record, with every frame of the features a run of pipeline
    config `cfg` trains on (`processing.clip_features`: stored ones when `cfg` is None);
    raises `BadRecordError` naming what is wrong with the record."""
    try:
        features = clip_features(record, cfg)
    except SkipError as skip:
        raise BadRecordError(str(skip)) from skip
    return Clip(
        id=as_str(record["id"]),
        features=features,
        captions=tuple(as_str(c) for c in record.get("captions", ())),
        caption_styles=tuple(as_str(s) for s in record.get("caption_styles", ())),
        labels=labels_of(record),
    )


def read_records(records, limit: int | None = None, cfg: PipelineConfig | None = None) -> Split:
    """Clips of a random-access sequence of schema records (the first `limit`), with the
    features of pipeline config `cfg` (see `clip_of`)."""
    clips, skipped = [], collections.Counter()
    count = len(records) if limit is None else min(limit, len(records))
    for i in range(count):
        try:
            record = records[i]
        except Exception:  # a record the source cannot even decode
            skipped["unreadable"] += 1
            continue
        try:
            clips.append(clip_of(record, cfg))
        except BadRecordError as bad:
            skipped[str(bad)] += 1
    return Split(clips, dict(sorted(skipped.items())))


def read_split(
    name: str,
    split: str,
    data_dir: str | None,
    limit: int | None = None,
    cfg: PipelineConfig | None = None,
) -> Split:
    """The clips of TFDS dataset `name`, split `split`, with the features of `cfg`; a
    dataset that cannot give them fails first (`pipeline.check_sources`)."""
    source = pipeline.tfds_source(name, split, data_dir or None)
    if cfg is not None:
        pipeline.check_sources({name: source}, cfg)
    return read_records(source, limit, cfg)
