"""`AudioTextModel`: the audio encoder plus whichever text encoder, caption decoder, tagging
head and temperature/bias parameters the objective needs. This is the one interface the
trainer, losses and evaluators use.
"""

import jax
import jax.numpy as jnp
from flax import nnx

from audiolm_pt.models.audio_encoder import AudioEncoder
from audiolm_pt.models.caption_decoder import CaptionDecoder
from audiolm_pt.models.config import ModelConfig
from audiolm_pt.models.heads import (
    AttentionPool,
    LogitScale,
    ProjectionHead,
    TagHead,
    l2_normalize,
    masked_mean,
)
from audiolm_pt.models.text_encoder import TextEncoder


class AudioTextModel(nnx.Module):
    def __init__(self, cfg: ModelConfig, *, rngs: nnx.Rngs):
        self.cfg = cfg
        a = cfg.audio.transformer
        h = cfg.heads
        self.audio_encoder = AudioEncoder(cfg.audio, rngs=rngs)
        self.audio_pool = (
            AttentionPool(a.width, h.attention_pool_heads, a, rngs=rngs)
            if h.audio_pooling == "attention"
            else None
        )
        contrastive = cfg.has_text_encoder
        siglip = cfg.objective == "siglip"
        t = cfg.text.transformer
        self.text_encoder = TextEncoder(cfg.text, rngs=rngs) if contrastive else None
        self.audio_proj = ProjectionHead(a.width, h, a, rngs=rngs) if contrastive else None
        self.text_proj = ProjectionHead(t.width, h, t, rngs=rngs) if contrastive else None
        self.scale = (
            LogitScale(
                h.siglip_scale_init if siglip else h.temperature_init,
                h.temperature_max,
                learnable=siglip or h.learn_temperature,
            )
            if contrastive
            else None
        )
        self.bias = (
            nnx.Param(
                jnp.asarray(h.siglip_bias_init, jnp.float32), out_sharding=(), eager_sharding=False
            )
            if siglip
            else None
        )
        self.decoder = CaptionDecoder(cfg.decoder, a.width, rngs=rngs) if cfg.has_decoder else None
        self.tag_head = (
            TagHead(a.width, h.num_labels, a, rngs=rngs) if cfg.has_tagging_head else None
        )

    @property
    def logit_scale(self) -> jax.Array:
        """Multiplier of the cosine similarities (1/temperature), clipped at its maximum."""
        if self.scale is None:
            raise ValueError(f"objective={self.cfg.objective!r} has no logit scale")
        return self.scale()

    @property
    def siglip_bias(self) -> jax.Array:
        if self.bias is None:
            raise ValueError(f"objective={self.cfg.objective!r} has no SigLIP bias")
        return self.bias.get_value()

    def encode_audio(
        self,
        features: jax.Array,
        feature_mask: jax.Array,
        *,
        deterministic: bool = True,
        rng: jax.Array | None = None,
    ) -> tuple[jax.Array, jax.Array]:
        """log-mel [B, T, n_mels] + bool [B, T] -> (frames [B, N, D], frame_mask [B, N])."""
        return self.audio_encoder(features, feature_mask, deterministic=deterministic, rng=rng)

    def pool_audio(self, frames: jax.Array, frame_mask: jax.Array) -> jax.Array:
        if self.audio_pool is None:
            return masked_mean(frames, frame_mask)
        return self.audio_pool(frames, frame_mask)

    def audio_embedding(self, frames: jax.Array, frame_mask: jax.Array) -> jax.Array:
        """Pooled, projected, L2-normalised audio embedding [B, joint_dim] (float32)."""
        return l2_normalize(self.audio_proj(self.pool_audio(frames, frame_mask)))

    def text_features(
        self,
        tokens: jax.Array,
        token_mask: jax.Array,
        *,
        deterministic: bool = True,
        rng: jax.Array | None = None,
    ) -> jax.Array:
        """The text tower's pooled output [B, text width], before the projection. A locked
        tower runs without dropout and passes no gradient, so this is a fixed function of the
        tokens (what the trainer's text cache stores)."""
        if self.cfg.text.locked:
            states = self.text_encoder(tokens, token_mask, deterministic=True)
            return jax.lax.stop_gradient(self.text_encoder.pool(states, token_mask))
        states = self.text_encoder(tokens, token_mask, deterministic=deterministic, rng=rng)
        return self.text_encoder.pool(states, token_mask)

    def project_text(self, features: jax.Array) -> jax.Array:
        """Projected, L2-normalised text embedding [B, joint_dim] (float32) of pooled tower
        outputs."""
        return l2_normalize(self.text_proj(features))

    def text_embedding(
        self,
        tokens: jax.Array,
        token_mask: jax.Array,
        *,
        deterministic: bool = True,
        rng: jax.Array | None = None,
    ) -> jax.Array:
        """Pooled, projected, L2-normalised text embedding [B, joint_dim] (float32)."""
        return self.project_text(
            self.text_features(tokens, token_mask, deterministic=deterministic, rng=rng)
        )

    def caption_logits(
        self,
        frames: jax.Array,
        frame_mask: jax.Array,
        decoder_inputs: jax.Array,
        decoder_mask: jax.Array,
        parallel: jax.Array,
        *,
        deterministic: bool = True,
        rng: jax.Array | None = None,
    ) -> jax.Array:
        """Teacher-forced caption logits [B, L, vocab] (float32); parallel: bool [B]."""
        return self.decoder(
            frames,
            frame_mask,
            decoder_inputs,
            decoder_mask,
            parallel,
            deterministic=deterministic,
            rng=rng,
        )

    def tag_logits(self, frames: jax.Array, frame_mask: jax.Array) -> jax.Array:
        """Tagging logits [B, num_labels] (float32) from mean-pooled frames."""
        return self.tag_head(masked_mean(frames, frame_mask))
