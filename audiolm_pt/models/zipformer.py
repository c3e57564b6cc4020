"""The Zipformer audio encoder (icefall's Zipformer2, inference form) in Flax NNX: a conv embed
(4x time subsampling overall with the output downsampling: 100 Hz fbank -> 25 Hz), stacks of
`ZipformerLayer`s running at different frame rates (downsampled by a learned weighted average,
upsampled by repetition, combined with their input through a learned bypass), channels
truncated or zero-padded between stacks of different widths, the output built from the last
stack holding each channel, and a final learned downsampling.

Two choices depart from the reference, both so that outputs at valid frames do not depend on
how much padding follows them (the reference lets padded frames leak in at the end of a
sequence): the embed's ConvNeXt block sees zeros at padded frames, and the learned averages of
the downsamplings weigh valid frames only (renormalised), where the reference pads a length
that the factor does not divide by repeating the last frame. On unpadded input whose length the
factors divide, the computation is the reference's.
"""

import dataclasses

import jax
import jax.numpy as jnp
from flax import nnx

from audiolm_pt.models import layers
from audiolm_pt.models.config import TransformerConfig, ZipformerConfig
from audiolm_pt.models.zipformer_layers import (
    BiasNorm,
    Bypass,
    ZipformerLayer,
    depthwise_conv,
    linear,
    relative_positions,
    swoosh_l,
    swoosh_r,
)

# The embed's time reduction: T -> (T - 7) // 2 frames.
EMBED_CONTEXT_FRAMES = 7


def embed_frames(num_frames: jax.Array | int) -> jax.Array | int:
    """Frames out of the conv embed for `num_frames` input frames (valid convolutions)."""
    return (num_frames - EMBED_CONTEXT_FRAMES) // 2


def _conv(c_in, c_out, kernel, strides, padding, cfg, rngs, groups=1) -> nnx.Conv:
    return nnx.Conv(
        c_in,
        c_out,
        kernel_size=kernel,
        strides=strides,
        padding=padding,
        feature_group_count=groups,
        dtype=cfg.dtype,
        param_dtype=cfg.param_dtype,
        kernel_init=layers.partitioned(
            nnx.initializers.lecun_normal(), (None, None, "conv_in", "conv_out")
        ),
        bias_init=layers.partitioned(nnx.initializers.zeros_init(), ("conv_out",)),
        rngs=rngs,
    )


