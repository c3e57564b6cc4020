"""Reads one example by its position in the mixed stream and turns it into model inputs, or
into a skip reason. Bad input never raises out of here: the caller counts the reason."""

import dataclasses
import functools
import sys
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from audiolm_pt.audio import FbankConfig, fbank_np, num_fbank_frames
from audiolm_pt.data import transforms
from audiolm_pt.data.pipeline_config import PipelineConfig
from audiolm_pt.data.schema import labels_of
from audiolm_pt.text import Tokenizer


class Processed(NamedTuple):
    """``example`` is None when the record was skipped; ``notes`` names why, and also records
    events that did not drop it (a mixup partner that could not be used)."""

    example: dict[str, np.ndarray] | None
    notes: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class WaveformFbank:
    """Kaldi fbank of a stored int16 waveform (the builder writes round(wave * 32768))."""

    cfg: FbankConfig

    def __call__(self, wave: np.ndarray) -> np.ndarray:
        return fbank_np(np.asarray(wave, np.float32) / 32768.0, self.cfg)

    def num_frames(self, num_samples: int) -> int:
        return num_fbank_frames(num_samples, self.cfg)


def task_labels(record: dict[str, Any], tasks: Sequence[str]) -> list[str]:
    """A record's labels of ``tasks`` as tagging-vocabulary entries: the bare labels for one
    task, "task:label" for several (so equal labels of different tasks stay apart)."""
    grouped = labels_of(record)
    if len(tasks) == 1:
        return list(grouped.get(tasks[0], []))
    return [f"{task}:{label}" for task in tasks for label in grouped.get(task, [])]


class _SkipError(Exception):
    """A record unusable for a named reason."""


@dataclasses.dataclass(frozen=True)
class ExampleProcessor:
    """Maps a position of the (shuffled, repeated, mixed) stream to a ``Processed``.

    Randomness is seeded by (``cfg.seed``, position), so an example's crop, masks, mixup
    partner and caption are fixed by the seed and its place in the stream, whatever the
    number of processes and workers; each epoch occupies new positions, so the sampled
    caption changes between epochs.
    """

    source: Sequence[Any]
    cfg: PipelineConfig
    tokenizer: Tokenizer | None
    fbank: WaveformFbank | None

    def __call__(self, index: int) -> Processed:
        rng = np.random.default_rng([self.cfg.seed, index]) if self.cfg.train else None
        try:
            clip = self._clip(index, rng)
        except _SkipError as skip:
            return Processed(None, (str(skip),))
        notes = ()
        if rng is not None and self.cfg.mixup_prob > 0 and rng.random() < self.cfg.mixup_prob:
            partner = int(rng.integers(0, min(len(self.source), sys.maxsize)))
            try:
                clip = self._mix(clip, self._clip(partner, rng), rng)
            except _SkipError as skip:
                notes = (f"mixup_partner:{skip}",)
        features = clip["features"]
        if rng is not None:
            c = self.cfg
            features = transforms.spec_augment(
                features, rng, c.time_masks, c.max_time_mask, c.freq_masks, c.max_freq_mask
            )
        example = {"features": features}
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
            raise _SkipError("unreadable") from e
        features = self._features(record)
        if not np.isfinite(features).all():
            raise _SkipError("non_finite_features")
        clip = {"features": transforms.crop(features, self.cfg.max_frames, rng), "caption": None}
        if self.tokenizer is not None:
            clip["caption"] = transforms.sample_caption(
                record.get("captions", ()),
                record.get("caption_styles", ()),
                self.cfg.caption_style_weights,
                rng,
            )
            if clip["caption"] is None:
                raise _SkipError("no_caption")
        clip["labels"] = None
        if self.cfg.label_task:
            labels = task_labels(record, self.cfg.label_tasks)
            clip["labels"] = transforms.multi_hot(labels, self._label_index)
        return clip

    def _features(self, record: dict[str, Any]) -> np.ndarray:
        if self.fbank is not None:
            wave = np.asarray(record.get("waveform", ()))
            if wave.size == 0:
                raise _SkipError("no_waveform")
            if wave.ndim != 1:
                raise _SkipError("malformed")
            if self.fbank.num_frames(wave.size) < 1:
                raise _SkipError("too_short")
            return self.fbank(wave)
        try:
            fbank = np.asarray(record["fbank"], np.float32)
            num_frames = int(record["num_frames"])
        except (KeyError, TypeError, ValueError) as e:
            raise _SkipError("malformed") from e
        if fbank.ndim != 2 or num_frames > len(fbank):
            raise _SkipError("malformed")
        if num_frames < 1:
            raise _SkipError("too_short")
        return fbank[:num_frames]

    def _mix(
        self, first: dict[str, Any], second: dict[str, Any], rng: np.random.Generator
    ) -> dict[str, Any]:
        weight = rng.beta(self.cfg.mixup_alpha, self.cfg.mixup_alpha)
        weight = max(weight, 1.0 - weight)
        mixed = {"features": transforms.mix_features(first["features"], second["features"], weight)}
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
