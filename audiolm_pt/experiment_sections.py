"""The experiment config's own sections: optimizer, checkpointing, the training loop and the
data sources. (The model, objective, sharding and pipeline sections live with the code they
configure: `models.config`, `objectives`, `sharding`, `data.pipeline_config`.)

Pure Python on purpose: `audiolm_pt.experiment` parses every section here, and evaluators and
`audiolm_pt.load` read runs through it without importing the trainer (Orbax, Grain, clu).
Each dataclass's defaults are the one place that default lives; `configs/common.py` starts
from them.
"""

import dataclasses

from audiolm_pt.data.pipeline_config import PipelineConfig

SCHEDULES = ("cosine", "rsqrt", "constant", "eden")
OPTIMIZERS = ("adamw", "scaled_adam")
INIT_MODES = ("all", "encoder")
DATA_SOURCES = ("tfds", "synthetic")


def _require(checks: dict[str, bool], section: str, config: object) -> None:
    for key, ok in checks.items():
        if not ok:
            raise ValueError(f"{section}.{key}={getattr(config, key)!r} is out of range")


@dataclasses.dataclass(frozen=True)
class ScaledAdamConfig:
    """ScaledAdam's own settings (`optimizer.scaled_adam`), with the reference's defaults: updates
    scaled by each tensor's rms, kept within [param_min_rms, param_max_rms]; one-element
    tensors at `scalar_lr_scale` times the rate, clamped to ±scalar_max; the scale learnt every
    `size_update_period` steps; gradients clipped to `clipping_scale` (0: never) times the
    median norm of the last `clipping_update_period` steps."""

    clipping_scale: float = 2.0
    scalar_lr_scale: float = 0.1
    param_min_rms: float = 1e-5
    param_max_rms: float = 3.0
    scalar_max: float = 10.0
    size_update_period: int = 4
    clipping_update_period: int = 100

    def __post_init__(self):
        checks = {
            "clipping_scale": self.clipping_scale >= 0,
            "scalar_lr_scale": self.scalar_lr_scale > 0,
            "param_min_rms": 0 < self.param_min_rms < self.param_max_rms,
            "scalar_max": self.scalar_max > 0,
            "size_update_period": self.size_update_period >= 1,
            "clipping_update_period": self.clipping_update_period >= 1,
        }
        _require(checks, "optimizer.scaled_adam", self)


@dataclasses.dataclass(frozen=True)
class EdenConfig:
    """The Eden schedule's constants: the rate falls as ((t² + lr_steps²)/lr_steps²)^-¼ in
    steps t and likewise in epochs of data (t / steps_per_epoch; 0 leaves that factor out);
    the warmup rises linearly from `warmup_start` of the rate over `optimizer.warmup_steps`."""

    lr_steps: float = 7500.0
    lr_epochs: float = 3.5
    steps_per_epoch: int = 0
    warmup_start: float = 0.5

    def __post_init__(self):
        checks = {
            "lr_steps": self.lr_steps > 0,
            "lr_epochs": self.lr_epochs > 0,
            "steps_per_epoch": self.steps_per_epoch >= 0,
            "warmup_start": 0.0 <= self.warmup_start <= 1.0,
        }
        _require(checks, "optimizer.eden", self)


