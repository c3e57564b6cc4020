"""ScaledAdam and Eden against values worked out by hand from the update rule (icefall's
description, not its code), and selected by config for a real model."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from audiolm_pt import experiment
from audiolm_pt.experiment_sections import ScaledAdamConfig
from audiolm_pt.train import optimizer as optimizer_lib
from audiolm_pt.train.scaled_adam import ScaledAdamState, eden, scaled_adam

B1, B2, LR = 0.9, 0.98, 0.1
NO_CLIP = ScaledAdamConfig(clipping_scale=0.0, size_update_period=1000)


def _run(tx, params, grads):
    """Applies `grads` (one per step) and returns the updates of each step."""
    state = tx.init(params)
    updates = []
    for g in grads:
        u, state = tx.update(g, state, params)
        params = optax.apply_updates(params, u)
        updates.append(u)
    return updates, params, state


def test_first_steps_scale_the_normalised_gradient_by_the_tensor_rms():
    p = {"w": jnp.array([[3.0, 4.0], [0.0, 0.0]]), "s": jnp.array(2.0)}
    g = {"w": jnp.array([[1.0, -2.0], [0.5, 0.0]]), "s": jnp.array(0.5)}
    tx = scaled_adam(LR, NO_CLIP, B1, B2, eps=1e-30)
    (first, second), _, _ = _run(tx, p, [g, g])
    # Step 1: the bias-corrected second moment is g², so g/sqrt(.) is sign(g); the rms of w is
    # sqrt((9 + 16) / 4) = 2.5: each entry moves by lr * (1 - b1) * 2.5 = 0.025 against g.
    np.testing.assert_allclose(first["w"], [[-0.025, 0.025], [-0.025, 0.0]], atol=1e-7)
    # The scalar follows Adam at a tenth of the rate: 0.1 * 0.1 * (1 - 0.9) = 0.001.
    np.testing.assert_allclose(first["s"], -0.001, rtol=1e-6)
    # Step 2, same gradient: the corrected moment is g² again, and the momentum carries
    # b1 = 0.9 of the first change: 0.9 * 0.025 + 0.025 = 0.0475 (rms not yet refreshed).
    np.testing.assert_allclose(second["w"], [[-0.0475, 0.0475], [-0.0475, 0.0]], atol=1e-7)
    np.testing.assert_allclose(second["s"], -0.0019, rtol=1e-6)


def test_a_scalar_is_clamped_before_its_step():
    tx = scaled_adam(LR, dataclasses.replace(NO_CLIP, scalar_max=1.5), B1, B2)
    (update,), params, _ = _run(tx, {"s": jnp.array(2.0)}, [{"s": jnp.array(-1.0)}])
    np.testing.assert_allclose(params["s"], 1.5 + 0.001, rtol=1e-6)
    np.testing.assert_allclose(update["s"], -0.5 + 0.001, rtol=1e-6)


def test_the_scale_is_learnt_from_the_period_s_summed_scale_gradients():
    """Period 2: after step 2 the rms is refreshed and the scale steps by
    -lr * scalar_lr_scale * sqrt(1 - b2^2) * (a + b) / sqrt((1 - b2^2) (a² + b²) / 2)
    = -0.01 * (a + b) / sqrt((a² + b²) / 2), with a, b the two steps' sum(p * g)."""
    cfg = dataclasses.replace(NO_CLIP, size_update_period=2)
    p0 = jnp.array([1.0, -2.0, 0.5, 1.0])
    g = jnp.array([0.3, 0.1, -0.2, 0.4])
    tx = scaled_adam(LR, cfg, B1, B2, eps=1e-30)
    (u1, u2), _, state = _run(tx, {"w": p0}, [{"w": g}, {"w": g}])
    p1 = p0 + u1["w"]
    a, b = float(jnp.sum(p0 * g)), float(jnp.sum(p1 * g))
    scale_step = -0.01 * (a + b) / np.sqrt((a * a + b * b) / 2)
    rms1 = float(jnp.sqrt(jnp.mean(p1**2)))
    expected = B1 * u1["w"] + (1 - B1) * p1 * scale_step - LR * (1 - B1) * rms1 * jnp.sign(g)
    np.testing.assert_allclose(u2["w"], expected, rtol=1e-5)
    np.testing.assert_allclose(state.param_rms[0], rms1, rtol=1e-6)


