"""Exact gradient accumulation over k microbatches, for every objective.

Plain averaging of microbatch gradients is wrong twice over: a token-weighted mean is not a
mean of microbatch means, and InfoNCE / sigmoid losses couple every example to every other.
Here the batch loss is written as `combine(outputs)` (see `objectives`), and its gradient is
assembled GradCache-style:

1. (contrastive terms only) a forward-only `lax.scan` embeds every microbatch; no activations
   are kept for the backward pass;
2. the gradient of `combine` w.r.t. its inputs is taken on the full batch: w.r.t. the
   embeddings (the sharded contrastive loss over all B examples), w.r.t. each summed term
   (weight / full-batch count, since the terms are linear in their sums), and w.r.t. the
   parameters `combine` reads directly (temperature, SigLIP bias);
3. a second `lax.scan` re-runs each microbatch under `jax.vjp`, seeded with its slice of those
   cotangents, and adds up the parameter gradients and the summed terms.

Microbatches interleave examples (microbatch i holds rows i, i + k, ...) so each one stays
evenly spread over the batch-sharded devices.
"""

from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx
from jax import lax

from audiolm_pt import objectives
from audiolm_pt.objectives import EMBEDDINGS, ObjectiveConfig

Array = jax.Array


def split_microbatches(batch: dict[str, Array], k: int) -> dict[str, Array]:
    """[B, ...] -> [k, B / k, ...], microbatch i holding rows i, i + k, i + 2k, ..."""
    for key, x in batch.items():
        if x.shape[0] % k:
            raise ValueError(f"batch[{key!r}] has {x.shape[0]} rows, not divisible by k={k}")
    return jax.tree.map(lambda x: x.reshape(x.shape[0] // k, k, *x.shape[1:]).swapaxes(0, 1), batch)


def merge_microbatches(x: Array) -> Array:
    """Inverse of `split_microbatches` for one array."""
    return x.swapaxes(0, 1).reshape(-1, *x.shape[2:])


def value_and_grad(
    graphdef: nnx.GraphDef,
    params: nnx.State,
    rest: nnx.State,
    batch: dict[str, Array],
    cfg: ObjectiveConfig,
    rng: Array,
    *,
    num_microbatches: int = 1,
    deterministic: bool = False,
) -> tuple[tuple[Array, dict[str, Array]], Any]:
    """((loss, metrics), d loss / d params) of `objectives.loss_fn` on `batch`.

    With k > 1 microbatches the result equals the full-batch one up to float rounding
    (exactly so when deterministic; with dropout each microbatch draws its own keys).
    """

    def model_of(p):
        return nnx.merge(graphdef, p, rest)

    if num_microbatches < 1:
        raise ValueError(f"num_microbatches={num_microbatches} must be >= 1")
    if num_microbatches == 1:
        return jax.value_and_grad(
            lambda p: objectives.loss_fn(model_of(p), batch, cfg, rng, deterministic=deterministic),
            has_aux=True,
        )(params)

    k = num_microbatches
    prep_key, fwd_key = jax.random.split(rng)
    batch = objectives.prepare(batch, cfg, prep_key)
    micro = split_microbatches(batch, k)
    keys = jax.random.split(fwd_key, k)

    def forward(p, mb, key):
        return objectives.forward(model_of(p), mb, cfg, key, deterministic=deterministic)

    shapes = jax.eval_shape(forward, params, jax.tree.map(lambda x: x[0], micro), keys[0])
    zero_sums = {name: jnp.zeros((), s.dtype) for name, s in shapes.items() if not s.shape}
    probe = {**zero_sums, **objectives.counts(batch, cfg)}
    if cfg.uses_embeddings:

        def embed_one(_, xs):
            mb, key = xs
            return None, objectives.embed(model_of(params), mb, key, deterministic=deterministic)

        _, (audio, text) = lax.scan(embed_one, None, (micro, keys))
        probe.update(audio_emb=merge_microbatches(audio), text_emb=merge_microbatches(text))

    def combine(p, out):
        return objectives.combine(model_of(p), out, cfg)

    (direct, cot), _ = jax.grad(combine, argnums=(0, 1), has_aux=True)(params, probe)
    cot_scalars = {name: v for name, v in cot.items() if name not in EMBEDDINGS}
    cot_micro = split_microbatches({name: cot[name] for name in EMBEDDINGS if name in cot}, k)

    def grad_one(carry, xs):
        grads, sums = carry
        mb, key, cot_emb = xs
        out, vjp = jax.vjp(lambda p: forward(p, mb, key), params)
        seeds = {**cot_scalars, **cot_emb}
        seed = {name: seeds[name].astype(v.dtype) for name, v in out.items()}
        (g,) = vjp(seed)
        sums = {name: sums[name] + out[name] for name in sums}
        return (jax.tree.map(jnp.add, grads, g), sums), None

    (grads, sums), _ = lax.scan(
        grad_one, (jax.tree.map(jnp.zeros_like, params), zero_sums), (micro, keys, cot_micro)
    )
    outputs = {**sums, **{name: probe[name] for name in EMBEDDINGS if name in probe}}
    loss, metrics = combine(params, outputs)
    return (loss, metrics), jax.tree.map(jnp.add, grads, direct)
