"""BERT-layout bidirectional text encoder (word + position + token-type embeddings, post-LN
blocks, exact-erf GELU) with CLS or masked-mean pooling. Parameter names are chosen so a
Hugging Face BERT checkpoint maps onto them one to one (see `hf_bert.py`).
"""

import jax
import jax.numpy as jnp
from flax import nnx

from audiolm_pt.models import layers
from audiolm_pt.models.config import TextEncoderConfig
from audiolm_pt.models.heads import masked_mean


class TextEncoder(nnx.Module):
    def __init__(self, cfg: TextEncoderConfig, *, rngs: nnx.Rngs):
        self.cfg = cfg
        t = cfg.transformer
        self.word = layers.embedding(cfg.vocab_size, t.width, ("vocab", "embed"), t, rngs=rngs)
        self.position = layers.embedding(cfg.max_positions, t.width, (None, "embed"), t, rngs=rngs)
        self.token_type = layers.embedding(
            cfg.type_vocab_size, t.width, (None, "embed"), t, rngs=rngs
        )
        self.embed_norm = layers.layer_norm(t.width, t, rngs=rngs)
        self.layers = layers.LayerStack(
            lambda r: layers.EncoderBlock(t, post_ln=True, rngs=r), t, rngs=rngs
        )

    def __call__(
        self,
        tokens: jax.Array,
        token_mask: jax.Array,
        *,
        deterministic: bool = True,
        rng: jax.Array | None = None,
    ) -> jax.Array:
        """int [B, L] tokens, bool [B, L] mask -> token states [B, L, D]."""
        if not deterministic and rng is None:
            raise ValueError("TextEncoder needs `rng` when deterministic=False")
        t = self.cfg.transformer
        length = tokens.shape[1]
        if length > self.cfg.max_positions:
            raise ValueError(f"{length} tokens exceed text.max_positions={self.cfg.max_positions}")
        pos = self.position.embedding.get_value()[:length]
        types = self.token_type.embedding.get_value()[0]
        x = self.word(tokens) + (pos + types).astype(t.dtype)
        embed_key, layer_key = layers.split_key(None if deterministic else rng, 2)
        x = layers.dropout(self.embed_norm(x), t.dropout_rate, embed_key)
        bias = layers.attention_bias(
            jnp.broadcast_to(token_mask[:, None, :], (*tokens.shape, length))
        )
        keys = layers.layer_keys(layer_key, t.depth)
        x, _ = self.layers.apply(x, lambda blk, h, k: (blk(h, bias, k), None), keys)
        return x

    def pool(self, states: jax.Array, token_mask: jax.Array) -> jax.Array:
        if self.cfg.pooling == "cls":
            return states[:, 0]
        return masked_mean(states, token_mask)