def test_each_layer_of_a_stack_is_its_own_tensor():
    stack = jnp.stack([jnp.full((2, 2), 1.0), jnp.full((2, 2), 10.0)])
    tx = scaled_adam(LR, NO_CLIP, B1, B2, stacked=lambda t: jax.tree.map(lambda _: True, t))
    (update,), _, _ = _run(tx, {"blocks": stack}, [{"blocks": jnp.ones_like(stack)}])
    np.testing.assert_allclose(update["blocks"][0], -0.01, rtol=1e-6)
    np.testing.assert_allclose(update["blocks"][1], -0.1, rtol=1e-6)


def test_clipping_holds_a_spike_to_twice_the_median_norm():
    """Clipping period 4, a constant gradient for steps 1-4 (norm n each: the threshold set
    at step 4 is 2n), then a 10x spike at step 5: it is scaled to 2x, exactly as if 2x had
    been the gradient of an unclipped optimizer with the same history."""
    cfg = ScaledAdamConfig(clipping_scale=2.0, clipping_update_period=4, size_update_period=1000)
    p = {"w": jnp.array([1.0, 2.0, -1.0, 0.5])}
    g = {"w": jnp.array([0.2, -0.1, 0.3, 0.05])}
    history = [g] * 5
    clipped, _, state = _run(scaled_adam(LR, cfg, B1, B2), p, [*history, {"w": 10 * g["w"]}])
    free, _, _ = _run(scaled_adam(LR, NO_CLIP, B1, B2), p, [*history, {"w": 2 * g["w"]}])
    rms = float(jnp.sqrt(jnp.mean(p["w"] ** 2)))
    n = float(jnp.linalg.norm(g["w"] * rms))
    np.testing.assert_allclose(state.norm_threshold, 2 * n, rtol=1e-5)
    np.testing.assert_allclose(clipped[-1]["w"], free[-1]["w"], rtol=1e-5)


@pytest.mark.parametrize("steps_per_epoch", [0, 50])
def test_eden_follows_its_formula(steps_per_epoch):
    schedule = eden(0.045, 7500.0, 3.5, steps_per_epoch, warmup_steps=500, warmup_start=0.5)
    for t in (0, 1, 250, 499, 500, 7500, 100_000):
        lr = 0.045 * ((t * t + 7500.0**2) / 7500.0**2) ** -0.25
        if steps_per_epoch:
            e = t / steps_per_epoch
            lr *= ((e * e + 3.5**2) / 3.5**2) ** -0.25
        lr *= 0.5 + 0.5 * t / 500 if t < 500 else 1.0
        np.testing.assert_allclose(float(schedule(t)), lr, rtol=1e-5)


def _config(**optimizer):
    from audiolm_pt.models.config import preset

    values = experiment.config_dict(preset("tiny", "contrastive")).to_dict()
    values["model"]["text"]["vocab_size"] = 500
    values["data"]["source"] = "synthetic"
    values["optimizer"].update(optimizer)
    return experiment.parse(values)


def test_selected_by_config_over_a_model_s_sharded_parameters():
    """`optimizer.name=scaled_adam` with Eden: the state of a tiny model's parameters is
    sharded like them (per-tensor statistics replicated), and each stacked layer has its own."""
    from audiolm_pt import sharding
    from audiolm_pt.train.build import build_from_config

    config = _config(name="scaled_adam", schedule="eden", learning_rate=0.03)
    assert (config.optimizer.name, config.optimizer.schedule) == ("scaled_adam", "eden")
    trainer = build_from_config(config, total_steps=10)
    opt_state = trainer.abstract["opt_state"]
    (state,) = [
        x
        for x in jax.tree.leaves(opt_state, is_leaf=lambda x: isinstance(x, ScaledAdamState))
        if isinstance(x, ScaledAdamState)
    ]
    params = trainer.abstract["params"]
    stacked = jax.tree.leaves(optimizer_lib.stacked_mask(params))
    leaves = jax.tree_util.tree_leaves_with_path(params)
    for (path, leaf), is_stacked, rms in zip(leaves, stacked, state.param_rms, strict=True):
        assert is_stacked == ("/blocks/" in optimizer_lib.path_string(path))
        assert rms.shape == ((leaf.shape[0],) if is_stacked else ())
    assert sharding.tree_shardings(opt_state, trainer.mesh, config.sharding.rules)


@pytest.mark.slow
def test_a_tiny_model_trains_with_it():
    from audiolm_pt.train import synthetic
    from audiolm_pt.train.build import build_from_config

    config = _config(name="scaled_adam", schedule="eden", learning_rate=0.03)
    trainer = build_from_config(config, total_steps=10)
    state = trainer.init()
    batch = next(synthetic.SyntheticIterator(config.model, 8, 24, 8, seed=0))
    losses = []
    for _ in range(6):
        state, metrics = trainer.step(state, batch)
        losses.append(float(metrics["loss"]))
    assert losses[-1] < losses[0]
