"""Heads on top of the encoders: pooling, projection into the shared space, temperature and
SigLIP bias, and the tagging head.
"""

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from audiolm_pt.models import layers
from audiolm_pt.models.config import HeadConfig, TransformerConfig

_ACTIVATIONS = {"relu": jax.nn.relu, "gelu": lambda x: jax.nn.gelu(x, approximate=False)}


def masked_mean(x: jax.Array, mask: jax.Array) -> jax.Array:
    """Mean of x [B, N, D] over the True positions of mask [B, N] (0 where none)."""
    w = mask.astype(jnp.float32)[..., None]
    total = jnp.sum(x.astype(jnp.float32) * w, axis=1)
    return (total / jnp.maximum(w.sum(axis=1), 1.0)).astype(x.dtype)


def l2_normalize(x: jax.Array, eps: float = 1e-6) -> jax.Array:
    x = x.astype(jnp.float32)
    return x * jax.lax.rsqrt(jnp.maximum(jnp.sum(x * x, axis=-1, keepdims=True), eps * eps))


class AttentionPool(nnx.Module):
    """Multi-head attention pooling with one learned query over the valid frames."""

    def __init__(self, dim: int, num_heads: int, cfg: TransformerConfig, *, rngs: nnx.Rngs):
        pool_cfg = TransformerConfig(
            width=dim,
            depth=1,
            num_heads=num_heads,
            mlp_dim=dim,
            dtype=cfg.dtype,
            param_dtype=cfg.param_dtype,
        )
        self.query = nnx.Param(
            nnx.initializers.normal(0.02)(rngs.params(), (1, dim), cfg.param_dtype),
            out_sharding=(None, "embed"),
            eager_sharding=False,
        )
        self.attn = layers.Attention(pool_cfg, rngs=rngs)

    def __call__(self, frames: jax.Array, mask: jax.Array) -> jax.Array:
        q = jnp.broadcast_to(
            self.query.get_value().astype(frames.dtype), (frames.shape[0], 1, frames.shape[-1])
        )
        bias = layers.attention_bias(mask[:, None, :])
        return self.attn(q, frames, bias)[:, 0]


class ProjectionHead(nnx.Module):
    """Linear-(act-Linear)* into the joint space; depth counts the linear layers."""

    def __init__(self, in_dim: int, cfg: HeadConfig, dtype_cfg: TransformerConfig, *, rngs):
        dims = [in_dim] + [cfg.joint_dim] * cfg.projection_depth
        names = [("embed", "joint")] + [("joint", "joint")] * (cfg.projection_depth - 1)
        self.linears = nnx.List(
            [
                layers.dense(a, b, n, dtype_cfg, rngs=rngs)
                for a, b, n in zip(dims[:-1], dims[1:], names, strict=True)
            ]
        )
        self.activation = _ACTIVATIONS[cfg.projection_activation]

    def __call__(self, x: jax.Array) -> jax.Array:
        for i, linear in enumerate(self.linears):
            x = linear(self.activation(x) if i else x)
        return x


class LogitScale(nnx.Module):
    """exp(log_scale) clipped at `max_scale`; a Param when learnable, a constant otherwise."""

    def __init__(self, init: float, max_scale: float, learnable: bool):
        self.max_log = float(np.log(max_scale))
        log_init = float(np.log(init))
        self.log_scale = (
            nnx.Param(jnp.asarray(log_init, jnp.float32), out_sharding=(), eager_sharding=False)
            if learnable
            else log_init
        )

    def __call__(self) -> jax.Array:
        value = self.log_scale
        if isinstance(value, nnx.Param):
            value = value.get_value()
        return jnp.exp(jnp.minimum(jnp.asarray(value, jnp.float32), self.max_log))


class TagHead(nnx.Module):
    def __init__(self, in_dim: int, num_labels: int, cfg: TransformerConfig, *, rngs: nnx.Rngs):
        self.linear = layers.dense(
            in_dim, num_labels, ("embed", "labels"), cfg, rngs=rngs, dtype=jnp.float32
        )

    def __call__(self, pooled: jax.Array) -> jax.Array:
        return self.linear(pooled)
