"""The parts of a Zipformer layer (icefall's Zipformer2, inference form), with logical axis
names on every parameter: SwooshL/SwooshR, BiasNorm, the learned per-channel bypass, compact
relative positions, the attention weights shared by a layer's two self-attention modules and
its non-linear attention, the convolution and feed-forward modules, and the layer itself.

Parameter counts per module equal the reference's; projections the reference packs into one
matrix (query/key/position, value/gate) are separate kernels here, so that a tensor-parallel
mesh splits them along heads. Training-time regularisers of the reference (balancers,
whiteners, scheduled dropouts, layer skipping) have no parameters and are left out.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from audiolm_pt.models import layers
from audiolm_pt.models.config import TransformerConfig, ZipformerConfig

# Score given to padded keys. The reference's -1000 lets a padded key win over valid keys
# whose scores are lower still; this does not.
_MASKED_SCORE = layers.NEG_INF


def swoosh_l(x: jax.Array) -> jax.Array:
    return jax.nn.softplus(x - 4.0) - 0.08 * x - 0.035


def swoosh_r(x: jax.Array) -> jax.Array:
    return jax.nn.softplus(x - 1.0) - 0.08 * x - 0.313261687


def depthwise_conv(x: jax.Array, conv: nnx.Conv) -> jax.Array:
    """`conv` (a depthwise nnx.Conv with 'same' zero padding over the axes before channels)
    as a sum of shifted products: XLA lowers the gradient of a grouped convolution as a dense
    one (channels times the work); this costs what it should, forward and backward."""
    kernel = conv.kernel.get_value().astype(x.dtype)  # [*window, 1, C]
    window = kernel.shape[:-2]
    sizes = x.shape[1 : 1 + len(window)]
    pads = [(0, 0)] + [(w // 2, w // 2) for w in window] + [(0, 0)]
    padded = jnp.pad(x, pads)
    out = jnp.zeros_like(x)
    for offset in np.ndindex(*window):
        index = (slice(None), *(slice(o, o + n) for o, n in zip(offset, sizes, strict=True)))
        out = out + padded[index] * kernel[(*offset, 0)]
    return out + conv.bias.get_value().astype(x.dtype)


def _uniform(fan_in: int, scale: float = 1.0):
    """The reference's linear init: U(±scale / sqrt(fan_in))."""
    bound = scale / math.sqrt(fan_in)

    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


def linear(
    d_in: int | tuple[int, ...],
    d_out: int | tuple[int, ...],
    names: tuple,
    cfg: TransformerConfig,
    *,
    rngs: nnx.Rngs,
    scale: float = 1.0,
    bias: bool = True,
    axis: int | tuple[int, ...] = -1,
) -> nnx.LinearGeneral:
    """`layers.dense` with the reference's initial scale."""
    fan_in = math.prod(d_in) if isinstance(d_in, tuple) else d_in
    init = _uniform(fan_in, scale)
    return layers.dense(
        d_in, d_out, names, cfg, rngs=rngs, axis=axis, kernel_init=init, use_bias=bias
    )


def _param(value: jax.Array, names: tuple) -> nnx.Param:
    return nnx.Param(value, out_sharding=names, eager_sharding=False)


class BiasNorm(nnx.Module):
    """x * exp(log_scale) / rms(x - bias): the bias enters the rms only."""

    def __init__(self, dim: int, cfg: TransformerConfig, *, rngs: nnx.Rngs):
        bias = nnx.initializers.normal(1e-4)(rngs.params(), (dim,), cfg.param_dtype)
        self.bias = _param(bias, ("embed",))
        self.log_scale = _param(jnp.ones((), cfg.param_dtype), ())

    def __call__(self, x: jax.Array) -> jax.Array:
        centred = x.astype(jnp.float32) - self.bias.get_value()
        mean_square = jnp.maximum(jnp.mean(jnp.square(centred), -1, keepdims=True), 1e-30)
        return (x * jnp.exp(self.log_scale.get_value()) * jax.lax.rsqrt(mean_square)).astype(
            x.dtype
        )


class Bypass(nnx.Module):
    """x_orig + scale * (x_new - x_orig), one learned scale per channel."""

    def __init__(self, dim: int, cfg: TransformerConfig):
        self.bypass_scale = _param(jnp.full((dim,), 0.5, cfg.param_dtype), ("embed",))

    def __call__(self, x_orig: jax.Array, x_new: jax.Array) -> jax.Array:
        return x_orig + self.bypass_scale.get_value().astype(x_orig.dtype) * (x_new - x_orig)


