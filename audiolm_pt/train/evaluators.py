"""Evaluators the training loop calls every N steps, chosen by name from a small registry.

An evaluator is `fn(state) -> {metric: value}`; a factory registered under a name builds one
from the trainer and keyword arguments (`trainer`, `batches`, `objective`, `to_global`,
`run_config`, `workdir`, then the config's options). The linear probe, zero-shot, retrieval
and captioning evaluators live in `audiolm_pt.evaluate`; registered here, they run on the live
state through `audiolm_pt.evaluate.hook`.
"""

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from audiolm_pt import objectives
from audiolm_pt.objectives import ObjectiveConfig
from audiolm_pt.train.build import Trainer

Evaluator = Callable[[dict[str, Any]], dict[str, float]]
_REGISTRY: dict[str, Callable[..., Evaluator]] = {}


def register(name: str) -> Callable[[Callable[..., Evaluator]], Callable[..., Evaluator]]:
    def add(factory: Callable[..., Evaluator]) -> Callable[..., Evaluator]:
        _REGISTRY[name] = factory
        return factory

    return add


def make_evaluator(name: str, **kwargs: Any) -> Evaluator:
    if name not in _REGISTRY:
        raise ValueError(f"unknown evaluator {name!r}; known: {sorted(_REGISTRY)}")
    return _REGISTRY[name](**kwargs)


@register("heldout_loss")
def heldout_loss(
    trainer: Trainer,
    batches: Sequence[dict[str, np.ndarray]],
    objective: ObjectiveConfig,
    to_global: Callable[[dict[str, np.ndarray]], dict[str, jax.Array]],
    **_: Any,  # run_config, workdir: not needed here
) -> Evaluator:
    """Mean loss and metrics of the objective over fixed held-out batches, without dropout
    and with a fixed key, so successive evaluations differ only by the parameters."""
    if not batches:
        raise ValueError("heldout_loss: no evaluation batches")
    placed = [to_global(b) for b in batches]

    @jax.jit
    def metrics_of(params, rest, batch):
        with jax.sharding.use_abstract_mesh(trainer.mesh.abstract_mesh):
            model = nnx.merge(trainer.graphdef, params, rest)
            key = jax.random.PRNGKey(0)
            return objectives.loss_fn(model, batch, objective, key, deterministic=True)[1]

    def evaluate(state: dict[str, Any]) -> dict[str, float]:
        each = [metrics_of(state["params"], state["rest"], batch) for batch in placed]
        mean = jax.tree.map(lambda *xs: jnp.mean(jnp.stack(xs)), *each)
        return {k: float(v) for k, v in jax.device_get(mean).items()}

    return evaluate


def _suite_evaluator(name: str) -> Callable[..., Evaluator]:
    def factory(trainer: Trainer, run_config: Any, workdir: str, **options: Any) -> Evaluator:
        # The evaluation stack (scikit-learn, caption scorers) loads only when configured.
        from audiolm_pt.evaluate import hook

        for unused in ("batches", "objective", "to_global"):
            options.pop(unused, None)
        return hook.make_hook(name, trainer, run_config, workdir, **options)

    return factory


for _name in ("linear_probe", "zero_shot", "retrieval", "captioning"):
    register(_name)(_suite_evaluator(_name))