@dataclasses.dataclass(frozen=True)
class OptimizerConfig:
    """The optimizer and its learning-rate schedule.

    `name`: `adamw` (with `weight_decay` and global-norm clipping at `clip_norm`) or
    `scaled_adam` (Zipformer's; no weight decay, its own clipping: `scaled_adam`). Both use
    `b1`, `b2`, `eps`. `schedule`: linear warmup over `warmup_steps` to `learning_rate`, then
    `cosine` decay to `end_lr_fraction * learning_rate` at `total_steps`, `rsqrt` decay
    `learning_rate * sqrt(rsqrt_timescale / (step - warmup + rsqrt_timescale))`, or `constant`;
    or `eden` (its own warmup and decay: `eden`).
    `frozen`: top-level module names (or path prefixes like `text_encoder/word`) whose
    parameters get no updates and carry no optimizer state.
    """

    name: str = "adamw"
    learning_rate: float = 1e-4
    schedule: str = "cosine"
    warmup_steps: int = 0
    end_lr_fraction: float = 0.0
    rsqrt_timescale: int = 10_000
    b1: float = 0.9
    b2: float = 0.999
    eps: float = 1e-8
    weight_decay: float = 0.01
    clip_norm: float = 1.0
    frozen: tuple[str, ...] = ()
    scaled_adam: ScaledAdamConfig = dataclasses.field(default_factory=ScaledAdamConfig)
    eden: EdenConfig = dataclasses.field(default_factory=EdenConfig)

    def __post_init__(self):
        if self.name not in OPTIMIZERS:
            raise ValueError(f"optimizer.name={self.name!r}: expected one of {OPTIMIZERS}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"optimizer.schedule={self.schedule!r}: expected one of {SCHEDULES}")
        checks = {
            "learning_rate": self.learning_rate > 0,
            "warmup_steps": self.warmup_steps >= 0,
            "end_lr_fraction": 0.0 <= self.end_lr_fraction <= 1.0,
            "rsqrt_timescale": self.rsqrt_timescale > 0,
            "b1": 0.0 <= self.b1 < 1.0,
            "b2": 0.0 <= self.b2 < 1.0,
            "eps": self.eps >= 0,
            "weight_decay": self.weight_decay >= 0,
            "clip_norm": self.clip_norm >= 0,
        }
        _require(checks, "optimizer", self)


@dataclasses.dataclass(frozen=True)
class CheckpointConfig:
    """`every_steps`: save cadence (0: only at the end and on SIGTERM). `keep_last` newest
    checkpoints are kept, plus every one whose step is a multiple of `keep_every` (0: none).
    `init_from`: a checkpoint directory (its newest step) or one step's directory to start
    from when the workdir has none; `init_mode` "all" copies every parameter, "encoder" the
    audio encoder only."""

    every_steps: int = 1000
    keep_last: int = 3
    keep_every: int = 10_000
    async_save: bool = True
    init_from: str = ""
    init_mode: str = "all"

    def __post_init__(self):
        if self.init_mode not in INIT_MODES:
            raise ValueError(
                f"checkpoint.init_mode={self.init_mode!r}: expected one of {INIT_MODES}"
            )
        checks = {
            "every_steps": self.every_steps >= 0,
            "keep_every": self.keep_every >= 0,
            "keep_last": self.keep_last >= 1,
        }
        _require(checks, "checkpoint", self)


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """`num_steps` total optimizer steps; metrics every `log_every` steps; a profile of
    `profile_steps` steps starting at `profile_first` (0: never); stop after
    `max_consecutive_nonfinite` non-finite steps in a row. `num_microbatches` splits each
    global batch for gradient accumulation. `text_cache_dir`: where a locked text tower's
    caption cache lives ("": the run's own `text_cache/`); files are keyed by tokenizer and
    tower, so runs may share a directory."""

    num_steps: int = 100_000
    log_every: int = 50
    profile_steps: int = 0
    profile_first: int = 10
    max_consecutive_nonfinite: int = 20
    num_microbatches: int = 1
    text_cache_dir: str = ""

    def __post_init__(self):
        checks = {
            "num_steps": self.num_steps >= 1,
            "log_every": self.log_every >= 1,
            "max_consecutive_nonfinite": self.max_consecutive_nonfinite >= 1,
            "num_microbatches": self.num_microbatches >= 1,
            "profile_steps": self.profile_steps >= 0,
            "profile_first": self.profile_first >= 0,
        }
        _require(checks, "train", self)


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Where examples come from: `synthetic` batches (shapes only), or the TFDS datasets
    `tfds_names` under `data_dir` ("": TFDS's default) read through `pipeline`. The pipeline's
    `train` flag is not a config key: the trainer sets it per split."""

    source: str = "tfds"
    tfds_names: tuple[str, ...] = ("audiocaps",)
    data_dir: str = ""
    train_split: str = "train"
    eval_split: str = "validation"
    pipeline: PipelineConfig = dataclasses.field(default_factory=PipelineConfig)

    def __post_init__(self):
        if self.source not in DATA_SOURCES:
            raise ValueError(f"data.source={self.source!r}: expected one of {DATA_SOURCES}")
        if self.source == "tfds" and not self.tfds_names:
            raise ValueError("data.tfds_names: name at least one TFDS dataset")

    def pipeline_for(self, split: str) -> PipelineConfig:
        """The pipeline config reading `split` ("train" or "eval"). The eval split is read in
        this process: the held-out evaluator takes a few fixed batches once, at start-up, and
        starting a worker process (its imports) costs more than reading them."""
        if split == "train":
            return dataclasses.replace(self.pipeline, train=True)
        return dataclasses.replace(self.pipeline, train=False, num_workers=0)

    def split_name(self, split: str) -> str:
        return self.train_split if split == "train" else self.eval_split
