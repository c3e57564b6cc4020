"""The held-out loss evaluator: the objective's loss and metrics on fixed batches of the
evaluation split, run by the training loop every N steps (config `evals.heldout_loss`)."""

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from audiolm_pt import objectives, strict_config
from audiolm_pt.objectives import ObjectiveConfig
from audiolm_pt.train.build import Trainer

NAME = "heldout_loss"
OPTIONS = ("num_batches",)


def check_options(options: Mapping[str, Any], key: str) -> None:
    """`num_batches` (>= 1) is the only option; anything else fails naming its key."""
    for name in options:
        if name not in OPTIONS:
            raise ValueError(f"unknown config key {key}.{name}; known: ['every_steps', *{OPTIONS}]")
    num = strict_config.typed(int, options.get("num_batches", 1), f"{key}.num_batches")
    if num < 1:
        raise ValueError(f"config key {key}.num_batches={num} must be >= 1")


def make_evaluator(
    trainer: Trainer,
    batches: Sequence[dict[str, np.ndarray]],
    objective: ObjectiveConfig,
    to_global: Callable[[dict[str, np.ndarray]], dict[str, jax.Array]],
) -> Callable[[dict[str, Any]], dict[str, float]]:
    """Mean loss and metrics of the objective over fixed held-out batches, without dropout
    and with a fixed key, so successive evaluations differ only by the parameters."""
    if not batches:
        raise ValueError("heldout_loss: no evaluation batches")
    placed = [to_global(b) for b in batches]

    @jax.jit
    def metrics_of(params, rest, batch):
        with jax.sharding.use_abstract_mesh(trainer.mesh.abstract_mesh):
            model = nnx.merge(trainer.graphdef, params, rest)
            if trainer.featurize is not None:
                batch = trainer.featurize(batch, None)
            key = jax.random.PRNGKey(0)
            return objectives.loss_fn(model, batch, objective, key, deterministic=True)[1]

    def evaluate(state: dict[str, Any]) -> dict[str, float]:
        each = [metrics_of(state["params"], state["rest"], batch) for batch in placed]
        mean = jax.tree.map(lambda *xs: jnp.mean(jnp.stack(xs)), *each)
        return {k: float(v) for k, v in jax.device_get(mean).items()}

    return evaluate
