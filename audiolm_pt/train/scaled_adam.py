"""ScaledAdam, the optimizer Zipformer is trained with (Povey et al., icefall), as an optax
transformation.

Per tensor, an update is Adam's normalised gradient scaled by the tensor's root-mean-square
value, so every tensor changes by the same *relative* amount whatever its scale; the scale
itself is learnt separately, as if each tensor were `unit_tensor * exp(log_scale)`, with its
rms kept within [param_min_rms, param_max_rms]. Momentum acts on the parameter change
(`delta`), which combines both updates. Tensors of one element follow plain Adam at
`scalar_lr_scale` times the rate and are clamped to [-scalar_max, scalar_max]. Gradients are
clipped to `clipping_scale` times the median of the recent (rms-weighted) gradient norms.

The rules follow the reference's description step for step, including its choices that differ
from Adam: no first-moment bias correction, the square-root bias correction that *multiplies*
the scale step, and scale updates every `size_update_period` steps from the gradients summed
since. A leaf holding a stack of layers (a leading layer axis) counts each layer as its own
tensor, as the reference's unstacked layers would.
"""

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from audiolm_pt.experiment_sections import ScaledAdamConfig

# Steps at which the clipping threshold is first estimated, before a full period of norms.
_EARLY_ESTIMATES = (10, 20, 40)


class ScaledAdamState(NamedTuple):
    """`delta` and `exp_avg_sq` mirror the parameters (and their sharding); the per-tensor
    statistics are tuples in parameter-leaf order, [] or [layers] each (replicated)."""

    count: jax.Array  # steps taken
    delta: Any  # the momentum of the parameter change
    exp_avg_sq: Any  # Adam's second moment of the gradient
    param_rms: tuple  # per tensor (per layer of a stack), refreshed every size_update_period
    scale_exp_avg_sq: tuple  # second moment of the scale gradient
    scale_grads: tuple  # the scale gradients of the current period, [period, *rms shape]
    model_norms: jax.Array  # the last clipping_update_period rms-weighted gradient norms
    norm_threshold: jax.Array  # the clipping threshold; inf until first estimated


def _reduce_axes(leaf: jax.Array, stacked: bool) -> tuple[int, ...]:
    return tuple(range(1 if stacked else 0, leaf.ndim))


def _is_scalar(leaf: jax.Array, stacked: bool) -> bool:
    per_tensor = leaf.size // (leaf.shape[0] if stacked and leaf.ndim else 1)
    return per_tensor <= 1


def _rms(leaf: jax.Array, stacked: bool) -> jax.Array:
    return jnp.sqrt(jnp.mean(jnp.square(leaf), axis=_reduce_axes(leaf, stacked)))


def _per_tensor(stat: jax.Array, leaf: jax.Array) -> jax.Array:
    """A per-tensor statistic broadcast against its leaf."""
    return stat.reshape(stat.shape + (1,) * (leaf.ndim - stat.ndim))


def _early(count: jax.Array, period: int) -> jax.Array:
    steps = [s for s in _EARLY_ESTIMATES if s < period]
    return jnp.isin(count, jnp.array(steps)) if steps else jnp.array(False)


