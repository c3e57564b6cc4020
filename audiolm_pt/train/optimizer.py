"""The optimizer: AdamW with global-norm clipping and a weight-decay mask, or ScaledAdam
(`scaled_adam`); a warmup + cosine / rsqrt / constant schedule or Eden; optionally frozen
sub-trees (e.g. a pretrained text tower).

Everything works on the parameter tree that `nnx.split(model, nnx.Param)` returns, so paths
are module attribute names (`text_encoder/layers/blocks/attn/query/kernel`).
"""

from typing import Any

import jax
import jax.numpy as jnp
import optax

from audiolm_pt.experiment_sections import OptimizerConfig
from audiolm_pt.train.scaled_adam import eden, scaled_adam

# Leaf names that never decay: norm scales/offsets, biases, the logit scale and SigLIP bias.
NO_DECAY_NAMES = frozenset({"bias", "scale", "log_scale"})


def make_schedule(cfg: OptimizerConfig, total_steps: int) -> optax.Schedule:
    """Learning rate as a function of the (0-based) update count."""
    if cfg.schedule == "cosine" and total_steps <= cfg.warmup_steps:
        raise ValueError(
            f"optimizer.warmup_steps={cfg.warmup_steps} must be < total_steps={total_steps}"
        )
    peak, warmup = cfg.learning_rate, cfg.warmup_steps
    if cfg.schedule == "eden":
        e = cfg.eden
        return eden(peak, e.lr_steps, e.lr_epochs, e.steps_per_epoch, warmup, e.warmup_start)
    if cfg.schedule == "cosine":
        decay = optax.cosine_decay_schedule(peak, total_steps - warmup, alpha=cfg.end_lr_fraction)
    elif cfg.schedule == "rsqrt":
        tau = float(cfg.rsqrt_timescale)

        def decay(count):
            return peak * jnp.sqrt(tau / (count + tau))
    else:
        decay = optax.constant_schedule(peak)
    if not warmup:
        return decay

    def ramp(count):
        return peak * jnp.minimum(count + 1, warmup) / warmup

    return optax.join_schedules([ramp, decay], [warmup])


def path_string(path: tuple) -> str:
    """'a/b/0/kernel' for a tree path, without the trailing `.value` of an nnx Variable."""
    names = [str(getattr(k, "key", getattr(k, "name", getattr(k, "idx", k)))) for k in path]
    return "/".join(names[:-1] if names and names[-1] == "value" else names)


def decay_mask(params: Any) -> Any:
    """True for leaves that get weight decay: matrices and embeddings, not norms, biases or
    scalars. Scanned layers stack a leading axis, so the test is by name and not by rank."""

    def decays(path, leaf) -> bool:
        names = path_string(path).split("/")
        in_norm = any(n.endswith("norm") for n in names[:-1])
        return jnp.ndim(leaf) > 0 and names[-1] not in NO_DECAY_NAMES and not in_norm

    return jax.tree_util.tree_map_with_path(decays, params)


def stacked_mask(params: Any) -> Any:
    """True for leaves whose leading axis stacks the layers of a `LayerStack` (under its
    `blocks`), which ScaledAdam treats as one tensor per layer."""
    return jax.tree_util.tree_map_with_path(
        lambda path, _: "blocks" in path_string(path).split("/"), params
    )


def is_frozen(path: str, frozen: tuple[str, ...]) -> bool:
    return any(path == p or path.startswith(p.rstrip("/") + "/") for p in frozen)


def frozen_labels(params: Any, frozen: tuple[str, ...]) -> Any:
    """'frozen' or 'train' for each leaf."""

    def label(path, _):
        return "frozen" if is_frozen(path_string(path), frozen) else "train"

    return jax.tree_util.tree_map_with_path(label, params)


def make_optimizer(
    cfg: OptimizerConfig, total_steps: int, params: Any
) -> tuple[optax.GradientTransformation, optax.Schedule]:
    """The optax transformation and its learning-rate schedule.

    Clipping (AdamW's and ScaledAdam's) sees only trainable gradients, so a frozen tower
    does not eat the clip budget.
    `params` is needed to check that every `frozen` prefix names something.
    """
    schedule = make_schedule(cfg, total_steps)
    if cfg.name == "scaled_adam":
        tx = scaled_adam(schedule, cfg.scaled_adam, cfg.b1, cfg.b2, cfg.eps, stacked_mask)
    else:
        tx = optax.adamw(
            schedule,
            b1=cfg.b1,
            b2=cfg.b2,
            eps=cfg.eps,
            weight_decay=cfg.weight_decay,
            mask=decay_mask,
        )
        if cfg.clip_norm:
            tx = optax.chain(optax.clip_by_global_norm(cfg.clip_norm), tx)
    if not cfg.frozen:
        return tx, schedule
    paths = [path_string(p) for p, _ in jax.tree_util.tree_leaves_with_path(params)]
    for prefix in cfg.frozen:
        if not any(is_frozen(p, (prefix,)) for p in paths):
            raise ValueError(f"optimizer.frozen: {prefix!r} matches no parameter")
    labels = frozen_labels(params, cfg.frozen)
    tx = optax.multi_transform({"train": tx, "frozen": optax.set_to_zero()}, labels)
    return tx, schedule
