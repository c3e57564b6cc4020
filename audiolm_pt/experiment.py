"""The experiment config: one frozen object of section dataclasses, its defaults as a
ConfigDict, the one parse, and the run's copy of it (`config.json` in the workdir).

`configs/*.py` start from `config_dict()`: every field of every section, with the section
dataclasses' defaults (the one place each default lives), so any field can be overridden with
`--config.a.b=value` (fields whose default is None are typed placeholders; dict-valued fields
take `--config.a.b="{'k': v}"` or `--config.a.b.k=v` for an existing key). `parse` validates a
ConfigDict once into an `ExperimentConfig`, which `main`, the trainer, evaluators, benchmarks
and `audiolm_pt.load` all read: an unknown key, a value of the wrong type or out of range fails
naming its dotted key. With a tokenizer configured, the model's vocabulary sizes and special
ids are taken from it; with `model.text.init_from`, the text tower's shape, pooling and
tokenizer come from that directory.

The objective is named once, by `model.objective`; `objective.objective` and
`data.pipeline.train` are derived here, not config keys.
"""

import dataclasses
import functools
import json
import os
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from audiolm_pt import strict_config
from audiolm_pt.audio import frontend
from audiolm_pt.experiment_sections import (
    CheckpointConfig,
    DataConfig,
    OptimizerConfig,
    TrainConfig,
)
from audiolm_pt.models import hf_bert
from audiolm_pt.models.config import ModelConfig
from audiolm_pt.objectives import ObjectiveConfig
from audiolm_pt.sharding import ShardingConfig

if typing.TYPE_CHECKING:
    import ml_collections

    from audiolm_pt.text import Tokenizer

CONFIG_NAME = "config.json"
# Keys `parse` derives; a config that sets them is refused (see the module docstring).
DERIVED = {
    ("objective", "objective"): "the objective is named once, by model.objective",
    ("objective", "batch_axes"): "the trainer takes them from the sharding rules' batch entry",
    ("data", "pipeline", "train"): "the trainer sets it per split",
}
# Transformer settings a run chooses for itself even when a pretrained tower sets the shape.
NUMERICS = ("dtype", "param_dtype", "remat", "scan_layers")
# Options of every scheduled evaluator; the rest go to the evaluator named.
EVAL_SCHEDULE_KEYS = ("every_steps",)
_REPO_ROOT = Path(__file__).resolve().parents[1]


