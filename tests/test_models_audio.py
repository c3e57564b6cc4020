"""Audio encoder: output geometry, padding invariance, token dropout, scan/remat parity."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from audiolm_pt.models import layers
from audiolm_pt.models.audio_encoder import keep_random_tokens, kept_tokens
from audiolm_pt.models.config import ModelConfig
from audiolm_pt.models.model import AudioTextModel

SMALL_STACK = {"width": 32, "depth": 2, "num_heads": 4, "mlp_dim": 64}


def make_model(frontend="conv", seed=0, pooling="attention", audio=None, **transformer):
    cfg = ModelConfig.from_dict(
        {
            "objective": "contrastive",
            "audio": {
                "transformer": {**SMALL_STACK, **transformer},
                "n_mels": 16,
                "frontend": frontend,
                "patch_time": 4,
                "patch_freq": 8,
                "conv_channels": 4,
                "max_frames": 256,
                **(audio or {}),
            },
            "text": {"vocab_size": 50, "transformer": {**SMALL_STACK, "depth": 1}},
            "heads": {"joint_dim": 16, "audio_pooling": pooling},
        }
    )
    return AudioTextModel(cfg, rngs=nnx.Rngs(seed))


def embed_fn(model):
    graphdef, state = nnx.split(model)

    @jax.jit
    def f(state, x, mask):
        m = nnx.merge(graphdef, state)
        frames, frame_mask = m.encode_audio(x, mask)
        return frames, frame_mask, m.audio_embedding(frames, frame_mask)

    return lambda x, mask: f(state, x, mask)


def features(batch, frames, seed=0):
    return jax.random.normal(jax.random.key(seed), (batch, frames, 16))


@pytest.mark.parametrize(("frontend", "per_step", "hop"), [("conv", 1, 0.04), ("patch", 2, 0.04)])
def test_output_geometry_and_mask(frontend, per_step, hop):
    model = make_model(frontend)
    lengths = jnp.array([37, 64, 1])
    mask = jnp.arange(64)[None] < lengths[:, None]
    frames, frame_mask, _ = embed_fn(model)(features(3, 64), mask)
    steps = -(-np.asarray(lengths) // 4)  # ceil(len / 4) output steps
    assert frames.shape == (3, 16 * per_step, 32)
    np.testing.assert_array_equal(np.asarray(frame_mask).sum(1), steps * per_step)
    assert model.audio_encoder.output_hop_seconds == pytest.approx(hop)
    times = model.audio_encoder.token_times(4 * per_step)
    np.testing.assert_allclose(times[::per_step], [0.02, 0.06, 0.10, 0.14])


@pytest.mark.parametrize("frontend", ["conv", "patch"])
@pytest.mark.parametrize("pooling", ["mean", "attention"])
def test_padding_does_not_change_valid_outputs(frontend, pooling):
    model = make_model(frontend, pooling=pooling)
    f = embed_fn(model)
    x = features(2, 128)
    lengths = jnp.array([45, 70])
    # Same valid content; 80 vs 128 frames of input, and garbage in the padded part.
    short = x[:, :80]
    mask_s = jnp.arange(80)[None] < lengths[:, None]
    mask_l = jnp.arange(128)[None] < lengths[:, None]
    noisy = jnp.where(mask_l[..., None], x, 100.0)
    fr_s, fm_s, emb_s = f(short, mask_s)
    fr_l, fm_l, emb_l = f(noisy, mask_l)
    np.testing.assert_allclose(emb_s, emb_l, atol=2e-6)
    n = fr_s.shape[1]
    np.testing.assert_array_equal(fm_s, fm_l[:, :n])
    valid = np.asarray(fm_s)
    np.testing.assert_allclose(np.asarray(fr_s)[valid], np.asarray(fr_l[:, :n])[valid], atol=2e-5)
    # The valid content does matter.
    _, _, emb_other = f(short.at[:, 10].add(1.0), mask_s)
    assert np.abs(emb_other - emb_s).max() > 1e-4


@pytest.mark.parametrize("keep", [0.75, 0.5, 0.1])
def test_kept_tokens_are_random_valid_ones_in_time_order(keep):
    valid = np.array([40, 17, 1, 0])
    x = jnp.broadcast_to(jnp.arange(40.0)[None, :, None], (4, 40, 2))
    mask = jnp.arange(40)[None] < jnp.asarray(valid)[:, None]
    out, kept = keep_random_tokens(x, mask, keep, jax.random.key(0))
    assert out.shape == (4, kept_tokens(keep, 40), 2)
    np.testing.assert_array_equal(np.asarray(kept).sum(1), np.ceil(keep * valid))
    for row, k, n in zip(np.asarray(out[..., 0]), np.asarray(kept), valid, strict=True):
        positions = row[k]
        assert np.all(np.diff(positions) > 0)
        assert np.all(positions < n)
    first, _ = keep_random_tokens(x, mask, keep, jax.random.key(1))
    assert not np.array_equal(first[0, :, 0], out[0, :, 0])  # the choice is random


def test_token_dropout_keeps_a_fraction_of_each_examples_valid_tokens():
    model = make_model("patch", audio={"token_keep": 0.5})
    x = features(2, 64)
    mask = jnp.arange(64)[None] < jnp.array([[64], [20]])
    frames, fm = model.encode_audio(x, mask, deterministic=False, rng=jax.random.key(3))
    assert frames.shape == (2, 16, 32)  # ceil(0.5 * 32 tokens) slots
    # Example 1 has 10 valid tokens (5 steps x 2 bands): it keeps 5, the rest is padding.
    np.testing.assert_array_equal(np.asarray(fm).sum(1), [16, 5])
    again, _ = model.encode_audio(x, mask, deterministic=False, rng=jax.random.key(3))
    np.testing.assert_array_equal(again, frames)
    other, _ = model.encode_audio(x, mask, deterministic=False, rng=jax.random.key(4))
    assert not np.allclose(other, frames)  # another key keeps other tokens
    frames_eval, _ = model.encode_audio(x, mask)
    assert frames_eval.shape == (2, 32, 32)
    with pytest.raises(ValueError, match="rng"):
        model.encode_audio(x, mask, deterministic=False)


def _grads(model, x, mask):
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)

    def loss(params):
        m = nnx.merge(graphdef, params, rest)
        frames, fm = m.encode_audio(x, mask)
        return jnp.sum(m.audio_embedding(frames, fm) ** 2 * jnp.arange(16.0))

    return jax.jit(jax.value_and_grad(loss))(params)


SCAN_X = features(2, 48)
SCAN_MASK = jnp.arange(48)[None] < jnp.array([[48], [30]])


@pytest.fixture(scope="module")
def unrolled():
    model = make_model("conv")
    return model, embed_fn(model)(SCAN_X, SCAN_MASK)[0], _grads(model, SCAN_X, SCAN_MASK)


@pytest.mark.parametrize(
    ("remat", "scan"), [("none", True), ("full", False), ("full", True), ("save_dots", True)]
)
def test_scan_and_remat_match_unrolled(unrolled, remat, scan):
    reference, ref_frames, (v_ref, g_ref) = unrolled
    other = make_model("conv", seed=1, remat=remat, scan_layers=scan)
    nnx.update(other, nnx.state(reference, nnx.Param))
    np.testing.assert_allclose(embed_fn(other)(SCAN_X, SCAN_MASK)[0], ref_frames, atol=1e-5)
    v, g = _grads(other, SCAN_X, SCAN_MASK)
    np.testing.assert_allclose(v, v_ref, rtol=1e-5)
    for a, b in zip(jax.tree.leaves(g), jax.tree.leaves(g_ref), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)


@pytest.mark.parametrize("frontend", ["conv", "patch"])
def test_input_standardisation(frontend):
    """(x - mean) / std inside the encoder equals standardising the features outside it, and
    padded frames stay ignored whatever their values."""
    stats = {"input_mean": 9.0, "input_std": 4.0}
    inside = embed_fn(make_model(frontend, audio=stats))
    outside = embed_fn(make_model(frontend))
    x = 9.0 + 4.0 * features(2, 48)
    mask = jnp.arange(48)[None] < jnp.array([[48], [30]])
    a, _, emb_a = inside(x, mask)
    b, _, emb_b = outside((x - 9.0) / 4.0, mask)
    np.testing.assert_allclose(a, b, atol=1e-5)
    np.testing.assert_allclose(emb_a, emb_b, atol=1e-6)
    padded = jnp.where(mask[..., None], x, 123.0)
    np.testing.assert_allclose(inside(padded, mask)[2], emb_a, atol=1e-6)
    with pytest.raises(ValueError, match="input_std"):
        make_model(frontend, audio={"input_std": 0.0})


@pytest.mark.parametrize("scan", [True, False])
def test_hidden_states_are_each_blocks_input_then_the_output(scan):
    model = make_model(scan_layers=scan)
    encoder = model.audio_encoder
    mask = jnp.arange(64)[None] < jnp.array([[50], [64]])
    x = features(2, 64)
    states, state_mask = encoder.hidden_states(x, mask)
    frames, frame_mask = model.encode_audio(x, mask)
    assert states.shape == (SMALL_STACK["depth"] + 1, *frames.shape)
    np.testing.assert_array_equal(state_mask, frame_mask)
    np.testing.assert_allclose(states[-1], frames, atol=1e-6)
    # Stage 0 is the front end's tokens with positions; stage 1 is block 0 applied to them.
    tokens, token_mask = encoder.frontend(jnp.where(mask[..., None], x, 0.0), mask)
    np.testing.assert_allclose(states[0], encoder._positions(tokens), atol=1e-6)
    graphdef, stacked = nnx.split(encoder.layers.blocks)
    block = nnx.merge(graphdef, jax.tree.map(lambda a: a[0], stacked))
    bias = layers.attention_bias(token_mask[:, None, :])
    np.testing.assert_allclose(states[1], block(states[0], bias, None), atol=1e-5)


def test_hidden_states_refuse_a_zipformer():
    zipformer = {
        "num_layers": (1,),
        "dims": (32,),
        "ff_dims": (64,),
        "heads": (4,),
        "kernels": (3,),
        "downsampling": (1,),
        "embed_channels": (2, 4, 8),
    }
    model = make_model(audio={"encoder": "zipformer", "zipformer": zipformer})
    with pytest.raises(ValueError, match="different frame rates"):
        model.audio_encoder.hidden_states(features(1, 64), jnp.ones((1, 64), bool))
