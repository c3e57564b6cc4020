"""The sharded train step: same update as a plain unsharded computation, and the non-finite
guard skips and counts bad steps."""

import os
import subprocess
import sys

import jax
import numpy as np
import optax
import pytest
from flax import nnx

from audiolm_pt import main, objectives, sharding
from audiolm_pt.audio import FbankConfig, fbank_np, frontend
from audiolm_pt.data import transforms
from audiolm_pt.data.device_features import make_featurizer
from audiolm_pt.data.pipeline_config import PipelineConfig
from audiolm_pt.experiment_sections import OptimizerConfig
from audiolm_pt.models.config import preset
from audiolm_pt.objectives import ObjectiveConfig
from audiolm_pt.train import heldout, synthetic
from audiolm_pt.train.build import build_trainer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _copy(tree):
    return jax.tree.map(np.asarray, tree)


MASKS = {"time_masks": 2, "max_time_mask": 10, "freq_masks": 2, "max_freq_mask": 10}


@pytest.fixture(scope="module")
def trainer():
    """The tiny contrastive trainer on a 2x4 mesh, with the device front end: batches that
    hold features pass its featurizer untouched, waveform batches get features and masks."""
    return build_trainer(
        preset("tiny", "contrastive"),
        ObjectiveConfig(objective="contrastive"),
        # A large eps keeps Adam from blowing up gradients that are zero up to rounding
        # (attention key biases), which would make the comparison meaningless.
        OptimizerConfig(learning_rate=1e-3, warmup_steps=0, eps=1e-3),
        sharding.ShardingConfig(ici_data=2, ici_fsdp=4),
        total_steps=10,
        featurize=make_featurizer(PipelineConfig(feature_source="device", **MASKS)),
    )


def test_step_matches_reference_and_nonfinite_guard_skips_and_counts(trainer):
    cfg = trainer.model_cfg
    state = trainer.init()
    params0 = _copy(state["params"])
    rng0 = np.asarray(state["rng"])
    good = synthetic.synthetic_batch(cfg, 8, 40, 8, seed=0, index=0)

    # Reference: unsharded loss, plain jax.grad, the same optax transformation.
    def loss(p):
        model = nnx.merge(trainer.graphdef, p, _copy(state["rest"]))
        key = jax.random.fold_in(rng0, 0)
        return objectives.loss_fn(model, good, ObjectiveConfig(objective="contrastive"), key)[0]

    ref_loss, grads = jax.jit(jax.value_and_grad(loss))(params0)
    updates, _ = trainer.tx.update(grads, trainer.tx.init(params0), params0)
    ref_params = optax.apply_updates(params0, updates)

    state, m = trainer.step(state, good)
    np.testing.assert_allclose(m["loss"], ref_loss, rtol=1e-5)
    np.testing.assert_allclose(m["grad_norm"], optax.global_norm(grads), rtol=1e-4)
    for a, b in zip(jax.tree.leaves(state["params"]), jax.tree.leaves(ref_params), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    assert (int(m["skipped_step"]), int(state["skipped"]), int(state["step"])) == (0, 0, 1)

    after_good = _copy((state["params"], state["opt_state"]))
    bad = dict(good, features=np.where(np.arange(40)[None, :, None] == 3, np.nan, good["features"]))
    for k in (1, 2):
        state, m = trainer.step(state, bad)
        assert not np.isfinite(float(m["loss"]))
        assert int(m["skipped_step"]) == 1
        assert (int(state["skipped"]), int(state["consecutive"])) == (k, k)
    for a, b in zip(
        jax.tree.leaves((state["params"], state["opt_state"])),
        jax.tree.leaves(after_good),
        strict=True,
    ):
        np.testing.assert_array_equal(a, b)

    state, m = trainer.step(state, good)
    assert (int(state["skipped"]), int(state["consecutive"]), int(state["step"])) == (2, 0, 4)
    # The schedule follows applied updates: the 2nd applied update, not the 4th step.
    np.testing.assert_allclose(m["lr"], trainer.schedule(1), rtol=1e-6)
    moved = [
        not np.array_equal(a, b)
        for a, b in zip(
            jax.tree.leaves(state["params"]), jax.tree.leaves(after_good[0]), strict=True
        )
    ]
    assert any(moved)


def test_step_modules_import_without_the_data_stack():
    """The GPU image has only jax/flax/optax/orbax/chex: the step must not pull in more."""
    code = (
        "import sys\n"
        "import audiolm_pt.train.build, audiolm_pt.train.mfu, audiolm_pt.train.optimizer\n"
        "import audiolm_pt.train.step\n"
        "data_stack = {'tensorflow', 'tensorflow_datasets', 'grain', 'clu', 'ml_collections'}\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & data_stack))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    assert out.stdout.strip() == "[]"


def _waveform_and_feature_batches(cfg, frames: int):
    """One batch twice: int16 waveform segments for the device, host fbank features (with
    the other keys of the synthetic batch, so the feature batch has its shapes)."""
    rng = np.random.default_rng(5)
    fe = FbankConfig()
    batch = synthetic.synthetic_batch(cfg, 8, frames, 8, seed=0, index=0)
    waves = [rng.normal(0, 2000, 400 + 160 * int(n)).astype(np.int16) for n in range(8, 48, 5)]
    host = [fbank_np(w / frontend.INT16_SCALE, fe)[:frames] for w in waves]
    padded = [transforms.pad(f, frames) for f in host]
    features = {
        "features": np.stack([f for f, _ in padded]),
        "feature_mask": np.stack([m for _, m in padded]),
    }
    device = {
        "waveform": np.stack([frontend.cut_segment(w, 0, frames, fe) for w in waves]),
        "num_frames": np.array([min(len(f), frames) for f in host], np.int32),
    }
    rest = {k: v for k, v in batch.items() if k not in features}
    return {**device, **rest}, {**features, **rest}


def test_the_device_front_end_computes_host_features_and_still_augments(trainer):
    waveform, features = _waveform_and_feature_batches(trainer.model_cfg, 40)
    state = trainer.init()
    to_global = main.make_to_global(trainer)
    on_device = heldout.make_evaluator(trainer, [waveform], trainer.objective, to_global)
    on_host = heldout.make_evaluator(trainer, [features], trainer.objective, to_global)
    # Evaluation (no masks): the sharded step computes the host's features.
    np.testing.assert_allclose(on_device(state)["loss"], on_host(state)["loss"], rtol=1e-4)
    # Training masks them: same state and key, and the loss moves away from the unmasked one.
    _, host = trainer.step(trainer.init(), features)
    _, augmented = trainer.step(trainer.init(), waveform)
    assert abs(float(augmented["loss"]) - float(host["loss"])) > 1e-3
