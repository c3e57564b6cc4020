"""Beam search: one beam is greedy decoding; enough beams find the exact best sequence of an
exhaustive search scored by the uncached full forward pass."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from audiolm_pt.inference.beam_search import beam_search
from audiolm_pt.models.caption_decoder import CaptionDecoder
from audiolm_pt.models.config import DecoderConfig

AUDIO_WIDTH, N_FRAMES = 16, 7
BOS, EOS, PAD = 1, 2, 0


def _decoder(vocab, seed=0):
    cfg = DecoderConfig.from_dict(
        {
            "vocab_size": vocab,
            "max_length": 16,
            "bos_id": BOS,
            "eos_id": EOS,
            "pad_id": PAD,
            "mask_id": 3,
            "transformer": {"width": 32, "depth": 2, "num_heads": 4, "mlp_dim": 64},
        }
    )
    return CaptionDecoder(cfg, AUDIO_WIDTH, rngs=nnx.Rngs(seed))


def _audio(b, seed=0):
    frames = jax.random.normal(jax.random.key(seed), (b, N_FRAMES, AUDIO_WIDTH))
    return frames, jnp.arange(N_FRAMES)[None] < jnp.array([[7], [3], [5]])[:b]


def test_one_beam_equals_greedy():
    decoder = _decoder(37)
    frames, mask = _audio(3)
    greedy = np.asarray(decoder.greedy_decode(frames, mask, 8))
    beam = np.asarray(jax.jit(lambda f, m: beam_search(decoder, f, m, 8, beam=1))(frames, mask))
    np.testing.assert_array_equal(beam, greedy)


def _sequence_score(decoder, frames, mask, seq):
    """Summed log-probability of `seq` up to and including its first EOS (full forward)."""
    inputs = jnp.asarray([[BOS, *seq[:-1]]], jnp.int32)
    logits = decoder(frames, mask, inputs, jnp.ones_like(inputs, bool), jnp.zeros((1,), bool))
    logp = np.asarray(jax.nn.log_softmax(logits[0], axis=-1))
    total = 0.0
    for i, tok in enumerate(seq):
        total += float(logp[i, tok])
        if tok == EOS:
            break
    return total


def test_exhaustive_beam_finds_the_best_sequence():
    vocab, length = 5, 3
    decoder = _decoder(vocab, seed=1)
    frames, mask = _audio(1, seed=2)
    found = np.asarray(
        beam_search(decoder, frames, mask, length, beam=vocab ** (length - 1), length_penalty=0.0)
    )[0]
    scored = {
        seq: _sequence_score(decoder, frames, mask, seq)
        for seq in itertools.product(range(vocab), repeat=length)
    }
    best = max(scored.values())
    got = tuple(int(t) for t in found)
    if EOS in got:  # after EOS the search writes padding; any tail scores the same
        cut = got.index(EOS) + 1
        assert all(t == PAD for t in got[cut:])
        got = got[:cut] + (0,) * (length - cut)
    np.testing.assert_allclose(scored[got], best, rtol=1e-5)
