"""The train state and one jitted, sharded train step with a non-finite guard.

The state is a plain dict pytree (what Orbax saves): `params` and `rest` (the model's
`nnx.split` states), `opt_state`, `step`, the base `rng` (per-step keys are `fold_in(rng,
step)`, so a resumed run draws the same keys), and the non-finite counters `skipped` (total)
and `consecutive`. A step whose loss or gradient norm is not finite leaves params and optimizer
state untouched and bumps both counters; a finite one resets `consecutive`.
"""

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from audiolm_pt import sharding
from audiolm_pt.data.device_features import Featurize
from audiolm_pt.models.config import ModelConfig
from audiolm_pt.models.model import AudioTextModel
from audiolm_pt.objectives import ObjectiveConfig
from audiolm_pt.train import grad_accum

State = dict[str, Any]
# Folded into a step's key for the device's input augmentation (the loss splits the key).
_AUGMENT = 0x5A
StepFn = Callable[[State, dict[str, jax.Array]], tuple[State, dict[str, jax.Array]]]


def abstract_model(cfg: ModelConfig) -> tuple[nnx.GraphDef, nnx.State, nnx.State]:
    """(graphdef, abstract params, abstract rest) without allocating the model."""
    model = nnx.eval_shape(lambda: AudioTextModel(cfg, rngs=nnx.Rngs(0)))
    return nnx.split(model, nnx.Param, ...)


def _init_fn(cfg: ModelConfig, tx: optax.GradientTransformation) -> Callable[[Any], State]:
    def init(seed) -> State:
        model_key, train_key = jax.random.split(jax.random.PRNGKey(seed))
        model = AudioTextModel(cfg, rngs=nnx.Rngs(model_key))
        _, params, rest = nnx.split(model, nnx.Param, ...)
        zero = jnp.zeros((), jnp.int32)
        return {
            "params": params,
            "rest": rest,
            "opt_state": tx.init(params),
            "step": zero,
            "rng": train_key,
            "skipped": zero,
            "consecutive": zero,
        }

    return init


def state_shardings(
    cfg: ModelConfig,
    tx: optax.GradientTransformation,
    mesh: Mesh,
    rules: sharding.Rules,
    max_replicated_size: int | None = None,
) -> tuple[State, State]:
    """(abstract state, its shardings on `mesh`); refuses large replicated parameters when
    `max_replicated_size` is given."""
    abstract = jax.eval_shape(_init_fn(cfg, tx), 0)
    shardings = sharding.tree_shardings(abstract, mesh, rules)
    if max_replicated_size is not None:
        sharding.check_large_params_sharded(
            abstract["params"], shardings["params"], mesh, max_replicated_size
        )
    return abstract, shardings


def make_init(
    cfg: ModelConfig, tx: optax.GradientTransformation, shardings: State
) -> Callable[[int], State]:
    """`init(seed) -> state`, initialising directly into `shardings` (never whole on one
    device); compiled once for any seed."""
    return jax.jit(_init_fn(cfg, tx), out_shardings=shardings)


def make_train_step(
    graphdef: nnx.GraphDef,
    objective: ObjectiveConfig,
    tx: optax.GradientTransformation,
    schedule: optax.Schedule,
    mesh: Mesh,
    shardings: State,
    batch_sharding: NamedSharding,
    *,
    num_microbatches: int = 1,
    featurize: Featurize | None = None,
) -> StepFn:
    """`step(state, batch) -> (state, metrics)`, jitted with the state donated (`.lower`
    works on it for cost and memory analysis). `featurize(batch, key)` first turns waveform
    batches into features on device (`data.device_features`).

    Metrics are replicated scalars: the objective's metrics, `grad_norm`, `lr` (of this
    update), `skipped_step` (1 when the guard skipped it) and the two counters.
    """

    def step(state: State, batch: dict[str, jax.Array]) -> tuple[State, dict[str, jax.Array]]:
        rng = jax.random.fold_in(state["rng"], state["step"])
        if featurize is not None:
            batch = featurize(batch, jax.random.fold_in(rng, _AUGMENT))
        (loss, metrics), grads = grad_accum.value_and_grad(
            graphdef,
            state["params"],
            state["rest"],
            batch,
            objective,
            rng,
            num_microbatches=num_microbatches,
        )
        grad_norm = optax.global_norm(grads)
        finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
        updates, new_opt = tx.update(grads, state["opt_state"], state["params"])
        new_params = optax.apply_updates(state["params"], updates)

        def keep_if_finite(new, old):
            return jax.tree.map(lambda n, o: jnp.where(finite, n, o), new, old)

        bad = 1 - finite.astype(jnp.int32)
        new_state = {
            **state,
            "params": keep_if_finite(new_params, state["params"]),
            "opt_state": keep_if_finite(new_opt, state["opt_state"]),
            "step": state["step"] + 1,
            "skipped": state["skipped"] + bad,
            "consecutive": (state["consecutive"] + 1) * bad,
        }
        metrics = {
            **metrics,
            "grad_norm": grad_norm,
            # The optimizer's own count advances only on applied updates.
            "lr": schedule(state["step"] - state["skipped"]),
            "skipped_step": bad,
            "skipped_total": new_state["skipped"],
            "consecutive_nonfinite": new_state["consecutive"],
        }
        return new_state, metrics

    def step_on_mesh(state, batch):
        # The sharded losses find the mesh through the abstract-mesh context.
        with jax.sharding.use_abstract_mesh(mesh.abstract_mesh):
            return step(state, batch)

    return jax.jit(
        step_on_mesh,
        in_shardings=(shardings, batch_sharding),
        out_shardings=(shardings, NamedSharding(mesh, PartitionSpec())),
        donate_argnums=0,
    )
