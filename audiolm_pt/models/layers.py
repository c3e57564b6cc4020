"""Transformer building blocks with logical axis names on every parameter.

Owns dense/norm/embedding constructors (each parameter annotated with names from
`LOGICAL_AXES`), multi-head attention with an optional key/value cache, the MLP, pre-LN and
post-LN (BERT) blocks, sinusoidal positions, and `LayerStack`, which stores a block's
parameters stacked along a `layers` axis and runs them either unrolled or under
`jax.lax.scan`, with optional rematerialisation. Both execution modes read the same stacked
parameters, so a checkpoint does not depend on them.
"""

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from audiolm_pt.models.config import TransformerConfig

LOGICAL_AXES = (
    "embed",
    "mlp",
    "heads",
    "kv",
    "vocab",
    "joint",
    "labels",
    "layers",
    "conv_in",
    "conv_out",
    None,
)

NEG_INF = -1e9


def partitioned(init: Callable, names: tuple) -> Callable:
    # Logical names only: shardings are applied by the trainer through its logical->mesh
    # rules (`nnx.get_partition_spec`), never eagerly at construction.
    return nnx.with_partitioning(init, names, eager_sharding=False)


def dense(
    in_features: int | tuple[int, ...],
    out_features: int | tuple[int, ...],
    names: tuple,
    cfg: TransformerConfig | None = None,
    *,
    rngs: nnx.Rngs,
    axis: int | tuple[int, ...] = -1,
    dtype: Any = None,
    kernel_init: Callable | None = None,
    use_bias: bool = True,
) -> nnx.LinearGeneral:
    """A LinearGeneral whose kernel carries `names` and whose bias the output names; the
    kernel starts from `kernel_init` (default Xavier uniform)."""
    n_out = 1 if isinstance(out_features, int) else len(out_features)
    return nnx.LinearGeneral(
        in_features,
        out_features,
        axis=axis,
        use_bias=use_bias,
        dtype=dtype or (cfg.dtype if cfg else None),
        param_dtype=cfg.param_dtype if cfg else jnp.float32,
        kernel_init=partitioned(kernel_init or nnx.initializers.xavier_uniform(), names),
        bias_init=partitioned(nnx.initializers.zeros_init(), names[-n_out:]),
        rngs=rngs,
    )


def layer_norm(dim: int, cfg: TransformerConfig, *, rngs: nnx.Rngs) -> nnx.LayerNorm:
    return nnx.LayerNorm(
        dim,
        epsilon=cfg.layer_norm_eps,
        dtype=cfg.dtype,
        param_dtype=cfg.param_dtype,
        scale_init=partitioned(nnx.initializers.ones_init(), ("embed",)),
        bias_init=partitioned(nnx.initializers.zeros_init(), ("embed",)),
        rngs=rngs,
    )


def embedding(num: int, dim: int, names: tuple, cfg: TransformerConfig, *, rngs: nnx.Rngs):
    return nnx.Embed(
        num,
        dim,
        dtype=cfg.dtype,
        param_dtype=cfg.param_dtype,
        embedding_init=partitioned(nnx.initializers.normal(0.02), names),
        rngs=rngs,
    )


def sinusoidal(positions: jax.Array, dim: int) -> jax.Array:
    """Transformer sine/cosine position encodings for (possibly fractional) positions."""
    half = dim // 2
    freqs = jnp.exp(-np.log(10000.0) * jnp.arange(half, dtype=jnp.float32) / max(half, 1))
    angles = positions.astype(jnp.float32)[..., None] * freqs
    enc = jnp.concatenate([jnp.sin(angles), jnp.cos(angles)], axis=-1)
    return jnp.pad(enc, [(0, 0)] * (enc.ndim - 1) + [(0, dim - 2 * half)])


def dropout(x: jax.Array, rate: float, key: jax.Array | None) -> jax.Array:
    """Inverted dropout; `key=None` means deterministic (identity)."""
    if key is None or rate == 0.0:
        return x
    keep = jax.random.bernoulli(key, 1.0 - rate, x.shape)
    return jnp.where(keep, x / (1.0 - rate), 0.0).astype(x.dtype)


def attention_bias(mask: jax.Array) -> jax.Array:
    """bool [B, Q, K] (True = may attend) -> additive bias [B, 1, Q, K]."""
    return jnp.where(mask, 0.0, NEG_INF)[:, None].astype(jnp.float32)


def split_key(key: jax.Array | None, n: int) -> list:
    return [None] * n if key is None else list(jax.random.split(key, n))


