"""AdamW schedule, weight-decay mask, clipping and frozen sub-trees, checked by hand."""

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from audiolm_pt import strict_config
from audiolm_pt.models.config import preset
from audiolm_pt.models.model import AudioTextModel
from audiolm_pt.train import optimizer as opt_lib


def _params(objective="siglip"):
    model = AudioTextModel(preset("tiny", objective), rngs=nnx.Rngs(0))
    return nnx.state(model, nnx.Param)


def _flat(tree):
    return {opt_lib.path_string(p): v for p, v in jax.tree_util.tree_leaves_with_path(tree)}


def test_schedules_match_formulas():
    cfg = opt_lib.OptimizerConfig(learning_rate=1.0, warmup_steps=4, end_lr_fraction=0.1)
    lr = opt_lib.make_schedule(cfg, total_steps=14)
    np.testing.assert_allclose([lr(k) for k in range(4)], [0.25, 0.5, 0.75, 1.0], rtol=1e-6)
    for k in (4, 7, 9, 14):
        t = (k - 4) / 10
        expected = 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * t))
        np.testing.assert_allclose(lr(k), expected, rtol=1e-5)
    rsqrt = opt_lib.make_schedule(
        opt_lib.OptimizerConfig(
            learning_rate=2.0, schedule="rsqrt", warmup_steps=2, rsqrt_timescale=100
        ),
        total_steps=0,
    )
    np.testing.assert_allclose(rsqrt(1), 2.0, rtol=1e-6)
    np.testing.assert_allclose(rsqrt(2 + 300), 2.0 * math.sqrt(100 / 400), rtol=1e-6)
    const = opt_lib.make_schedule(opt_lib.OptimizerConfig(schedule="constant"), 0)
    assert float(const(123)) == pytest.approx(1e-4)


def test_decay_mask_spares_norms_biases_and_scalars():
    mask = _flat(opt_lib.decay_mask(_params()))
    decayed = {p for p, m in mask.items() if m}
    spared = set(mask) - decayed
    assert "audio_encoder/layers/blocks/attn/query/kernel" in decayed
    assert "text_encoder/word/embedding" in decayed
    assert "audio_encoder/frontend/convs/0/kernel" in decayed
    for path in (
        "bias",  # SigLIP bias scalar
        "scale/log_scale",
        "audio_encoder/norm/scale",
        "audio_encoder/layers/blocks/attn_norm/scale",  # stacked [depth, width]: by name
        "text_encoder/embed_norm/bias",
        "audio_proj/linears/0/bias",
    ):
        assert path in spared, path
    assert all(p.endswith(("bias", "scale", "log_scale")) for p in spared)


def _adamw_reference(p, g, lr, b1, b2, eps, wd, decays, steps):
    m = v = np.zeros_like(p)
    for t in range(1, steps + 1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        update = (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + eps)
        p = p - lr * (update + (wd * p if decays else 0.0))
    return p


def test_adamw_update_matches_reference_with_and_without_decay():
    params = {
        "dense": {"kernel": jnp.array([[1.0, -2.0], [0.5, 3.0]]), "bias": jnp.array([1.0, -1.0])}
    }
    grads = {
        "dense": {"kernel": jnp.array([[0.1, 0.2], [-0.3, 0.05]]), "bias": jnp.array([0.2, 0.1])}
    }
    cfg = opt_lib.OptimizerConfig(
        learning_rate=0.1, schedule="constant", weight_decay=0.5, clip_norm=0.0
    )
    tx, _ = opt_lib.make_optimizer(cfg, 10, params)
    state = tx.init(params)
    p = params
    for _ in range(3):
        updates, state = tx.update(grads, state, p)
        p = optax.apply_updates(p, updates)
    for name, decays in (("kernel", True), ("bias", False)):
        ref = _adamw_reference(
            np.asarray(params["dense"][name]),
            np.asarray(grads["dense"][name]),
            0.1,
            0.9,
            0.999,
            1e-8,
            0.5,
            decays,
            3,
        )
        np.testing.assert_allclose(p["dense"][name], ref, rtol=1e-5)


def test_global_norm_clipping_scales_all_gradients_together():
    params = {"a": jnp.zeros(2), "b": jnp.zeros(1)}
    grads = {"a": jnp.array([3.0, 0.0]), "b": jnp.array([4.0])}  # global norm 5
    # b1 = b2 = 0 makes Adam's step g / (|g| + eps): with eps = 1 it shows g's size.
    cfg = opt_lib.OptimizerConfig(
        learning_rate=1.0,
        schedule="constant",
        b1=0.0,
        b2=0.0,
        eps=1.0,
        weight_decay=0.0,
        clip_norm=1.0,
    )
    tx, _ = opt_lib.make_optimizer(cfg, 1, params)
    updates, _ = tx.update(grads, tx.init(params), params)
    np.testing.assert_allclose(updates["a"], [-0.6 / 1.6, 0.0], rtol=1e-6)
    np.testing.assert_allclose(updates["b"], [-0.8 / 1.8], rtol=1e-6)
    unclipped, _ = opt_lib.make_optimizer(dataclasses.replace(cfg, clip_norm=0.0), 1, params)
    updates, _ = unclipped.update(grads, unclipped.init(params), params)
    np.testing.assert_allclose(updates["b"], [-4.0 / 5.0], rtol=1e-6)


def test_frozen_text_tower_gets_no_update_and_no_state():
    params = _params("contrastive")
    cfg = opt_lib.OptimizerConfig(learning_rate=1e-2, frozen=("text_encoder",), warmup_steps=0)
    tx, _ = opt_lib.make_optimizer(cfg, 10, params)
    state = tx.init(params)
    grads = jax.tree.map(jnp.ones_like, params)
    updates, state = tx.update(grads, state, params)
    new = _flat(optax.apply_updates(params, updates))
    old = _flat(params)
    for path in old:
        same = np.array_equal(new[path], old[path])
        assert same == path.startswith("text_encoder/"), path
    # Moments exist only for trainable leaves.
    n_moment_leaves = sum(np.size(x) for x in jax.tree.leaves(state) if np.ndim(x) > 0)
    trainable = sum(np.size(v) for p, v in old.items() if not p.startswith("text_encoder/"))
    assert n_moment_leaves == 2 * trainable


def test_bad_configuration_fails_naming_the_key():
    with pytest.raises(ValueError, match=r"optimizer\.lr"):
        strict_config.from_dict(opt_lib.OptimizerConfig, {"lr": 3e-4}, "optimizer")
    with pytest.raises(ValueError, match=r"optimizer\.schedule"):
        opt_lib.OptimizerConfig(schedule="linear")
    with pytest.raises(ValueError, match=r"optimizer\.frozen: 'text_encodr'"):
        opt_lib.make_optimizer(opt_lib.OptimizerConfig(frozen=("text_encodr",)), 10, _params())
    with pytest.raises(ValueError, match="warmup_steps"):
        opt_lib.make_schedule(opt_lib.OptimizerConfig(warmup_steps=10), 10)
