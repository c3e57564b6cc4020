"""Caption decoder: pre-LN transformer with causal self-attention and cross-attention to
audio frames; teacher forcing, CapPa-style parallel decoding per example, and KV-cache
incremental decoding (cache = a dict of arrays, so it can live in `lax.while_loop` and be
reordered along the batch axis for beam search). Output logits use the tied token embedding.
"""

import jax
import jax.numpy as jnp
from flax import nnx

from audiolm_pt.models import layers
from audiolm_pt.models.config import DecoderConfig, TransformerConfig

Cache = dict[str, jax.Array]


class DecoderBlock(nnx.Module):
    def __init__(self, cfg: TransformerConfig, audio_width: int, *, rngs: nnx.Rngs):
        self.cfg = cfg
        self.self_norm = layers.layer_norm(cfg.width, cfg, rngs=rngs)
        self.self_attn = layers.Attention(cfg, rngs=rngs)
        self.cross_norm = layers.layer_norm(cfg.width, cfg, rngs=rngs)
        self.cross_attn = layers.Attention(cfg, kv_dim=audio_width, rngs=rngs)
        self.mlp_norm = layers.layer_norm(cfg.width, cfg, rngs=rngs)
        self.mlp = layers.Mlp(cfg, rngs=rngs)

    def _rest(self, x, cross_kv, cross_bias, keys):
        rate = self.cfg.dropout_rate
        h = self.cross_norm(x)
        x = x + layers.dropout(
            self.cross_attn.attend(h, *cross_kv, cross_bias, keys[0]), rate, keys[1]
        )
        return x + layers.dropout(self.mlp(self.mlp_norm(x)), rate, keys[2])

    def __call__(self, x, self_bias, frames, cross_bias, key=None):
        keys = layers.split_key(key, 5)
        h = self.self_norm(x)
        attn = self.self_attn(h, h, self_bias, keys[0])
        x = x + layers.dropout(attn, self.cfg.dropout_rate, keys[1])
        return self._rest(x, self.cross_attn.project_kv(frames), cross_bias, keys[2:])

    def step(self, x, index, k_cache, v_cache, cross_kv, cross_bias):
        """One position x [B, 1, D] at `index`; returns (x, updated k_cache, v_cache)."""
        h = self.self_norm(x)
        k, v = self.self_attn.project_kv(h)
        k_cache = jax.lax.dynamic_update_slice_in_dim(k_cache, k.astype(k_cache.dtype), index, 1)
        v_cache = jax.lax.dynamic_update_slice_in_dim(v_cache, v.astype(v_cache.dtype), index, 1)
        visible = jnp.arange(k_cache.shape[1]) <= index
        bias = layers.attention_bias(jnp.broadcast_to(visible, (x.shape[0], 1, k_cache.shape[1])))
        x = x + self.self_attn.attend(h, k_cache, v_cache, bias, None)
        return self._rest(x, cross_kv, cross_bias, [None] * 3), k_cache, v_cache


