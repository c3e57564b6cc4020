"""Assembles what a training run needs from its configs: mesh, optimizer and schedule, the
state's abstract shape and shardings, the batch sharding and the jitted step, either from
the parsed configs or from an experiment config (`build_from_config`)."""

import dataclasses
import logging
from collections.abc import Callable
from typing import Any

import jax
import optax
from flax import nnx
from jax.sharding import Mesh, NamedSharding

from audiolm_pt import sharding
from audiolm_pt.data.device_features import Featurize, make_featurizer
from audiolm_pt.experiment import ExperimentConfig
from audiolm_pt.experiment_sections import OptimizerConfig
from audiolm_pt.models import hf_bert
from audiolm_pt.models.config import ModelConfig, TextEncoderConfig
from audiolm_pt.objectives import ObjectiveConfig
from audiolm_pt.train import step as step_lib
from audiolm_pt.train.optimizer import make_optimizer

log = logging.getLogger(__name__)
# The text tower's parameter sub-tree: frozen when locked, loaded from `text.init_from`.
TEXT_TOWER = "text_encoder"


@dataclasses.dataclass(frozen=True)
class Trainer:
    model_cfg: ModelConfig
    objective: ObjectiveConfig
    graphdef: nnx.GraphDef
    tx: optax.GradientTransformation
    schedule: optax.Schedule
    mesh: Mesh
    abstract: step_lib.State
    shardings: step_lib.State
    batch_sharding: NamedSharding
    step: step_lib.StepFn
    init_fn: Callable[[int], step_lib.State]
    seed: int
    # Waveform batches → features on device, or None when the host computes them.
    featurize: Featurize | None = None

    def init(self, seed: int | None = None) -> step_lib.State:
        """A fresh state from `seed` (default: the run's)."""
        return self.init_fn(self.seed if seed is None else seed)


def build_trainer(
    model_cfg: ModelConfig,
    objective: ObjectiveConfig,
    optimizer: OptimizerConfig,
    sharding_cfg: sharding.ShardingConfig,
    total_steps: int,
    *,
    seed: int = 0,
    num_microbatches: int = 1,
    devices: list[jax.Device] | None = None,
    featurize: Featurize | None = None,
) -> Trainer:
    if objective.objective != model_cfg.objective:
        raise ValueError(
            f"objective.objective={objective.objective!r} differs from "
            f"model.objective={model_cfg.objective!r}"
        )
    mesh = sharding.make_mesh(sharding_cfg, devices)
    # The loss splits the batch over the mesh axes the sharding rules give it.
    objective = dataclasses.replace(objective, batch_axes=sharding.batch_rule_axes(sharding_cfg))
    graphdef, params, _ = step_lib.abstract_model(model_cfg)
    if model_cfg.text.locked and model_cfg.has_text_encoder:
        frozen = tuple(dict.fromkeys((*optimizer.frozen, TEXT_TOWER)))
        optimizer = dataclasses.replace(optimizer, frozen=frozen)
    tx, schedule = make_optimizer(optimizer, total_steps, params)
    abstract, shardings = step_lib.state_shardings(
        model_cfg, tx, mesh, sharding_cfg.rules, sharding_cfg.max_replicated_size
    )
    batch_sharding = sharding.batch_sharding(sharding_cfg, mesh)
    step = step_lib.make_train_step(
        graphdef,
        objective,
        tx,
        schedule,
        mesh,
        shardings,
        batch_sharding,
        num_microbatches=num_microbatches,
        featurize=featurize,
    )
    init_fn = step_lib.make_init(model_cfg, tx, shardings)
    if model_cfg.text.init_from and model_cfg.has_text_encoder:
        init_fn = _with_pretrained_text(init_fn, model_cfg.text, shardings)
    return Trainer(
        model_cfg,
        objective,
        graphdef,
        tx,
        schedule,
        mesh,
        abstract,
        shardings,
        batch_sharding,
        step,
        init_fn,
        seed,
        featurize,
    )


def _with_pretrained_text(
    init_fn: Callable[[int], step_lib.State],
    text_cfg: TextEncoderConfig,
    shardings: step_lib.State,
) -> Callable[[int], step_lib.State]:
    """`init_fn` whose fresh states hold the text tower of `text_cfg.init_from` (a resumed
    run restores its own tower instead: this runs at first initialisation only)."""

    def name(path) -> tuple[str, ...]:
        return tuple(k.key for k in path if isinstance(k, jax.tree_util.DictKey))

    def init(seed: int) -> step_lib.State:
        state = init_fn(seed)
        tower = state["params"][TEXT_TOWER]
        leaves = jax.tree_util.tree_leaves_with_path(tower)
        arrays = hf_bert.hf_bert_arrays(
            text_cfg, text_cfg.init_from, {name(p): leaf.shape for p, leaf in leaves}
        )
        state["params"][TEXT_TOWER] = jax.tree_util.tree_map_with_path(
            lambda p, leaf, where: jax.device_put(arrays[name(p)].astype(leaf.dtype), where),
            tower,
            shardings["params"][TEXT_TOWER],
        )
        log.info("text tower initialised from %s", text_cfg.init_from)
        return state

    return init


def build_from_config(
    config: ExperimentConfig,
    *,
    sharding_overrides: dict[str, Any] | None = None,
    devices: list[jax.Device] | None = None,
    total_steps: int | None = None,
) -> Trainer:
    """The trainer of experiment `config`; `sharding_overrides` replace fields of its
    sharding section, `total_steps` its `train.num_steps` (the schedule's length)."""
    sharding_cfg = dataclasses.replace(config.sharding, **(sharding_overrides or {}))
    return build_trainer(
        config.model,
        config.objective,
        config.optimizer,
        sharding_cfg,
        total_steps or config.train.num_steps,
        seed=config.seed,
        num_microbatches=config.train.num_microbatches,
        devices=devices,
        featurize=make_featurizer(config.data.pipeline),
    )
