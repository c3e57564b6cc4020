"""The input pipeline's configuration: one frozen dataclass, validated at start-up."""

import dataclasses
import os
from collections.abc import Mapping
from typing import Any

from audiolm_pt import strict_config
from audiolm_pt.audio.fbank import FbankConfig
from audiolm_pt.audio.frontend import FRONTENDS, FrontendConfig
from audiolm_pt.audio.log_mel import LogMelConfig
from audiolm_pt.data.schema import CAPTION_STYLES

MIXUP_CAPTION_MODES = ("dominant", "concat")
FEATURE_SOURCES = ("stored", "host", "device")


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
    """What the pipeline does to examples and how it schedules them.

    Batching: ``global_batch_size`` is split evenly over JAX processes.
    Features: ``frontend`` ("fbank" or "log_mel", with the options of ``fbank`` or
    ``log_mel``) from ``feature_source``: "stored" reads the features the dataset builder
    computed, "host" computes them from the stored waveform in the pipeline's workers, and
    "device" hands the trainer waveform segments (``waveform`` int16 [B, S], ``num_frames``
    [B]) whose features the jitted step computes on the accelerator
    (``data.device_features``), SpecAugment included.
    Audio: a clip shorter than ``min_frames`` (an encoder's receptive field) is looped up to
    it and counted as "short_clip_repeated"; crop (random in training, centre in evaluation)
    to ``max_frames``; with
    ``bucket_frames`` a batch is padded to the smallest bucket that holds its longest clip.
    Augmentation (training only): SpecAugment masks; mixup with probability ``mixup_prob``,
    weight ~ Beta(``mixup_alpha``, ``mixup_alpha``) folded to >= 0.5 so the first clip dominates;
    ``mixup_captions`` = "dominant" keeps the dominant clip's caption, "concat" joins both with
    " and "; labels mix with the same weights.
    Text (when ``tokenizer`` is set): one caption per example and epoch, drawn with
    ``caption_style_weights``; encoder and decoder arrays of ``max_text_len``.
    Sources: ``mixture_weights`` {source name: weight}; empty means equal weights. In
    training each source keeps ``kept_records(n, data_fraction)`` of its ``n`` records: the
    first ones of a permutation fixed by ``data_fraction_seed`` alone, so smaller fractions
    are nested in larger ones whatever ``seed`` shuffles. Evaluation reads every record.
    Labels: ``label_task`` names one label task, or several separated by commas; with several,
    ``label_vocab`` entries are "task:label".
    Workers: -1 picks a default from the number of CPU cores.
    """

    global_batch_size: int = 32
    seed: int = 0
    num_epochs: int | None = None
    train: bool = True
    max_frames: int = 1000
    min_frames: int = 1
    bucket_frames: tuple[int, ...] = ()
    time_masks: int = 2
    max_time_mask: int = 50
    freq_masks: int = 2
    max_freq_mask: int = 10
    mixup_prob: float = 0.0
    mixup_alpha: float = 1.0
    mixup_captions: str = "dominant"
    tokenizer: str = ""
    max_text_len: int = 128
    caption_style_weights: Mapping[str, float] = dataclasses.field(
        default_factory=lambda: dict.fromkeys(CAPTION_STYLES, 1.0)
    )
    frontend: str = "fbank"
    feature_source: str = "stored"
    fbank: FbankConfig = dataclasses.field(default_factory=FbankConfig)
    log_mel: LogMelConfig = dataclasses.field(default_factory=LogMelConfig)
    label_task: str = ""
    label_vocab: tuple[str, ...] = ()
    mixture_weights: Mapping[str, float] = dataclasses.field(default_factory=dict)
    data_fraction: float = 1.0
    data_fraction_seed: int = 0
    num_workers: int = -1
    worker_buffer_size: int = 2
    read_threads: int = -1
    read_buffer_size: int = 64

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "PipelineConfig":
        """Builds a config from a dict or ``ml_collections.ConfigDict``; an unknown key fails."""
        return strict_config.from_dict(cls, values)

    def __post_init__(self):
        positive = ("global_batch_size", "max_frames", "worker_buffer_size")
        for key in positive:
            _require(getattr(self, key) > 0, key, "must be > 0")
        _require(
            1 <= self.min_frames <= self.max_frames, "min_frames", "must be in [1, max_frames]"
        )
        _require(self.max_text_len >= 3, "max_text_len", "must be >= 3 (BOS, a token, EOS)")
        for key in ("time_masks", "max_time_mask", "freq_masks", "max_freq_mask"):
            _require(getattr(self, key) >= 0, key, "must be >= 0")
        _require(self.num_epochs is None or self.num_epochs > 0, "num_epochs", "must be > 0")
        _require(0.0 <= self.mixup_prob <= 1.0, "mixup_prob", "must be in [0, 1]")
        _require(self.mixup_alpha > 0, "mixup_alpha", "must be > 0")
        _require(self.frontend in FRONTENDS, "frontend", f"must be one of {FRONTENDS}")
        _require(
            self.feature_source in FEATURE_SOURCES,
            "feature_source",
            f"must be one of {FEATURE_SOURCES}",
        )
        _require(
            self.mixup_captions in MIXUP_CAPTION_MODES,
            "mixup_captions",
            f"must be one of {MIXUP_CAPTION_MODES}",
        )
        _require(
            all(0 < b <= self.max_frames for b in self.bucket_frames)
            and list(self.bucket_frames) == sorted(set(self.bucket_frames)),
            "bucket_frames",
            f"must be increasing frame counts in (0, max_frames={self.max_frames}]",
        )
        for style, weight in self.caption_style_weights.items():
            _require(style in CAPTION_STYLES, f"caption_style_weights.{style}", "unknown style")
            _require(weight >= 0, f"caption_style_weights.{style}", "must be >= 0")
        _require(
            not self.tokenizer or sum(self.caption_style_weights.values()) > 0,
            "caption_style_weights",
            "needs a positive weight",
        )
        for name, weight in self.mixture_weights.items():
            _require(weight > 0, f"mixture_weights.{name}", "must be > 0")
        _require(
            bool(self.label_task) == bool(self.label_vocab), "label_vocab", "goes with label_task"
        )
        _require(
            all(self.label_tasks) and len(set(self.label_tasks)) == len(self.label_tasks),
            "label_task",
            "must be distinct task names separated by commas",
        )
        _require(0.0 < self.data_fraction <= 1.0, "data_fraction", "must be in (0, 1]")
        _require(self.num_workers >= -1, "num_workers", "must be >= 0, or -1 for the default")
        _require(self.read_threads == -1 or self.read_threads > 0, "read_threads", "> 0 or -1")
        _require(self.read_buffer_size > 0, "read_buffer_size", "must be > 0")

    @property
    def frontend_config(self) -> FrontendConfig:
        """The options of the selected front end."""
        return self.fbank if self.frontend == "fbank" else self.log_mel

    @property
    def label_tasks(self) -> tuple[str, ...]:
        return split_label_tasks(self.label_task)

    def per_host_batch_size(self, process_count: int) -> int:
        if self.global_batch_size % process_count:
            raise ValueError(
                f"global_batch_size={self.global_batch_size} is not divisible by the "
                f"{process_count} JAX processes"
            )
        return self.global_batch_size // process_count

    def resolved_num_workers(self) -> int:
        """One core is left to the training process; beyond 16 workers memory, not CPU, binds."""
        if self.num_workers >= 0:
            return self.num_workers
        return min(max((os.cpu_count() or 1) - 1, 0), 16)

    def resolved_read_threads(self) -> int:
        """Threads per reading process (each worker, or the trainer without workers): the cores
        shared among those processes. Threads beyond that only contend for the GIL: two threads
        in each of two workers on two cores cut raw-audio throughput by a fifth."""
        if self.read_threads > 0:
            return self.read_threads
        readers = max(self.resolved_num_workers(), 1)
        return min(max((os.cpu_count() or 1) // readers, 1), 16)


def split_label_tasks(label_task: str) -> tuple[str, ...]:
    """The task names in a ``label_task`` value (empty when it is empty)."""
    return tuple(t.strip() for t in label_task.split(",")) if label_task else ()


def kept_records(num_records: int, fraction: float) -> int:
    """How many of a source's ``num_records`` a training ``data_fraction`` keeps (at least
    one; Python's round, half to even)."""
    return max(1, round(fraction * num_records))


def _require(ok: bool, key: str, message: str) -> None:
    if not ok:
        raise ValueError(f"{key}: {message}")