class CaptionDecoder(nnx.Module):
    def __init__(self, cfg: DecoderConfig, audio_width: int, *, rngs: nnx.Rngs):
        self.cfg = cfg
        t = cfg.transformer
        self.embed = layers.embedding(cfg.vocab_size, t.width, ("vocab", "embed"), t, rngs=rngs)
        self.position = layers.embedding(cfg.max_length, t.width, (None, "embed"), t, rngs=rngs)
        self.layers = layers.LayerStack(
            lambda r: DecoderBlock(t, audio_width, rngs=r), t, rngs=rngs
        )
        self.norm = layers.layer_norm(t.width, t, rngs=rngs)

    def _logits(self, x: jax.Array) -> jax.Array:
        return self.embed.attend(self.norm(x)).astype(jnp.float32)

    def __call__(
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
        """Teacher-forced logits [B, L, V]; rows with parallel[b] see all-[MASK] inputs and
        attend bidirectionally (CapPa), the others causally."""
        if not deterministic and rng is None:
            raise ValueError("CaptionDecoder needs `rng` when deterministic=False")
        t = self.cfg.transformer
        length = decoder_inputs.shape[1]
        if length > self.cfg.max_length:
            raise ValueError(f"{length} tokens exceed decoder.max_length={self.cfg.max_length}")
        tokens = jnp.where(parallel[:, None], self.cfg.mask_id, decoder_inputs)
        x = self.embed(tokens) + self.position.embedding.get_value()[:length].astype(t.dtype)
        causal = jnp.tril(jnp.ones((length, length), bool))
        allowed = (causal[None] | parallel[:, None, None]) & decoder_mask[:, None, :]
        self_bias = layers.attention_bias(allowed)
        cross_bias = layers.attention_bias(frame_mask[:, None, :])
        frames = frames.astype(t.dtype)
        embed_key, layer_key = layers.split_key(None if deterministic else rng, 2)
        x = layers.dropout(x, t.dropout_rate, embed_key)
        keys = layers.layer_keys(layer_key, t.depth)
        x, _ = self.layers.apply(
            x, lambda blk, h, k: (blk(h, self_bias, frames, cross_bias, k), None), keys
        )
        return self._logits(x)

    def init_cache(self, frames: jax.Array, frame_mask: jax.Array, max_length: int) -> Cache:
        """An empty cache for decoding up to `max_length` tokens; cross-attention keys and
        values are computed here once. Arrays are [layers, B, ...] except `frame_mask`
        ([B, N]) and `index` (scalar), so beam search can gather along the batch axis."""
        t = self.cfg.transformer
        if max_length > self.cfg.max_length:
            raise ValueError(
                f"max_length={max_length} exceeds decoder.max_length={self.cfg.max_length}"
            )
        b = frames.shape[0]
        frames = frames.astype(t.dtype)
        _, (cross_k, cross_v) = self.layers.apply(
            frames, lambda blk, h, _: (h, blk.cross_attn.project_kv(h))
        )
        shape = (t.depth, b, max_length, t.num_heads, t.width // t.num_heads)
        return {
            "k": jnp.zeros(shape, cross_k.dtype),
            "v": jnp.zeros(shape, cross_v.dtype),
            "cross_k": cross_k,
            "cross_v": cross_v,
            "frame_mask": frame_mask,
            "index": jnp.zeros((), jnp.int32),
        }

    def decode_step(self, cache: Cache, tokens: jax.Array) -> tuple[jax.Array, Cache]:
        """Feeds tokens [B] at position cache['index']; returns (logits [B, V], new cache)."""
        t = self.cfg.transformer
        index = cache["index"]
        pos = jax.lax.dynamic_slice_in_dim(self.position.embedding.get_value(), index, 1)
        x = self.embed(tokens[:, None]) + pos[None].astype(t.dtype)
        cross_bias = layers.attention_bias(cache["frame_mask"][:, None, :])

        def step(blk, h, xs):
            k, v, ck, cv = xs
            h, k, v = blk.step(h, index, k, v, (ck, cv), cross_bias)
            return h, (k, v)

        xs = (cache["k"], cache["v"], cache["cross_k"], cache["cross_v"])
        x, (k, v) = self.layers.apply(x, step, xs)
        return self._logits(x)[:, 0], {**cache, "k": k, "v": v, "index": index + 1}

    def greedy_decode(self, frames: jax.Array, frame_mask: jax.Array, max_length: int) -> jax.Array:
        """Greedy generation with the KV cache inside `lax.while_loop`: int32 [B, max_length]
        tokens (BOS not included), `pad_id` after each sequence's EOS."""
        cfg = self.cfg
        b = frames.shape[0]
        out = jnp.full((b, max_length), cfg.pad_id, jnp.int32)
        init = (
            self.init_cache(frames, frame_mask, max_length),
            jnp.full((b,), cfg.bos_id, jnp.int32),
            jnp.zeros((b,), bool),
            out,
        )

        def cond(state):
            cache, _, done, _ = state
            return (cache["index"] < max_length) & ~done.all()

        def body(state):
            cache, last, done, out = state
            i = cache["index"]
            logits, cache = self.decode_step(cache, last)
            nxt = jnp.where(done, cfg.pad_id, jnp.argmax(logits, -1).astype(jnp.int32))
            out = jax.lax.dynamic_update_slice_in_dim(out, nxt[:, None], i, 1)
            return cache, nxt, done | (nxt == cfg.eos_id), out

        return jax.lax.while_loop(cond, body, init)[3]
