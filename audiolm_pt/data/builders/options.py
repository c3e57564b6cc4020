"""Build options, checked once at start-up: a bad value fails with a message naming its key."""

import dataclasses
import re
from pathlib import Path

from audiolm_pt.audio import FRONTENDS, FbankConfig, FrontendConfig, LogMelConfig
from audiolm_pt.data.builders.formats import FORMATS
from audiolm_pt.data.schema import CAPTION_STYLES

LONG_CLIP_POLICIES = ("window", "truncate")
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclasses.dataclass(frozen=True)
class BuildOptions:
    """How to turn one source corpus into a TFDS dataset.

    ``name`` defaults to the format name; ``caption_style`` (None = the format's default) tags
    external captions; ``audio_patterns`` overrides the audiocaps/wavcaps audio lookup;
    ``frontend`` ("fbank" or "log_mel", with the options of ``fbank`` or ``log_mel``) names the
    features stored when ``store_features``; ``store_waveform`` also stores the resampled
    audio (FLAC), for features computed in the pipeline or on the accelerator;
    ``splits`` (None = every split the source holds) limits what is built; ``max_report_ids``
    caps the example ids kept per report reason.
    """

    source_dir: Path
    format: str = "demo"
    name: str | None = None
    max_seconds: float = 30.0
    long_clip_policy: str = "window"
    store_waveform: bool = False
    store_features: bool = True
    workers: int = 1
    caption_style: str | None = None
    audio_patterns: tuple[str, ...] | None = None
    splits: tuple[str, ...] | None = None
    frontend: str = "fbank"
    fbank: FbankConfig = dataclasses.field(default_factory=FbankConfig)
    log_mel: LogMelConfig = dataclasses.field(default_factory=LogMelConfig)
    max_report_ids: int = 10

    def __post_init__(self):
        object.__setattr__(self, "source_dir", Path(self.source_dir))
        if self.audio_patterns is not None:
            object.__setattr__(self, "audio_patterns", tuple(self.audio_patterns))
        if self.name is None:
            object.__setattr__(self, "name", self.format)
        checks = {
            "format": (self.format in FORMATS, f"one of {sorted(FORMATS)}"),
            "source_dir": (self.source_dir.is_dir(), "an existing directory"),
            "name": (bool(_NAME.match(self.name)), "snake_case ([a-z][a-z0-9_]*)"),
            "max_seconds": (self.max_seconds > 0, "positive"),
            "long_clip_policy": (self.long_clip_policy in LONG_CLIP_POLICIES, "window|truncate"),
            "workers": (self.workers >= 0, "0 or more"),
            "caption_style": (
                self.caption_style in (None, *CAPTION_STYLES),
                f"one of {CAPTION_STYLES}",
            ),
            "frontend": (self.frontend in FRONTENDS, f"one of {FRONTENDS}"),
            "fbank": (isinstance(self.fbank, FbankConfig), "an audiolm_pt.audio.FbankConfig"),
            "log_mel": (isinstance(self.log_mel, LogMelConfig), "an audiolm_pt.audio.LogMelConfig"),
            "store_features": (
                self.store_features or self.store_waveform,
                "True unless store_waveform is (a record needs features or audio)",
            ),
            "max_report_ids": (self.max_report_ids >= 0, "0 or more"),
        }
        for key, (ok, expected) in checks.items():
            if not ok:
                raise ValueError(f"build option {key}={getattr(self, key)!r}: must be {expected}")
        if self.splits is not None:
            object.__setattr__(self, "splits", tuple(self.splits))
            unknown = set(self.splits) - set(self.available_splits())
            if unknown:
                raise ValueError(
                    f"build option splits={self.splits!r}: {sorted(unknown)} not in "
                    f"{self.source_dir} (it holds {self.available_splits()})"
                )
        if not self.splits_to_build():
            raise ValueError(
                f"build option source_dir={str(self.source_dir)!r}: no {self.format} manifest "
                "with any split found there"
            )

    @property
    def frontend_config(self) -> FrontendConfig:
        return self.fbank if self.frontend == "fbank" else self.log_mel

    def available_splits(self) -> list[str]:
        return FORMATS[self.format].list_splits(self.source_dir, self)

    def splits_to_build(self) -> list[str]:
        return list(self.splits) if self.splits is not None else self.available_splits()

    def metadata(self) -> dict:
        """The options a reader of the dataset needs, as JSON-able values."""
        return {
            "format": self.format,
            "source_dir": str(self.source_dir),
            "max_seconds": self.max_seconds,
            "long_clip_policy": self.long_clip_policy,
            "store_waveform": self.store_waveform,
            "store_features": self.store_features,
            "frontend": self.frontend,
            "frontend_options": dataclasses.asdict(self.frontend_config),
        }
