"""Reads one example by its position in the mixed stream and turns it into model inputs, or
into a skip reason. Bad input never raises out of here: the caller counts the reason."""

import dataclasses
import functools
import io
import sys
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import soundfile

from audiolm_pt.audio import frontend
from audiolm_pt.data import transforms
from audiolm_pt.data.pipeline_config import PipelineConfig
from audiolm_pt.data.schema import labels_of
from audiolm_pt.text import Tokenizer


class Processed(NamedTuple):
    """``example`` is None when the record was skipped; ``notes`` names why, and also records
    events that did not drop it (a mixup partner that could not be used)."""

    example: dict[str, np.ndarray] | None
    notes: tuple[str, ...]


# Counted for each example whose clip was looped up to the pipeline's min_frames.
SHORT_CLIP_NOTE = "short_clip_repeated"


class SkipError(Exception):
    """A record unusable for a named reason."""


def decode_waveform(value: Any) -> np.ndarray:
    """int16 samples of a record's FLAC ``waveform`` bytes (the builder's format)."""
    data = bytes(value) if isinstance(value, bytes | np.bytes_) else b""
    if not data:
        raise SkipError("no_waveform")
    try:
        wave, _ = soundfile.read(io.BytesIO(data), dtype="int16")
    except Exception as e:  # libsndfile's errors for damaged data vary
        raise SkipError("undecodable_waveform") from e
    if wave.ndim != 1:
        raise SkipError("malformed")
    return wave


def clip_features(record: dict[str, Any], cfg: PipelineConfig | None) -> np.ndarray:
    """A record's features, every frame, as ``cfg`` reads them: the stored ones (also when
    ``cfg`` is None), or the front end's from the stored waveform (``feature_source`` host or
    device: the device computes these same frames). Raises ``SkipError`` naming why not."""
    if cfg is None or cfg.feature_source == "stored":
        features = _stored_features(record)
    else:
        wave = _clip_waveform(record, cfg)
        features = frontend.features_np(wave / frontend.INT16_SCALE, cfg.frontend_config)
    if not np.isfinite(features).all():
        raise SkipError("non_finite_features")
    return features


def _clip_waveform(record: dict[str, Any], cfg: PipelineConfig) -> np.ndarray:
    wave = decode_waveform(record.get("waveform", b""))
    if frontend.num_frames(wave.size, cfg.frontend_config) < 1:
        raise SkipError("too_short")
    return wave


def _stored_features(record: dict[str, Any]) -> np.ndarray:
    try:
        features = np.asarray(record["features"], np.float32)
        num_frames = int(record["num_frames"])
    except (KeyError, TypeError, ValueError) as e:
        raise SkipError("malformed") from e
    if features.ndim != 2 or num_frames > len(features):
        raise SkipError("no_features" if features.size == 0 else "malformed")
    if num_frames < 1:
        raise SkipError("too_short")
    return features[:num_frames]


def task_labels(record: dict[str, Any], tasks: Sequence[str]) -> list[str]:
    """A record's labels of ``tasks`` as tagging-vocabulary entries: the bare labels for one
    task, "task:label" for several (so equal labels of different tasks stay apart)."""
    grouped = labels_of(record)
    if len(tasks) == 1:
        return list(grouped.get(tasks[0], []))
    return [f"{task}:{label}" for task in tasks for label in grouped.get(task, [])]


