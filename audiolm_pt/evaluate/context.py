"""What every evaluator reads: the loaded run, its evaluation splits (read once) and each
split's clip encodings (computed once), and where it may write side files for the step.
`features` picks the representation: the model's encoder, or one of the hand-crafted
baselines of `handcrafted` (frames = log-mel or MFCC frames averaged to the encoder's 40 ms
token rate, pooled = the full-rate frames' mean and std);
`encoded(role, features=...)` reads another representation of the same clips.

An evaluation is the run's *standard* one when it reads the run's own dataset and splits, every
clip, with the model's features; any other is a *variant* with a label naming what differs
(`variant_label`, e.g. "limit40" or "mfcc_stats-ds_other"), under which its results and side
files are filed apart, so that it never replaces the standard one."""

import dataclasses
import hashlib
import json
import os
import re
from collections.abc import Mapping

import numpy as np

from audiolm_pt.evaluate import handcrafted
from audiolm_pt.evaluate.data import Clip, Split, read_split
from audiolm_pt.experiment import ExperimentConfig
from audiolm_pt.inference.batched import Encoded, Inference
from audiolm_pt.inference.run import Run

FEATURES = ("model", *handcrafted.BASELINES)
ROLES = ("train", "valid", "test")


@dataclasses.dataclass(frozen=True)
class DataSpec:
    """Which TFDS dataset and splits the evaluators read; `limit` caps clips per split."""

    name: str
    data_dir: str
    splits: dict[str, str]
    limit: int | None = None

    @classmethod
    def from_config(cls, config: ExperimentConfig, **overrides) -> "DataSpec":
        data = config.data
        spec = cls(
            name=data.tfds_names[0],
            data_dir=data.data_dir,
            splits={"train": data.train_split, "valid": data.eval_split, "test": "test"},
        )
        return dataclasses.replace(spec, **{k: v for k, v in overrides.items() if v is not None})


def handcrafted_encoding(features: np.ndarray, baseline: str) -> Encoded:
    """A clip's baseline `baseline` (a key of `handcrafted.BASELINES`) as an `Encoded`."""
    frames = handcrafted.BASELINES[baseline](features)
    stride = handcrafted.FRAME_STRIDE
    return Encoded(
        frames=handcrafted.strided(frames, stride),
        times=(np.arange(-(-len(frames) // stride)) * stride + (stride - 1) / 2) * 0.01,
        pooled=handcrafted.mean_std(frames),
        embedding=None,
    )


def stem(step: int, variant: str) -> str:
    """The file-name stem of a step's evaluation: "<step>" or "<step>.<variant>"."""
    return f"{step}.{variant}" if variant else str(step)


def variant_label(data: DataSpec | None, config: ExperimentConfig, features: str) -> str:
    """ "" for the standard evaluation of a run of `config`, else what differs from it: the
    features, dataset, splits and clip limit, joined by "-" (letters, digits and "_" only).
    Without `data` (splits handed over in memory) only the features count."""
    parts = [] if features == "model" else [features]
    if data is None:
        return "-".join(parts)
    standard = DataSpec.from_config(config)
    if data.name != standard.name:
        parts.append("ds_" + re.sub(r"[^a-z0-9]+", "_", data.name.lower()).strip("_"))
    if data.splits != standard.splits:
        digest = hashlib.sha1(json.dumps(data.splits, sort_keys=True).encode()).hexdigest()
        parts.append("splits_" + digest[:8])
    if data.limit is not None:
        parts.append(f"limit{data.limit}")
    return "-".join(parts)


class Context:
    def __init__(
        self,
        run: Run,
        data: DataSpec | None,
        *,
        features: str = "model",
        batch_size: int = 16,
        splits: Mapping[str, Split] | None = None,
        variant: str | None = None,
    ):
        """`splits` supplies already-read splits by role; others are read as `data` says.
        `variant` files side files apart (default: `variant_label` of data and features)."""
        if features not in FEATURES:
            raise ValueError(f"features={features!r}: expected one of {FEATURES}")
        self.run = run
        self.data = data
        self.features = features
        self.variant = variant_label(data, run.config, features) if variant is None else variant
        self.inference = Inference(
            run.model, run.tokenizer, max_text_len=run.max_text_len, batch_size=batch_size
        )
        self.skipped: dict[str, dict[str, int]] = {}
        self._splits: dict[str, Split] = dict(splits or {})
        self._encoded: dict[tuple[str, str], list[Encoded]] = {}

    def split(self, role: str) -> Split:
        if role in self._splits:
            return self._splits[role]
        if self.data is None or role not in self.data.splits:
            raise ValueError(f"no split configured for role {role!r}")
        split = read_split(
            self.data.name,
            self.data.splits[role],
            self.data.data_dir,
            self.data.limit,
            self.run.config.data.pipeline,
        )
        if not split.clips:
            raise ValueError(f"{self.data.name}:{self.data.splits[role]} has no usable clip")
        self.skipped[role] = split.skipped
        self._splits[role] = split
        return split

    def artefact_path(self, suffix: str) -> str | None:
        """`DIR/eval/<step>_<suffix>` (`<step>.<variant>_<suffix>` for a variant; its folder
        created) for a side file of this step's evaluation; None for a randomly initialised
        run, which has no step to file it under."""
        if self.run.step < 0:
            return None
        out_dir = os.path.join(self.run.workdir, "eval")
        os.makedirs(out_dir, exist_ok=True)
        return os.path.join(out_dir, f"{stem(self.run.step, self.variant)}_{suffix}")

    def clips(self, role: str) -> list[Clip]:
        return self.split(role).clips

    def encoded(self, role: str, features: str | None = None) -> list[Encoded]:
        """The clips of `role` in this context's representation, or in `features`."""
        features = features or self.features
        if features not in FEATURES:
            raise ValueError(f"features={features!r}: expected one of {FEATURES}")
        key = (role, features)
        if key not in self._encoded:
            clips = self.clips(role)
            if features == "model":
                self._encoded[key] = self.inference.encode([c.features for c in clips])
            else:
                self._encoded[key] = [handcrafted_encoding(c.features, features) for c in clips]
        return self._encoded[key]
