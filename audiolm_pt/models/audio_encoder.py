"""The audio encoder: log-mel frames [B, T, n_mels] + bool mask -> token frames + mask.

A Zipformer (`encoder="zipformer"`, see `models.zipformer`), or a transformer over one of two
front-ends: `patch` (AST/ViT non-overlapping time x frequency patches, tokens ordered
time-major) and `conv` (two stride-2 3x3 convolutions, one token per 4 input frames: 40 ms
for a 10 ms hop). Padded input frames are zeroed and every intermediate is re-masked, so
outputs on the valid part do not depend on how much padding follows. Token dropout (train
only, `token_keep`) keeps a random fraction of each example's valid tokens. A transformer
encoder also hands out every stage's tokens (`hidden_states`) for probes that pool them.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from audiolm_pt.models import layers
from audiolm_pt.models.config import AudioEncoderConfig
from audiolm_pt.models.zipformer import Zipformer


class ConvFrontend(nnx.Module):
    """Two 3x3 stride-2 convs over (time, freq), then a linear map to the model width."""

    def __init__(self, cfg: AudioEncoderConfig, *, rngs: nnx.Rngs):
        t = cfg.transformer
        c = cfg.conv_channels
        self.convs = nnx.List(
            [
                nnx.Conv(
                    c_in,
                    c,
                    kernel_size=(3, 3),
                    strides=(2, 2),
                    padding=((1, 1), (1, 1)),
                    dtype=t.dtype,
                    param_dtype=t.param_dtype,
                    kernel_init=layers.partitioned(
                        nnx.initializers.lecun_normal(), (None, None, "conv_in", "conv_out")
                    ),
                    bias_init=layers.partitioned(nnx.initializers.zeros_init(), ("conv_out",)),
                    rngs=rngs,
                )
                for c_in in (1, c)
            ]
        )
        self.freq_out = math.ceil(math.ceil(cfg.n_mels / 2) / 2)
        self.proj = layers.dense(c * self.freq_out, t.width, ("conv_in", "embed"), t, rngs=rngs)

    def __call__(self, x: jax.Array, mask: jax.Array) -> tuple[jax.Array, jax.Array]:
        h = x[..., None]
        for conv in self.convs:
            # A frame is valid after a stride-2 conv iff its centre input frame was valid.
            mask = mask[:, ::2]
            kernel, bias = conv.kernel.get_value(), conv.bias.get_value()
            h = jax.nn.gelu(conv3x3_stride2(h, kernel, bias)) * mask[:, :, None, None]
        b, n = h.shape[:2]
        return self.proj(h.reshape(b, n, -1)), mask


def conv3x3_stride2(x: jax.Array, kernel: jax.Array, bias: jax.Array) -> jax.Array:
    """`nnx.Conv`'s 3x3, stride-2, pad-1 convolution of x [B, T, F, C] (kernel [3, 3, C, O]) as
    one matmul over the nine shifted strided views. On CPU, XLA's own convolution gradients
    made the demo front end's forward + backward 0.17 s against 0.10 s this way (the torch
    twin: 0.07 s); the forward alone is slower this way (0.06 against 0.03 s), but training is
    what pays (benchmarks/peer_torch.py)."""
    _, t, f, c = x.shape
    t2, f2 = -(-t // 2), -(-f // 2)
    padded = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    views = [padded[:, i : i + 2 * t2 : 2, j : j + 2 * f2 : 2] for i in range(3) for j in range(3)]
    patches = jnp.concatenate(views, axis=-1)  # [B, T/2, F/2, 9C], ordered (i, j, channel)
    weights = kernel.reshape(9 * c, -1).astype(x.dtype)
    return patches @ weights + bias.astype(x.dtype)


class PatchFrontend(nnx.Module):
    """Non-overlapping (patch_time x patch_freq) patches, linearly embedded."""

    def __init__(self, cfg: AudioEncoderConfig, *, rngs: nnx.Rngs):
        if cfg.n_mels % cfg.patch_freq:
            raise ValueError(
                f"audio.patch_freq={cfg.patch_freq} must divide audio.n_mels={cfg.n_mels}"
            )
        self.pt, self.pf = cfg.patch_time, cfg.patch_freq
        self.freq_out = cfg.n_mels // cfg.patch_freq
        t = cfg.transformer
        self.proj = layers.dense(self.pt * self.pf, t.width, ("conv_in", "embed"), t, rngs=rngs)

    def __call__(self, x: jax.Array, mask: jax.Array) -> tuple[jax.Array, jax.Array]:
        b, n_t = x.shape[0], -(-x.shape[1] // self.pt)
        pad = n_t * self.pt - x.shape[1]
        x = jnp.pad(x, ((0, 0), (0, pad), (0, 0)))
        mask = jnp.pad(mask, ((0, 0), (0, pad)))
        x = x.reshape(b, n_t, self.pt, self.freq_out, self.pf).transpose(0, 1, 3, 2, 4)
        tokens = self.proj(x.reshape(b, n_t, self.freq_out, self.pt * self.pf))
        # A patch counts as valid if any of its frames is.
        return tokens, mask.reshape(b, n_t, self.pt).any(-1)


# Why a Zipformer hands out no per-stage tokens (`AudioEncoder.hidden_states`).
NO_STAGES = "the Zipformer's stacks run at different frame rates"


class AudioEncoder(nnx.Module):
    """Front-end + positions + pre-LN transformer; returns (frames [B, N, D], mask [B, N])."""

    def __init__(self, cfg: AudioEncoderConfig, *, rngs: nnx.Rngs):
        self.cfg = cfg
        t = cfg.transformer
        if cfg.encoder == "zipformer":
            self.zipformer = Zipformer(cfg.n_mels, cfg.zipformer, t, rngs=rngs)
            factor = cfg.zipformer.output_downsampling
            # Output frame k averages embed frames factor*k .. factor*k + factor - 1; embed frame
            # u is centred on input frame 2u + 3.
            self.hop_frames, self.tokens_per_step = 2 * factor, 1
            self.centre_frame = 2 * (factor - 1) / 2 + 3
            return
        self.zipformer = None
        if cfg.frontend == "conv":
            self.frontend = ConvFrontend(cfg, rngs=rngs)
            self.hop_frames = 4
            self.tokens_per_step = 1
            self.freq_pos = None
        else:
            self.frontend = PatchFrontend(cfg, rngs=rngs)
            self.hop_frames = cfg.patch_time
            self.tokens_per_step = self.frontend.freq_out
            self.freq_pos = layers.embedding(
                self.tokens_per_step, t.width, (None, "embed"), t, rngs=rngs
            )
        self.centre_frame = (self.hop_frames - 1) / 2
        max_steps = -(-cfg.max_frames // self.hop_frames)
        self.time_pos = (
            layers.embedding(max_steps, t.width, (None, "embed"), t, rngs=rngs)
            if cfg.positions == "learned"
            else None
        )
        self.layers = layers.LayerStack(
            lambda r: layers.EncoderBlock(t, post_ln=False, rngs=r), t, rngs=rngs
        )
        self.norm = layers.layer_norm(t.width, t, rngs=rngs)

    @property
    def has_stages(self) -> bool:
        """Whether `hidden_states` is available (transformer encoders)."""
        return self.zipformer is None

    @property
    def output_hop_seconds(self) -> float:
        """Time between consecutive output steps (40 ms for the conv front-end at 10 ms)."""
        return self.hop_frames * self.cfg.input_hop_ms / 1000.0

    def token_times(self, num_tokens: int) -> np.ndarray:
        """Centre time in seconds of each output token (time-major for patches), input frame f
        being centred at (f + 0.5) hops."""
        steps = np.arange(num_tokens) // self.tokens_per_step
        frames = steps * self.hop_frames + self.centre_frame + 0.5
        return frames * self.cfg.input_hop_ms / 1000.0

    def _positions(self, x: jax.Array) -> jax.Array:
        n_t = x.shape[1]
        if self.time_pos is not None:
            if n_t > self.time_pos.num_embeddings:
                raise ValueError(f"{n_t} time steps exceed audio.max_frames={self.cfg.max_frames}")
            pos = self.time_pos.embedding.get_value()[:n_t]
        else:
            pos = layers.sinusoidal(jnp.arange(n_t), x.shape[-1])
        if self.freq_pos is None:
            return x + pos.astype(x.dtype)
        freq = self.freq_pos.embedding.get_value()
        return x + (pos[:, None] + freq[None]).astype(x.dtype)

    def __call__(
        self,
        features: jax.Array,
        feature_mask: jax.Array,
        *,
        deterministic: bool = True,
        rng: jax.Array | None = None,
    ) -> tuple[jax.Array, jax.Array]:
        if not deterministic and rng is None:
            raise ValueError("AudioEncoder needs `rng` when deterministic=False")
        frames, mask, _ = self._encode(features, feature_mask, None if deterministic else rng)
        return frames, mask

    def hidden_states(
        self, features: jax.Array, feature_mask: jax.Array
    ) -> tuple[jax.Array, jax.Array]:
        """Evaluation mode: every stage's tokens [depth + 1, B, N, D] (the input to each
        transformer block, then the encoder's output, as Hugging Face's `hidden_states`) and
        their mask [B, N]. Transformer encoders only."""
        if not self.has_stages:
            raise ValueError(f"hidden_states: {NO_STAGES}")
        frames, mask, inputs = self._encode(features, feature_mask, None, collect=True)
        return jnp.concatenate([inputs, frames[None]]), mask

    def _encode(
        self, features: jax.Array, feature_mask: jax.Array, rng, collect: bool = False
    ) -> tuple[jax.Array, jax.Array, jax.Array | None]:
        t = self.cfg.transformer
        normalised = (features - self.cfg.input_mean) / self.cfg.input_std
        x = jnp.where(feature_mask[..., None], normalised, 0.0).astype(t.dtype)
        if self.zipformer is not None:
            return *self.zipformer(x, feature_mask), None
        x, mask = self.frontend(x, feature_mask)
        x = self._positions(x)
        b = x.shape[0]
        x = x.reshape(b, -1, t.width)
        mask = jnp.repeat(mask, self.tokens_per_step, axis=1)
        token_key, input_key, layer_key = layers.split_key(rng, 3)
        if token_key is not None and self.cfg.token_keep < 1.0:
            x, mask = keep_random_tokens(x, mask, self.cfg.token_keep, token_key)
        bias = layers.attention_bias(mask[:, None, :])
        keys = layers.layer_keys(layer_key, t.depth)
        x = layers.dropout(x, t.dropout_rate, input_key)
        x, inputs = self.layers.apply(
            x, lambda blk, h, k: (blk(h, bias, k), h if collect else None), keys
        )
        return self.norm(x), mask, inputs


def kept_tokens(keep: float, num_tokens: int) -> int:
    """Token slots left after dropout: every example's kept tokens fit in them."""
    return max(1, math.ceil(keep * num_tokens))


def keep_random_tokens(
    x: jax.Array, mask: jax.Array, keep: float, key: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """Each example keeps ceil(keep * its valid tokens), chosen at random, in time order, in
    `kept_tokens(keep, N)` slots (the rest masked): short clips lose the same fraction as
    long ones."""
    n_keep = kept_tokens(keep, x.shape[1])
    quota = jnp.ceil(keep * jnp.sum(mask, axis=1, keepdims=True))
    draw = jnp.where(mask, jax.random.uniform(key, mask.shape), 2.0)
    rank = jnp.argsort(jnp.argsort(draw, axis=1), axis=1)  # valid tokens first, at random
    chosen = rank < quota
    idx = jnp.sort(jax.lax.top_k(jnp.where(chosen, 1.0 + draw, -rank), n_keep)[1], axis=-1)
    return jnp.take_along_axis(x, idx[..., None], axis=1), jnp.take_along_axis(chosen, idx, axis=1)