class ConvEmbed(nnx.Module):
    """Three 3x3 convs over (time, frequency) with SwooshR (time: valid, then stride 2, then
    valid; frequency: padded, stride 2, stride 2), a residual ConvNeXt block (7x7 depthwise,
    pointwise up 3x, SwooshL, pointwise down), channel-major flattening, a linear map to the
    first stack's width and BiasNorm. A frame is valid where its whole receptive field is."""

    def __init__(self, n_mels: int, z: ZipformerConfig, cfg: TransformerConfig, *, rngs):
        c1, c2, c3 = z.embed_channels
        self.conv0 = _conv(1, c1, (3, 3), (1, 1), ((0, 0), (1, 1)), cfg, rngs)
        self.conv1 = _conv(c1, c2, (3, 3), (2, 2), "VALID", cfg, rngs)
        self.conv2 = _conv(c2, c3, (3, 3), (1, 2), "VALID", cfg, rngs)
        self.depthwise = _conv(c3, c3, (7, 7), (1, 1), ((3, 3), (3, 3)), cfg, rngs, groups=c3)
        self.pointwise_in = linear(c3, 3 * c3, ("conv_out", "mlp"), cfg, rngs=rngs)
        self.pointwise_out = linear(3 * c3, c3, ("mlp", "conv_out"), cfg, rngs=rngs, scale=0.01)
        self.freq_out = ((n_mels - 3) // 2 + 1 - 3) // 2 + 1
        self.out = linear(c3 * self.freq_out, z.dims[0], ("conv_in", "embed"), cfg, rngs=rngs)
        self.out_norm = BiasNorm(z.dims[0], cfg, rngs=rngs)

    def __call__(self, x: jax.Array, mask: jax.Array) -> tuple[jax.Array, jax.Array]:
        h = swoosh_r(self.conv0(x[..., None]))
        h = swoosh_r(self.conv1(h))
        h = swoosh_r(self.conv2(h))
        valid = jnp.arange(h.shape[1]) < embed_frames(jnp.sum(mask, -1))[:, None]
        h = jnp.where(valid[:, :, None, None], h, 0.0)
        h = h + self.pointwise_out(swoosh_l(self.pointwise_in(depthwise_conv(h, self.depthwise))))
        b, t, f, c = h.shape
        flat = h.transpose(0, 1, 3, 2).reshape(b, t, c * f)  # channel-major, as the reference
        return self.out_norm(self.out(flat)), valid


def downsample(
    x: jax.Array, mask: jax.Array, logits: jax.Array, factor: int
) -> tuple[jax.Array, jax.Array]:
    """Groups of `factor` frames averaged with weights softmax(logits), over valid frames only;
    a group is valid when its first frame is."""
    b, t, c = x.shape
    n = -(-t // factor)
    pad = n * factor - t
    x = jnp.pad(x, ((0, 0), (0, pad), (0, 0))).reshape(b, n, factor, c)
    valid = jnp.pad(mask, ((0, 0), (0, pad))).reshape(b, n, factor)
    weights = jax.nn.softmax(logits.astype(jnp.float32)) * valid
    weights = weights / jnp.maximum(jnp.sum(weights, -1, keepdims=True), 1e-30)
    return jnp.einsum("bnr,bnrc->bnc", weights.astype(x.dtype), x), mask[:, ::factor]


def _logits(size: int, cfg: TransformerConfig) -> nnx.Param:
    return nnx.Param(
        jnp.zeros((size,), cfg.param_dtype), out_sharding=(None,), eager_sharding=False
    )


class ZipformerStack(nnx.Module):
    """One stack: downsample (factor > 1), its layers at that rate, upsample by repetition,
    bypass to its input."""

    def __init__(self, index: int, z: ZipformerConfig, cfg: TransformerConfig, *, rngs):
        self.factor = z.downsampling[index]
        self.pos_dim = z.pos_dim
        stack_cfg = dataclasses.replace(
            cfg,
            width=z.dims[index],
            depth=z.num_layers[index],
            num_heads=z.heads[index],
            mlp_dim=z.ff_dims[index],
        )
        self.layers = layers.LayerStack(
            lambda r: ZipformerLayer(index, z, cfg, rngs=r), stack_cfg, rngs=rngs
        )
        self.downsample = _logits(self.factor, cfg) if self.factor > 1 else None
        self.out_combiner = Bypass(z.dims[index], cfg) if self.factor > 1 else None

    def __call__(self, x: jax.Array, mask: jax.Array) -> jax.Array:
        y, inner_mask = x, mask
        if self.downsample is not None:
            y, inner_mask = downsample(x, mask, self.downsample.get_value(), self.factor)
        pos = jnp.asarray(relative_positions(y.shape[1], self.pos_dim))
        y, _ = self.layers.apply(y, lambda layer, h, _: (layer(h, pos, inner_mask), None))
        if self.out_combiner is None:
            return y
        y = jnp.repeat(y, self.factor, axis=1)[:, : x.shape[1]]
        return self.out_combiner(x, y)


def _channels(x: jax.Array, n: int) -> jax.Array:
    """The first `n` channels of x, zero-padded when it has fewer."""
    c = x.shape[-1]
    return x[..., :n] if n <= c else jnp.pad(x, ((0, 0), (0, 0), (0, n - c)))


class Zipformer(nnx.Module):
    """features [B, T, n_mels] (padded frames zeroed) + mask -> frames [B, T', max(dims)] +
    mask, T' = ceil(((T - 7) // 2) / output_downsampling)."""

    def __init__(self, n_mels: int, z: ZipformerConfig, cfg: TransformerConfig, *, rngs):
        self.cfg = z
        self.embed = ConvEmbed(n_mels, z, cfg, rngs=rngs)
        self.stacks = nnx.List([ZipformerStack(i, z, cfg, rngs=rngs) for i in range(len(z.dims))])
        self.downsample_output = _logits(z.output_downsampling, cfg)

    def __call__(self, features: jax.Array, mask: jax.Array) -> tuple[jax.Array, jax.Array]:
        x, mask = self.embed(features, mask)
        outputs = []
        for stack, dim in zip(self.stacks, self.cfg.dims, strict=True):
            x = stack(_channels(x, dim), mask)
            outputs.append(x)
        # Each output channel from the last stack that has it.
        out, width = outputs[-1], self.cfg.dims[-1]
        for y, dim in zip(outputs[-2::-1], self.cfg.dims[-2::-1], strict=True):
            if dim > width:
                out = jnp.concatenate([out, y[..., width:dim]], axis=-1)
                width = dim
        factor = self.cfg.output_downsampling
        return downsample(out, mask, self.downsample_output.get_value(), factor)
