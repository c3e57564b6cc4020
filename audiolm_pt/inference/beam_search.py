"""Beam search over the caption decoder's KV cache (`init_cache` / `decode_step`), inside
`lax.while_loop`. Hypotheses are ranked by summed log-probability while searching; a finished
one (EOS emitted) only extends with padding at no cost. The final pick divides each score by
(length)^`length_penalty` (0: raw sums). With one beam this is exactly greedy decoding."""

import jax
import jax.numpy as jnp

from audiolm_pt.models.caption_decoder import CaptionDecoder

_NEG = -1e30


def beam_search(
    decoder: CaptionDecoder,
    frames: jax.Array,
    frame_mask: jax.Array,
    max_length: int,
    beam: int,
    length_penalty: float = 1.0,
) -> jax.Array:
    """int32 [B, max_length] tokens of the best hypothesis per clip (BOS excluded, `pad_id`
    after EOS)."""
    cfg = decoder.cfg
    b, k = frames.shape[0], beam
    frames_k = jnp.repeat(frames, k, axis=0)
    mask_k = jnp.repeat(frame_mask, k, axis=0)
    cache = decoder.init_cache(frames_k, mask_k, max_length)
    scores = jnp.tile(jnp.where(jnp.arange(k) == 0, 0.0, _NEG), (b, 1))
    init = (
        cache,
        jnp.full((b, k), cfg.bos_id, jnp.int32),
        scores,
        jnp.zeros((b, k), bool),
        jnp.full((b, k, max_length), cfg.pad_id, jnp.int32),
        jnp.zeros((b, k), jnp.int32),
    )

    def cond(state):
        cache, _, _, done, _, _ = state
        return (cache["index"] < max_length) & ~done.all()

    def body(state):
        cache, last, scores, done, out, lengths = state
        i = cache["index"]
        logits, cache = decoder.decode_step(cache, last.reshape(-1))
        logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1).reshape(b, k, -1)
        vocab = logp.shape[-1]
        pad_only = jnp.where(jnp.arange(vocab) == cfg.pad_id, 0.0, _NEG)
        logp = jnp.where(done[..., None], pad_only, logp)
        top, flat = jax.lax.top_k((scores[..., None] + logp).reshape(b, k * vocab), k)
        parent, token = flat // vocab, (flat % vocab).astype(jnp.int32)
        rows = (jnp.arange(b)[:, None] * k + parent).reshape(-1)
        cache = {**cache, "k": cache["k"][:, rows], "v": cache["v"][:, rows]}
        pick = lambda x: jnp.take_along_axis(x, parent, axis=1)  # noqa: E731
        was_done = pick(done)
        out = jnp.take_along_axis(out, parent[..., None], axis=1)
        out = jax.lax.dynamic_update_slice_in_dim(out, token[..., None], i, 2)
        lengths = pick(lengths) + (~was_done).astype(jnp.int32)
        return cache, token, top, was_done | (token == cfg.eos_id), out, lengths

    _, _, scores, _, out, lengths = jax.lax.while_loop(cond, body, init)
    normalised = scores / jnp.maximum(lengths, 1).astype(jnp.float32) ** length_penalty
    best = jnp.argmax(normalised, axis=1)
    return jnp.take_along_axis(out, best[:, None, None], axis=1)[:, 0]