class Attention(nnx.Module):
    """Multi-head attention. Query/key/value kernels are [embed, heads, kv]."""

    def __init__(self, cfg: TransformerConfig, *, rngs: nnx.Rngs, kv_dim: int | None = None):
        d, h = cfg.width, cfg.num_heads
        self.head_dim = d // h
        self.cfg = cfg
        names = ("embed", "heads", "kv")
        self.query = dense(d, (h, self.head_dim), names, cfg, rngs=rngs)
        self.key = dense(kv_dim or d, (h, self.head_dim), names, cfg, rngs=rngs)
        self.value = dense(kv_dim or d, (h, self.head_dim), names, cfg, rngs=rngs)
        # Reads the head-major [B, H, Q, Dh] attention output: on CPU a batched matmul that
        # writes [B, Q, H, Dh] directly runs several times slower (benchmarks/peer_torch.py).
        self.out = dense(
            (h, self.head_dim), d, ("heads", "kv", "embed"), cfg, rngs=rngs, axis=(1, 3)
        )

    def project_kv(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        return self.key(x), self.value(x)

    def attend(
        self, x: jax.Array, k: jax.Array, v: jax.Array, bias: jax.Array, key: jax.Array | None
    ) -> jax.Array:
        """Queries from x [B, Q, D] over keys/values [B, K, H, Dh]; bias [B, 1|H, Q, K]."""
        q = self.query(x) / np.sqrt(self.head_dim).astype(np.float32)
        logits = jnp.einsum("bqhd,bkhd->bhqk", q, k).astype(jnp.float32) + bias
        probs = jax.nn.softmax(logits, axis=-1)
        probs = dropout(probs, self.cfg.attention_dropout_rate, key).astype(v.dtype)
        return self.out(jnp.einsum("bhqk,bkhd->bhqd", probs, v))

    def __call__(self, x, kv_input, bias, key=None):
        k, v = self.project_kv(kv_input)
        return self.attend(x, k, v, bias, key)


class Mlp(nnx.Module):
    def __init__(self, cfg: TransformerConfig, *, rngs: nnx.Rngs):
        self.up = dense(cfg.width, cfg.mlp_dim, ("embed", "mlp"), cfg, rngs=rngs)
        self.down = dense(cfg.mlp_dim, cfg.width, ("mlp", "embed"), cfg, rngs=rngs)

    def __call__(self, x):
        return self.down(jax.nn.gelu(self.up(x), approximate=False))


class EncoderBlock(nnx.Module):
    """Self-attention + MLP; pre-LN (ViT) or post-LN (BERT) residual layout."""

    def __init__(self, cfg: TransformerConfig, *, post_ln: bool, rngs: nnx.Rngs):
        self.cfg = cfg
        self.post_ln = post_ln
        self.attn = Attention(cfg, rngs=rngs)
        self.attn_norm = layer_norm(cfg.width, cfg, rngs=rngs)
        self.mlp = Mlp(cfg, rngs=rngs)
        self.mlp_norm = layer_norm(cfg.width, cfg, rngs=rngs)

    def __call__(self, x, bias, key=None):
        k_attn, k1, k2 = split_key(key, 3)
        rate = self.cfg.dropout_rate
        if self.post_ln:
            x = self.attn_norm(x + dropout(self.attn(x, x, bias, k_attn), rate, k1))
            return self.mlp_norm(x + dropout(self.mlp(x), rate, k2))
        h = self.attn_norm(x)
        x = x + dropout(self.attn(h, h, bias, k_attn), rate, k1)
        return x + dropout(self.mlp(self.mlp_norm(x)), rate, k2)


_REMAT = {
    "full": None,
    "save_dots": jax.checkpoint_policies.checkpoint_dots,
}


class LayerStack(nnx.Module):
    """`depth` copies of a block, parameters stacked along a leading `layers` axis.

    `apply(x, step, xs)` runs `step(block, x, xs_i) -> (x, ys_i)` for each layer, where
    `xs` is a pytree with a leading layer axis (per-layer keys, caches...) and the `ys`
    are returned stacked the same way.
    """

    def __init__(
        self, make_block: Callable[[nnx.Rngs], nnx.Module], cfg: TransformerConfig, *, rngs
    ):
        self.depth = cfg.depth
        self.scan = cfg.scan_layers
        self.remat = cfg.remat

        @nnx.split_rngs(splits=cfg.depth)
        @nnx.vmap(in_axes=0, out_axes=0, transform_metadata={nnx.PARTITION_NAME: "layers"})
        def create(r):
            return make_block(r)

        self.blocks = create(rngs)

    def apply(self, x: jax.Array, step: Callable, xs: Any = None) -> tuple[jax.Array, Any]:
        graphdef, state = nnx.split(self.blocks)

        def body(carry, layer):
            layer_state, layer_xs = layer
            return step(nnx.merge(graphdef, layer_state), carry, layer_xs)

        if self.remat != "none":
            body = jax.checkpoint(body, policy=_REMAT[self.remat], prevent_cse=not self.scan)
        if self.scan:
            return jax.lax.scan(body, x, (state, xs))
        ys = []
        for i in range(self.depth):
            x, y = body(x, jax.tree.map(lambda a, i=i: a[i], (state, xs)))
            ys.append(y)
        return x, jax.tree.map(lambda *a: jnp.stack(a), *ys)


def layer_keys(key: jax.Array | None, depth: int) -> jax.Array | None:
    return None if key is None else jax.random.split(key, depth)
