"""Caption decoder: KV-cache decoding equals the full forward pass, causality, CapPa
parallel rows, and greedy decoding against re-running the full model."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from audiolm_pt.models.caption_decoder import CaptionDecoder
from audiolm_pt.models.config import DecoderConfig

VOCAB, AUDIO_WIDTH, N_FRAMES, LENGTH = 37, 24, 9, 8


@pytest.fixture(scope="module", params=[False, True], ids=["unrolled", "scan"])
def decoder(request):
    cfg = DecoderConfig.from_dict(
        {
            "vocab_size": VOCAB,
            "max_length": 16,
            "bos_id": 1,
            "eos_id": 2,
            "pad_id": 0,
            "mask_id": 3,
            "transformer": {
                "width": 32,
                "depth": 2,
                "num_heads": 4,
                "mlp_dim": 64,
                "scan_layers": request.param,
            },
        }
    )
    model = CaptionDecoder(cfg, AUDIO_WIDTH, rngs=nnx.Rngs(0))
    graphdef, state = nnx.split(model)

    @jax.jit
    def forward(frames, frame_mask, inputs, mask, parallel):
        return nnx.merge(graphdef, state)(frames, frame_mask, inputs, mask, parallel)

    @jax.jit
    def decode_all(frames, frame_mask, inputs):
        m = nnx.merge(graphdef, state)
        cache = m.init_cache(frames, frame_mask, inputs.shape[1])

        def body(cache, tok):
            logits, cache = m.decode_step(cache, tok)
            return cache, logits

        return jax.lax.scan(body, cache, inputs.T)[1].transpose(1, 0, 2)

    greedy = jax.jit(
        lambda f, fm: nnx.merge(graphdef, state).greedy_decode(f, fm, LENGTH),
    )
    return forward, decode_all, greedy


def _inputs(seed=0):
    k1, k2 = jax.random.split(jax.random.key(seed))
    frames = jax.random.normal(k1, (3, N_FRAMES, AUDIO_WIDTH))
    frame_mask = jnp.arange(N_FRAMES)[None] < jnp.array([[9], [4], [6]])
    tokens = jax.random.randint(k2, (3, LENGTH), 4, VOCAB)
    return frames, frame_mask, tokens


def test_kv_cache_decoding_equals_full_forward(decoder):
    forward, decode_all, _ = decoder
    frames, frame_mask, tokens = _inputs()
    full = forward(frames, frame_mask, tokens, jnp.ones_like(tokens, bool), jnp.zeros(3, bool))
    stepped = decode_all(frames, frame_mask, tokens)
    assert stepped.shape == (3, LENGTH, VOCAB)
    np.testing.assert_allclose(stepped, full, atol=1e-5, rtol=0)


def test_causal_rows_ignore_future_and_padded_frames(decoder):
    forward, _, _ = decoder
    frames, frame_mask, tokens = _inputs(1)
    ones, causal = jnp.ones_like(tokens, bool), jnp.zeros(3, bool)
    base = forward(frames, frame_mask, tokens, ones, causal)
    later = forward(frames, frame_mask, tokens.at[:, 5:].set(4), ones, causal)
    np.testing.assert_allclose(later[:, :5], base[:, :5], atol=1e-6)
    assert np.abs(later[:, 5:] - base[:, 5:]).max() > 1e-4
    padded = forward(
        jnp.where(frame_mask[..., None], frames, 9.0), frame_mask, tokens, ones, causal
    )
    np.testing.assert_allclose(padded, base, atol=1e-5)


def test_parallel_rows_see_only_mask_tokens(decoder):
    forward, _, _ = decoder
    frames, frame_mask, tokens = _inputs(2)
    mask = jnp.arange(LENGTH)[None] < jnp.array([[8], [5], [8]])
    parallel = jnp.array([True, True, False])
    a = forward(frames, frame_mask, tokens, mask, parallel)
    b = forward(frames, frame_mask, tokens[::-1], mask, parallel)
    # Parallel rows are independent of their input tokens; the causal row is not.
    np.testing.assert_allclose(a[:2], b[:2], atol=1e-6)
    assert np.abs(a[2] - b[2]).max() > 1e-4
    # Parallel attention is bidirectional: positions differ only through position embeddings
    # and see each other, so position 0 depends on how many positions are valid.
    shorter = forward(frames, frame_mask, tokens, mask.at[0, 6:].set(False), parallel)
    assert np.abs(shorter[0, 0] - a[0, 0]).max() > 1e-6


def test_greedy_decode_matches_argmax_of_full_forward(decoder):
    forward, _, greedy = decoder
    frames, frame_mask, _ = _inputs(3)
    out = np.asarray(greedy(frames, frame_mask))
    assert out.shape == (3, LENGTH)
    # Re-derive each greedy token with the full (uncached) forward pass.
    for b in range(3):
        seq = [1]
        for i in range(LENGTH):
            if seq[-1] == 2 and i > 0:
                assert out[b, i] == 0
                continue
            inp = jnp.array([seq + [0] * (LENGTH - len(seq))])
            logits = forward(
                frames[b : b + 1],
                frame_mask[b : b + 1],
                inp,
                jnp.ones_like(inp, bool),
                jnp.zeros(1, bool),
            )
            nxt = int(jnp.argmax(logits[0, i]))
            assert out[b, i] == nxt
            seq.append(nxt)
