"""bf16 compute with float32 parameters (`model.compute_dtype`): the switch reaches every
tower, parameters and optimizer state stay float32, the loss is float32, and a few training
steps track float32's within bfloat16's precision."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from audiolm_pt import sharding
from audiolm_pt.experiment_sections import OptimizerConfig
from audiolm_pt.models.config import preset
from audiolm_pt.objectives import ObjectiveConfig
from audiolm_pt.train import synthetic
from audiolm_pt.train.build import build_trainer

TOWERS = ("audio", "text", "decoder")


def test_the_switch_sets_every_tower_and_is_validated():
    cfg = preset("tiny", "hybrid", compute_dtype="bfloat16")
    assert [getattr(cfg, t).transformer.dtype for t in TOWERS] == ["bfloat16"] * 3
    assert [getattr(cfg, t).transformer.param_dtype for t in TOWERS] == ["float32"] * 3
    assert preset("tiny").audio.transformer.dtype == "float32"
    with pytest.raises(ValueError, match="compute_dtype='float16'"):
        preset("tiny", compute_dtype="float16")


def _train(cfg, batches):
    trainer = build_trainer(
        cfg,
        ObjectiveConfig(objective=cfg.objective),
        OptimizerConfig(learning_rate=1e-3, warmup_steps=0),
        sharding.ShardingConfig(),
        total_steps=10,
        devices=jax.devices()[:1],
    )
    state, losses = trainer.init(), []
    initial = jax.tree.map(np.asarray, state["params"])
    for batch in batches:
        state, metrics = trainer.step(state, batch)
        assert metrics["loss"].dtype == jnp.float32
        losses.append(float(metrics["loss"]))
    return np.array(losses), state, initial


@pytest.mark.slow  # two train steps compiled per objective: 30-60 s each on 2 cores
@pytest.mark.parametrize("objective", ["contrastive", "hybrid"])
def test_bf16_steps_track_float32_with_float32_state(objective):
    cfg = preset("tiny", objective)
    batches = [synthetic.synthetic_batch(cfg, 8, 64, 12, seed=0, index=i) for i in range(3)]
    ref, ref_state, initial = _train(cfg, batches)
    got, state, _ = _train(dataclasses.replace(cfg, compute_dtype="bfloat16"), batches)
    for leaf in jax.tree.leaves((state["params"], state["opt_state"])):
        assert leaf.dtype in (jnp.float32, jnp.int32), leaf.dtype
    # bfloat16 keeps 8 bits of mantissa: losses agree to a few parts in a thousand.
    np.testing.assert_allclose(got, ref, rtol=2e-2)
    assert np.all(np.diff(ref) != 0)  # the steps moved: the comparison is not of constants
    # Adam at lr 1e-3 moves a parameter at most ~1e-3 a step, so after three steps the two
    # runs' parameters are within 6e-3 of each other; most are far closer.
    moved = []
    for a, b, b0 in zip(
        jax.tree.leaves(state["params"]),
        jax.tree.leaves(ref_state["params"]),
        jax.tree.leaves(initial),
        strict=True,
    ):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=6e-3)
        moved.append((np.abs(np.asarray(a) - b), np.abs(np.asarray(b) - b0)))
    gap = np.median(np.concatenate([g.ravel() for g, _ in moved]))
    step = np.median(np.concatenate([m.ravel() for _, m in moved]))
    assert gap < 0.2 * step, (gap, step)  # bf16 noise is small next to the training moves