@dataclasses.dataclass(frozen=True)
class EvalSpec:
    """A scheduled evaluator: run every `every_steps` steps with `options`."""

    every_steps: int
    options: Mapping[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
    """A whole run's settings, validated; built by `parse`, never by hand in a run."""

    seed: int = 0
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    objective: ObjectiveConfig = dataclasses.field(default_factory=ObjectiveConfig)
    optimizer: OptimizerConfig = dataclasses.field(default_factory=OptimizerConfig)
    sharding: ShardingConfig = dataclasses.field(default_factory=ShardingConfig)
    checkpoint: CheckpointConfig = dataclasses.field(default_factory=CheckpointConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    evals: Mapping[str, EvalSpec] = dataclasses.field(default_factory=dict)

    @property
    def tokenizer_path(self) -> str:
        return self.data.pipeline.tokenizer


# --- defaults -----------------------------------------------------------------------------
def config_dict(model: ModelConfig | None = None) -> "ml_collections.ConfigDict":
    """Every field of `ExperimentConfig` with its default (`model` replaces the model's),
    as the ConfigDict experiment files start from."""
    import ml_collections

    values = ExperimentConfig(model=model or ModelConfig())
    return ml_collections.ConfigDict(_config_values(values, ()))


def as_dict(config: ExperimentConfig) -> dict[str, Any]:
    """`config` as plain config values (no derived keys): what `config.json` holds and what
    `parse` reads back."""
    return _plain(_config_values(config, ()))


def _config_values(value: Any, path: tuple[str, ...]) -> Any:
    from ml_collections import config_dict as cd

    if isinstance(value, EvalSpec):
        return {"every_steps": value.every_steps, **value.options}
    if dataclasses.is_dataclass(value):
        hints = typing.get_type_hints(type(value))
        out = {}
        for f in dataclasses.fields(value):
            if (*path, f.name) in DERIVED:
                continue
            item = getattr(value, f.name)
            if item is None:
                item = cd.placeholder(_placeholder_type(hints[f.name]))
            else:
                item = _config_values(item, (*path, f.name))
            out[f.name] = item
        return out
    if isinstance(value, Mapping):
        return {k: _config_values(v, (*path, k)) for k, v in value.items()}
    return value


def _placeholder_type(hint: Any) -> type:
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    return args[0] if args and isinstance(args[0], type) else object


def _plain(value: Any) -> Any:
    if hasattr(value, "get") and hasattr(value, "set"):  # an ml_collections FieldReference
        return value.get()
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    return value


# --- the parse ----------------------------------------------------------------------------
def parse(config: Any) -> ExperimentConfig:
    """The validated experiment config of `config` (a ConfigDict or nested dict)."""
    values = _plain(config.to_dict() if hasattr(config, "to_dict") else dict(config))
    values = json.loads(json.dumps(values))  # a private copy, with plain lists and dicts
    for path in DERIVED:
        section = values
        for key in path[:-1]:
            section = section.get(key, {}) if isinstance(section, Mapping) else {}
        if isinstance(section, Mapping) and path[-1] in section:
            raise ValueError(f"config key {'.'.join(path)} is not settable: {DERIVED[path]}")
    _use_pretrained_tokenizer(values)
    tokenizer_path = values.get("data", {}).get("pipeline", {}).get("tokenizer", "")
    tokenizer = load_tokenizer(tokenizer_path) if tokenizer_path else None
    values["model"] = _resolved_model(values.get("model", {}), tokenizer)
    objective = values["model"].get("objective", ModelConfig.objective)
    values.setdefault("objective", {})["objective"] = objective
    values["evals"] = {
        name: _eval_spec(name, spec) for name, spec in values.get("evals", {}).items()
    }
    parsed = strict_config.from_dict(ExperimentConfig, values)
    _check_across_sections(parsed)
    return parsed


def _eval_spec(name: str, spec: Any) -> dict[str, Any]:
    if not isinstance(spec, Mapping) or "every_steps" not in spec:
        raise ValueError(f"config key evals.{name}: expected a mapping with every_steps")
    options = {k: v for k, v in spec.items() if k not in EVAL_SCHEDULE_KEYS}
    every = strict_config.typed(int, spec["every_steps"], f"evals.{name}.every_steps")
    if every < 1:
        raise ValueError(f"config key evals.{name}.every_steps={every} must be >= 1")
    return {"every_steps": every, "options": options}


def _check_across_sections(config: ExperimentConfig) -> None:
    model, pipeline = config.model, config.data.pipeline
    needs_text = model.has_text_encoder or model.has_decoder
    if needs_text and config.data.source == "tfds" and not pipeline.tokenizer:
        raise ValueError(
            f"model.objective={model.objective!r} needs captions: set data.pipeline.tokenizer"
        )
    if pipeline.max_frames > model.audio.max_frames:
        raise ValueError(
            f"data.pipeline.max_frames={pipeline.max_frames} exceeds "
            f"model.audio.max_frames={model.audio.max_frames}"
        )
    if pipeline.min_frames < model.audio.min_frames:
        raise ValueError(
            f"data.pipeline.min_frames={pipeline.min_frames}: the {model.audio.encoder} audio "
            f"encoder needs clips of at least {model.audio.min_frames} frames; set it to "
            f"{model.audio.min_frames} (shorter clips are then looped up to that length)"
        )
    weights, names = pipeline.mixture_weights, set(config.data.tfds_names)
    stray = sorted(set(weights) - names)
    if stray:
        raise ValueError(f"data.pipeline.mixture_weights.{stray[0]}: not in data.tfds_names")
    if weights and names - set(weights):
        missing = sorted(names - set(weights))[0]
        raise ValueError(f"data.pipeline.mixture_weights lacks data.tfds_names entry {missing!r}")
    fe, name = pipeline.frontend_config, pipeline.frontend
    bins = "num_mel_bins" if name == "fbank" else "n_mels"
    if fe.n_mels != model.audio.n_mels:
        raise ValueError(
            f"data.pipeline.{name}.{bins}={fe.n_mels} differs from "
            f"model.audio.n_mels={model.audio.n_mels}"
        )
    if abs(frontend.hop_ms(fe) - model.audio.input_hop_ms) > 1e-6:
        raise ValueError(
            f"data.pipeline.{name} hops {frontend.hop_ms(fe):g} ms but "
            f"model.audio.input_hop_ms={model.audio.input_hop_ms:g}"
        )


def _use_pretrained_tokenizer(values: dict[str, Any]) -> None:
    """With `model.text.init_from`, that directory's tokenizer is the caption tokenizer:
    `data.pipeline.tokenizer` is set to the directory, or must already name it."""
    directory = values.get("model", {}).get("text", {}).get("init_from", "")
    if not directory:
        return
    pipeline = values.setdefault("data", {}).setdefault("pipeline", {})
    current = pipeline.get("tokenizer", "")
    if current and os.path.realpath(current) != os.path.realpath(directory):
        raise ValueError(
            f"data.pipeline.tokenizer={current} differs from model.text.init_from={directory}: "
            "a pretrained text tower reads its own tokenizer (leave data.pipeline.tokenizer empty)"
        )
    pipeline["tokenizer"] = directory


def _resolved_model(values: dict[str, Any], tokenizer: "Tokenizer | None") -> dict[str, Any]:
    """`model` values with the tokenizer's vocabulary and ids and, for a pretrained text
    tower, its directory's shape."""
    values = dict(values)
    if values.get("text", {}).get("init_from"):
        values["text"] = _pretrained_text(values["text"], tokenizer)
    if tokenizer is not None:
        values["text"] = {**values.get("text", {}), "vocab_size": tokenizer.vocab_size}
        values["decoder"] = {
            **values.get("decoder", {}),
            "vocab_size": tokenizer.vocab_size,
            "bos_id": tokenizer.bos_id,
            "eos_id": tokenizer.eos_id,
            "pad_id": tokenizer.pad_id,
            "mask_id": tokenizer.mask_id,
        }
    return values


def _pretrained_text(text: dict[str, Any], tokenizer: "Tokenizer | None") -> dict[str, Any]:
    """`model.text` with the shape and pooling of its `init_from` directory, after checking
    the directory's config, weights and tokenizer agree on the vocabulary."""
    directory = text["init_from"]
    hf_cfg = hf_bert.text_config_from_hf(directory)
    hf_bert.check_weights(directory, hf_cfg)
    hf = hf_cfg.to_dict()
    vocab = hf["vocab_size"]
    if tokenizer is not None and tokenizer.vocab_size != vocab:
        raise ValueError(
            f"model.text.init_from={directory}: the tokenizer has {tokenizer.vocab_size} tokens "
            f"but {hf_bert.CONFIG_FILE} vocab_size={vocab}"
        )
    # The directory decides the shape; the run keeps its own numerics (dtype, remat, scan).
    own = text.get("transformer", {})
    transformer = hf["transformer"] | {k: own[k] for k in NUMERICS if k in own}
    shape = {k: hf[k] for k in ("vocab_size", "max_positions", "type_vocab_size")}
    pooling = hf_bert.sentence_pooling(directory)
    if pooling:
        shape["pooling"] = pooling
    return {**text, **shape, "transformer": transformer}


@functools.lru_cache(maxsize=8)
def _load_tokenizer(path: str) -> "Tokenizer":
    from audiolm_pt.text import load_tokenizer as load

    return load(path)


def load_tokenizer(name: str) -> "Tokenizer":
    """The tokenizer `data.pipeline.tokenizer` names: a path, or one relative to the
    repository root (where the shipped demo tokenizer lives)."""
    for candidate in (Path(name), _REPO_ROOT / name):
        if candidate.exists():
            return _load_tokenizer(os.path.realpath(candidate))
    raise FileNotFoundError(f"data.pipeline.tokenizer={name}: not found")


def tokenizer_of(config: ExperimentConfig) -> "Tokenizer | None":
    return load_tokenizer(config.tokenizer_path) if config.tokenizer_path else None


# --- the run's copy -------------------------------------------------------------------------
def write(config: ExperimentConfig, workdir: str) -> str:
    """`workdir/config.json`, from which evaluators and `audiolm_pt.load` rebuild the run."""
    path = os.path.join(workdir, CONFIG_NAME)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(as_dict(config), f, indent=2, sort_keys=True)
    return path


def read(workdir: str | Path) -> ExperimentConfig:
    """The experiment config a run wrote. Runs written before the objective was named once
    carry `objective.objective` (equal to `model.objective`): it is dropped. Runs written
    before the front end was selectable carry `data.pipeline.fbank_on_the_fly`: True reads
    as `feature_source="host"`."""
    path = Path(workdir) / CONFIG_NAME
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: the run has no {CONFIG_NAME} (written by audiolm_pt.main)"
        )
    values = json.loads(path.read_text(encoding="utf-8"))
    objective = values.get("objective", {})
    if objective.get("objective") == values.get("model", {}).get("objective", "contrastive"):
        objective.pop("objective")
    pipeline = values.get("data", {}).get("pipeline", {})
    if "fbank_on_the_fly" in pipeline:
        pipeline["feature_source"] = "host" if pipeline.pop("fbank_on_the_fly") else "stored"
    return parse(values)