def _threshold(norms: jax.Array, count: jax.Array, cfg: ScaledAdamConfig) -> jax.Array:
    """`clipping_scale` times the median of the norms recorded so far, one per step from
    step 1 (twice that at the early estimates, while the norm may still change fast)."""
    period = cfg.clipping_update_period
    n = jnp.minimum(count, period)
    ordered = jnp.sort(norms)  # unrecorded entries are 0 and sort first
    median = ordered[period - n + jnp.minimum(n - 1, (n // 4) * 2)]
    return cfg.clipping_scale * median * jnp.where(_early(count, period), 2.0, 1.0)


def scaled_adam(
    learning_rate: optax.ScalarOrSchedule,
    cfg: ScaledAdamConfig,
    b1: float = 0.9,
    b2: float = 0.98,
    eps: float = 1e-8,
    stacked: Callable[[Any], Any] | None = None,
) -> optax.GradientTransformation:
    """The transformation; `stacked(params)` gives a tree of bools, True for leaves whose
    leading axis stacks layers (none by default)."""
    schedule = learning_rate if callable(learning_rate) else optax.constant_schedule(learning_rate)
    period = cfg.size_update_period

    def flags(params) -> list[bool]:
        if stacked is None:
            return [False] * len(jax.tree.leaves(params))
        return [bool(f) for f in jax.tree.leaves(stacked(params))]

    def init(params):
        rms = tuple(map(_rms, jax.tree.leaves(params), flags(params)))
        return ScaledAdamState(
            count=jnp.zeros([], jnp.int32),
            delta=jax.tree.map(jnp.zeros_like, params),
            exp_avg_sq=jax.tree.map(jnp.zeros_like, params),
            param_rms=rms,
            scale_exp_avg_sq=tuple(jnp.zeros_like(r) for r in rms),
            scale_grads=tuple(jnp.zeros((period, *r.shape), r.dtype) for r in rms),
            model_norms=jnp.zeros([cfg.clipping_update_period], jnp.float32),
            norm_threshold=jnp.array(jnp.inf, jnp.float32),
        )

    def update(grads, state, params):
        if params is None:
            raise ValueError("scaled_adam needs the parameters")
        treedef = jax.tree.structure(grads)
        stack = flags(params)
        count = state.count
        lr = schedule(count)

        def sumsq(g, rms, s):
            weight = cfg.scalar_lr_scale if _is_scalar(g, s) else _per_tensor(rms, g)
            return jnp.sum(jnp.square(g * weight))

        norm = jnp.sqrt(sum(map(sumsq, jax.tree.leaves(grads), state.param_rms, stack)))
        clip_period = cfg.clipping_update_period
        clipping = (cfg.clipping_scale > 0) & (count > 0)  # step 0 neither records nor clips
        recorded = state.model_norms.at[count % clip_period].set(norm)
        norms = jnp.where(clipping, recorded, state.model_norms)
        estimate = clipping & ((count % clip_period == 0) | _early(count, clip_period))
        threshold = jnp.where(estimate, _threshold(norms, count, cfg), state.norm_threshold)
        factor = jnp.where(clipping, jnp.minimum(1.0, threshold / (norm + 1e-20)), 1.0)
        factor = jnp.where(jnp.isnan(factor), 0.0, factor)  # a non-finite gradient: no step

        def leaf(g, p, s, delta, exp_avg_sq, rms, scale_sq, scale_grads):
            g = jnp.where(factor == 0.0, 0.0, g * factor)  # a zero factor also drops infs
            delta = b1 * delta
            exp_avg_sq = b2 * exp_avg_sq + (1 - b2) * jnp.square(g)
            if _is_scalar(p, s):
                corrected = exp_avg_sq / (1 - b2 ** (count + 1).astype(jnp.float32))
                step = g / (jnp.sqrt(corrected) + eps)
                delta = delta - lr * cfg.scalar_lr_scale * (1 - b1) * step
                update = jnp.clip(p, -cfg.scalar_max, cfg.scalar_max) - p + delta
                return update, delta, exp_avg_sq, rms, scale_sq, scale_grads
            axes = _reduce_axes(p, s)
            scale_grads = scale_grads.at[count % period].set(jnp.sum(p * g, axes))
            refresh = count % period == period - 1
            rms = jnp.where(refresh, _rms(p, s), rms)
            # Learning the scale: every `period` steps, from the period's summed gradients.
            beta2_period = b2**period
            new_scale_sq = beta2_period * scale_sq + (1 - beta2_period) * jnp.mean(
                jnp.square(scale_grads), axis=0
            )
            size_steps = ((count + 1) // period).astype(jnp.float32)
            scale_step = (
                -lr
                * cfg.scalar_lr_scale
                * jnp.sqrt(1 - beta2_period**size_steps)
                * jnp.sum(scale_grads, axis=0)
                / (jnp.sqrt(new_scale_sq) + eps)
            )
            scale_step = jnp.where(rms < cfg.param_min_rms, 0.0, scale_step)
            scale_step = jnp.minimum(scale_step, (cfg.param_max_rms - rms) / rms)
            learn_scale = refresh & (count > 0)
            scale_sq = jnp.where(learn_scale, new_scale_sq, scale_sq)
            delta = delta + jnp.where(learn_scale, (1 - b1) * p * _per_tensor(scale_step, p), 0.0)
            # The update proper: Adam's normalised gradient times the tensor's rms.
            correction = 1 - b2 ** (count + 1).astype(jnp.float32)
            corrected = jnp.where(correction < 0.99, exp_avg_sq / correction, exp_avg_sq)
            step = g / (jnp.sqrt(corrected) + eps)
            weight = _per_tensor(jnp.maximum(rms, cfg.param_min_rms), p)
            delta = delta - lr * (1 - b1) * weight * step
            return delta, delta, exp_avg_sq, rms, scale_sq, scale_grads

        out = list(
            map(
                leaf,
                jax.tree.leaves(grads),
                jax.tree.leaves(params),
                stack,
                jax.tree.leaves(state.delta),
                jax.tree.leaves(state.exp_avg_sq),
                state.param_rms,
                state.scale_exp_avg_sq,
                state.scale_grads,
            )
        )
        updates, delta, exp_avg_sq, rms, scale_sq, scale_grads = zip(*out, strict=True)
        updates, delta, exp_avg_sq = (
            jax.tree.unflatten(treedef, leaves) for leaves in (updates, delta, exp_avg_sq)
        )
        new_state = ScaledAdamState(
            count=count + 1,
            delta=delta,
            exp_avg_sq=exp_avg_sq,
            param_rms=rms,
            scale_exp_avg_sq=scale_sq,
            scale_grads=scale_grads,
            model_norms=norms,
            norm_threshold=threshold,
        )
        return updates, new_state

    return optax.GradientTransformation(init, update)


def eden(
    base_lr: float,
    lr_steps: float,
    lr_epochs: float,
    steps_per_epoch: int,
    warmup_steps: int,
    warmup_start: float,
) -> optax.Schedule:
    """The Eden schedule: `base_lr * ((t² + lr_steps²)/lr_steps²)^-¼ * ((e² + lr_epochs²) /
    lr_epochs²)^-¼ * warmup`, with t the step, e = t / steps_per_epoch the epochs of data seen
    (the epoch factor left out when steps_per_epoch is 0), and warmup rising linearly from
    `warmup_start` to 1 over `warmup_steps`."""

    def schedule(count):
        t = jnp.asarray(count, jnp.float32)
        factor = ((t**2 + lr_steps**2) / lr_steps**2) ** -0.25
        if steps_per_epoch:
            e = t / steps_per_epoch
            factor = factor * ((e**2 + lr_epochs**2) / lr_epochs**2) ** -0.25
        if warmup_steps:
            ramp = warmup_start + (1 - warmup_start) * t / warmup_steps
            factor = factor * jnp.where(t >= warmup_steps, 1.0, ramp)
        return base_lr * factor

    return schedule