@dataclasses.dataclass(frozen=True)
class ExampleProcessor:
    """Maps a position of the (shuffled, repeated, mixed) stream to a ``Processed``.

    Randomness is seeded by (``cfg.seed``, position), so an example's crop, masks, mixup
    partner and caption are fixed by the seed and its place in the stream, whatever the
    number of processes and workers; each epoch occupies new positions, so the sampled
    caption changes between epochs.

    With ``feature_source="device"`` an example holds the crop as a waveform segment
    (``waveform`` int16, ``num_frames``) instead of ``features``; SpecAugment is then left to
    the device, and mixup adds the two segments with amplitude weights sqrt(w), sqrt(1 - w),
    so that their powers mix with weights w, 1 - w as the host's log-domain mixup does.
    """

    source: Sequence[Any]
    cfg: PipelineConfig
    tokenizer: Tokenizer | None

    def __call__(self, index: int) -> Processed:
        rng = np.random.default_rng([self.cfg.seed, index]) if self.cfg.train else None
        try:
            clip = self._clip(index, rng)
        except SkipError as skip:
            return Processed(None, (str(skip),))
        notes = (SHORT_CLIP_NOTE,) if clip["repeated"] else ()
        if rng is not None and self.cfg.mixup_prob > 0 and rng.random() < self.cfg.mixup_prob:
            partner = int(rng.integers(0, min(len(self.source), sys.maxsize)))
            try:
                clip = self._mix(clip, self._clip(partner, rng), rng)
            except SkipError as skip:
                notes += (f"mixup_partner:{skip}",)
        example = {key: clip[key] for key in ("features", "waveform", "num_frames") if key in clip}
        if rng is not None and "features" in example:
            c = self.cfg
            masks = (c.time_masks, c.max_time_mask, c.freq_masks, c.max_freq_mask)
            example["features"] = transforms.spec_augment(example["features"], rng, *masks)
        if self.tokenizer is not None:
            tok = self.tokenizer
            tokens = tok.encode(clip["caption"])
            if not tokens:
                return Processed(None, ("empty_caption", *notes))
            example.update(
                transforms.caption_arrays(
                    tokens, self.cfg.max_text_len, tok.pad_id, tok.bos_id, tok.eos_id
                )
            )
        if clip["labels"] is not None:
            example["labels"] = clip["labels"]
        return Processed(example, notes)

    def _clip(self, index: int, rng: np.random.Generator | None) -> dict[str, Any]:
        try:
            record = self.source[index]
        except Exception as e:
            raise SkipError("unreadable") from e
        clip = self._audio(record, rng)
        clip["caption"] = None
        if self.tokenizer is not None:
            clip["caption"] = transforms.sample_caption(
                record.get("captions", ()),
                record.get("caption_styles", ()),
                self.cfg.caption_style_weights,
                rng,
            )
            if clip["caption"] is None:
                raise SkipError("no_caption")
        clip["labels"] = None
        if self.cfg.label_task:
            labels = task_labels(record, self.cfg.label_tasks)
            clip["labels"] = transforms.multi_hot(labels, self._label_index)
        return clip

    def _audio(self, record: dict[str, Any], rng: np.random.Generator | None) -> dict[str, Any]:
        """The example's crop: ``features``, or for the device a ``waveform`` segment and its
        ``num_frames``; a clip shorter than ``min_frames`` is looped up to it (``repeated``)."""
        frames, least = self.cfg.max_frames, self.cfg.min_frames
        if self.cfg.feature_source != "device":
            features = clip_features(record, self.cfg)
            return {
                "features": transforms.crop(transforms.repeat_to(features, least), frames, rng),
                "repeated": len(features) < least,
            }
        wave = _clip_waveform(record, self.cfg)
        fe = self.cfg.frontend_config
        repeated = frontend.num_frames(wave.size, fe) < least
        if repeated:
            wave = transforms.repeat_to(wave, frontend.segment_length(least, fe))
        total = frontend.num_frames(wave.size, fe)
        first = transforms.crop_start(total, frames, rng)
        return {
            "waveform": frontend.cut_segment(wave, first, frames, fe),
            "num_frames": np.int32(min(total - first, frames)),
            "repeated": repeated,
        }

    def _mix(
        self, first: dict[str, Any], second: dict[str, Any], rng: np.random.Generator
    ) -> dict[str, Any]:
        weight = rng.beta(self.cfg.mixup_alpha, self.cfg.mixup_alpha)
        weight = max(weight, 1.0 - weight)
        if "waveform" in first:
            mixed = {
                "waveform": transforms.mix_waveforms(first["waveform"], second["waveform"], weight),
                "num_frames": max(first["num_frames"], second["num_frames"]),
            }
        else:
            mixed = {
                "features": transforms.mix_features(first["features"], second["features"], weight)
            }
        mixed["caption"] = first["caption"]
        if first["caption"] is not None and self.cfg.mixup_captions == "concat":
            mixed["caption"] = (
                first["caption"] + transforms.MIXUP_CAPTION_JOINER + second["caption"]
            )
        mixed["labels"] = None
        if first["labels"] is not None:
            mixed["labels"] = weight * first["labels"] + (1.0 - weight) * second["labels"]
        return mixed

    @functools.cached_property
    def _label_index(self) -> dict[str, int]:
        return {label: i for i, label in enumerate(self.cfg.label_vocab)}