def relative_positions(length: int, dim: int) -> np.ndarray:
    """Compact relative position encodings [2 * length - 1, dim] for offsets -(T-1) .. T-1:
    offsets compressed logarithmically, then cos/sin of multiples of their arctangent, the
    last channel a constant 1."""
    offsets = np.arange(-(length - 1), length, dtype=np.float64)
    root = math.sqrt(dim)
    compressed = root * np.sign(offsets) * (np.log(np.abs(offsets) + root) - np.log(root))
    angle = np.arctan(compressed / (dim / (2 * math.pi)))
    multiples = np.arange(1, dim // 2 + 1)
    table = np.zeros((offsets.size, dim))
    table[:, 0::2] = np.cos(angle[:, None] * multiples)
    table[:, 1::2] = np.sin(angle[:, None] * multiples)
    table[:, -1] = 1.0
    return table.astype(np.float32)


class AttentionWeights(nnx.Module):
    """Softmax weights [B, H, T, T] from query-key products plus a positional term: a per-head
    positional query against the projected encoding of offset key - query."""

    def __init__(self, d: int, heads: int, z: ZipformerConfig, cfg, *, rngs: nnx.Rngs):
        scale = z.query_head_dim**-0.25
        names = ("embed", "heads", "kv")
        self.query = linear(d, (heads, z.query_head_dim), names, cfg, rngs=rngs, scale=scale)
        self.key = linear(d, (heads, z.query_head_dim), names, cfg, rngs=rngs, scale=scale)
        self.pos_query = linear(d, (heads, z.pos_head_dim), names, cfg, rngs=rngs, scale=scale)
        self.linear_pos = linear(
            z.pos_dim,
            (heads, z.pos_head_dim),
            (None, "heads", "kv"),
            cfg,
            rngs=rngs,
            scale=0.05,
            bias=False,
        )

    def __call__(self, x: jax.Array, pos: jax.Array, mask: jax.Array) -> jax.Array:
        t = x.shape[1]
        q, k, p = self.query(x), self.key(x), self.pos_query(x)
        scores = jnp.einsum("bihc,bjhc->bhij", q, k, preferred_element_type=jnp.float32)
        projected = self.linear_pos(pos.astype(x.dtype))  # [2T-1, H, c]
        relative = jnp.einsum("bihc,mhc->bhim", p, projected, preferred_element_type=jnp.float32)
        index = (t - 1) + jnp.arange(t)[None, :] - jnp.arange(t)[:, None]  # offset j - i
        scores = scores + jnp.take_along_axis(relative, index[None, None], axis=-1)
        scores = jnp.where(mask[:, None, None, :], scores, _MASKED_SCORE)
        return jax.nn.softmax(scores, axis=-1)


class SelfAttention(nnx.Module):
    """Values per head, mixed by the shared weights, projected back."""

    def __init__(self, d: int, heads: int, z: ZipformerConfig, cfg, *, rngs: nnx.Rngs):
        vd = z.value_head_dim
        self.in_proj = linear(d, (heads, vd), ("embed", "heads", "kv"), cfg, rngs=rngs)
        self.out_proj = linear(
            (heads, vd), d, ("heads", "kv", "embed"), cfg, rngs=rngs, scale=0.05, axis=(-2, -1)
        )

    def __call__(self, x: jax.Array, weights: jax.Array) -> jax.Array:
        v = self.in_proj(x)
        return self.out_proj(jnp.einsum("bhij,bjhc->bihc", weights.astype(v.dtype), v))


class NonlinAttention(nnx.Module):
    """tanh(s) * v mixed by head 0's weights, gated by g, projected back (hidden 3d/4)."""

    def __init__(self, d: int, cfg: TransformerConfig, *, rngs: nnx.Rngs):
        h = 3 * d // 4
        self.s, self.v, self.g = (linear(d, h, ("embed", "mlp"), cfg, rngs=rngs) for _ in range(3))
        self.out_proj = linear(h, d, ("mlp", "embed"), cfg, rngs=rngs, scale=0.05)

    def __call__(self, x: jax.Array, weights: jax.Array) -> jax.Array:
        u = jnp.tanh(self.s(x)) * self.v(x)
        mixed = jnp.einsum("bij,bjc->bic", weights[:, 0].astype(u.dtype), u)
        return self.out_proj(mixed * self.g(x))


class ConvModule(nnx.Module):
    """GLU (value * sigmoid(gate)), padded frames zeroed, depthwise conv over time, SwooshR,
    projection."""

    def __init__(self, d: int, kernel: int, cfg: TransformerConfig, *, rngs: nnx.Rngs):
        self.value = linear(d, d, ("embed", "mlp"), cfg, rngs=rngs)
        self.gate = linear(d, d, ("embed", "mlp"), cfg, rngs=rngs)
        self.depthwise = nnx.Conv(
            d,
            d,
            kernel_size=(kernel,),
            padding=((kernel // 2, kernel // 2),),
            feature_group_count=d,
            dtype=cfg.dtype,
            param_dtype=cfg.param_dtype,
            kernel_init=layers.partitioned(_uniform(kernel), (None, None, "mlp")),
            bias_init=layers.partitioned(nnx.initializers.zeros_init(), ("mlp",)),
            rngs=rngs,
        )
        self.out_proj = linear(d, d, ("mlp", "embed"), cfg, rngs=rngs, scale=0.05)

    def __call__(self, x: jax.Array, mask: jax.Array) -> jax.Array:
        z = self.value(x) * jax.nn.sigmoid(self.gate(x))
        z = jnp.where(mask[..., None], z, 0.0)
        return self.out_proj(swoosh_r(depthwise_conv(z, self.depthwise)))


class FeedForward(nnx.Module):
    def __init__(self, d: int, hidden: int, cfg: TransformerConfig, *, rngs: nnx.Rngs):
        self.in_proj = linear(d, hidden, ("embed", "mlp"), cfg, rngs=rngs)
        self.out_proj = linear(hidden, d, ("mlp", "embed"), cfg, rngs=rngs, scale=0.1)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.out_proj(swoosh_l(self.in_proj(x)))


class ZipformerLayer(nnx.Module):
    """One layer: attention weights computed once from the input and shared; feed-forward,
    non-linear attention, self-attention, convolution, feed-forward; a learned mid-layer
    bypass to the input; self-attention, convolution, feed-forward; BiasNorm; a learned bypass
    to the input. `bypass_scale` is the reference's unused per-layer scale, kept so that the
    parameters (and their count) match."""

    def __init__(self, stack: int, z: ZipformerConfig, cfg: TransformerConfig, *, rngs):
        d, f, heads = z.dims[stack], z.ff_dims[stack], z.heads[stack]
        self.bypass_scale = Bypass(d, cfg).bypass_scale
        self.bypass = Bypass(d, cfg)
        self.bypass_mid = Bypass(d, cfg)
        self.attention_weights = AttentionWeights(d, heads, z, cfg, rngs=rngs)
        self.self_attn1 = SelfAttention(d, heads, z, cfg, rngs=rngs)
        self.self_attn2 = SelfAttention(d, heads, z, cfg, rngs=rngs)
        self.feed_forward1 = FeedForward(d, 3 * f // 4, cfg, rngs=rngs)
        self.feed_forward2 = FeedForward(d, f, cfg, rngs=rngs)
        self.feed_forward3 = FeedForward(d, 5 * f // 4, cfg, rngs=rngs)
        self.nonlin_attention = NonlinAttention(d, cfg, rngs=rngs)
        self.conv1 = ConvModule(d, z.kernels[stack], cfg, rngs=rngs)
        self.conv2 = ConvModule(d, z.kernels[stack], cfg, rngs=rngs)
        self.norm = BiasNorm(d, cfg, rngs=rngs)

    def __call__(self, x0: jax.Array, pos: jax.Array, mask: jax.Array) -> jax.Array:
        weights = self.attention_weights(x0, pos, mask)
        x = x0 + self.feed_forward1(x0)
        x = x + self.nonlin_attention(x, weights)
        x = x + self.self_attn1(x, weights)
        x = x + self.conv1(x, mask)
        x = x + self.feed_forward2(x)
        x = self.bypass_mid(x0, x)
        x = x + self.self_attn2(x, weights)
        x = x + self.conv2(x, mask)
        x = x + self.feed_forward3(x)
        return self.bypass(x0, self.norm(x))
