"""Orbax checkpoints of the train state and iterator: round trip, retention, the finite-state
guard, corrupt-latest fallback, init_from, and restoring an 8-device checkpoint on 2 devices."""

import dataclasses
import logging
import os
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest

from audiolm_pt import sharding
from audiolm_pt.experiment_sections import CheckpointConfig, OptimizerConfig
from audiolm_pt.models.config import preset
from audiolm_pt.objectives import ObjectiveConfig
from audiolm_pt.train import checkpointing, synthetic
from audiolm_pt.train.build import build_trainer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _model(objective="contrastive"):
    cfg = preset("tiny", objective)
    return dataclasses.replace(cfg, text=dataclasses.replace(cfg.text, vocab_size=500))


def _trainer(mesh=None, objective="contrastive"):
    mesh = mesh or sharding.ShardingConfig(ici_data=2, ici_fsdp=4)
    return build_trainer(
        _model(objective),
        ObjectiveConfig(objective=objective),
        OptimizerConfig(),
        mesh,
        total_steps=10,
    )


def _iterator():
    return synthetic.SyntheticIterator(_model(), 8, 24, 8, seed=3)


def _equal(a, b) -> bool:
    return all(
        np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    )


@pytest.fixture(scope="module")
def trainer():
    return _trainer()


def test_round_trip_restores_state_and_iterator_position(trainer, tmp_path):
    state = trainer.init()
    it = _iterator()
    for _ in range(3):
        next(it)
    ckpt = checkpointing.Checkpointer(str(tmp_path), CheckpointConfig())
    assert ckpt.save(3, state, it)
    expected_next = next(it)
    ckpt.close()

    fresh = _iterator()
    ckpt = checkpointing.Checkpointer(str(tmp_path), CheckpointConfig())
    restored = ckpt.restore_latest(trainer.abstract, trainer.shardings, fresh)
    assert _equal(restored, state)
    assert all(
        x.sharding == s
        for x, s in zip(jax.tree.leaves(restored), jax.tree.leaves(trainer.shardings), strict=True)
    )
    assert fresh.get_state() == {"next_index": 3}
    assert _equal(next(fresh), expected_next)
    ckpt.close()


def test_keep_last_and_keep_every(trainer, tmp_path):
    state = trainer.init()
    cfg = CheckpointConfig(keep_last=2, keep_every=3)
    ckpt = checkpointing.Checkpointer(str(tmp_path), cfg)
    for step in range(1, 8):
        ckpt.save(step, state, _iterator())
    ckpt.close()
    assert checkpointing.Checkpointer(str(tmp_path), cfg).all_steps() == [3, 6, 7]


def test_non_finite_state_is_never_saved(trainer, tmp_path, caplog):
    state = trainer.init()
    bad = dict(state, params=jax.tree.map(lambda x: x * np.nan, state["params"]))
    ckpt = checkpointing.Checkpointer(str(tmp_path), CheckpointConfig())
    with caplog.at_level(logging.ERROR):
        assert not ckpt.save(5, bad, _iterator())
    ckpt.close()
    assert "non-finite" in caplog.text
    assert checkpointing.Checkpointer(str(tmp_path), CheckpointConfig()).all_steps() == []


def test_corrupt_latest_falls_back_to_previous(trainer, tmp_path, caplog):
    first = trainer.init()
    second = dict(first, step=first["step"] + 4)
    ckpt = checkpointing.Checkpointer(str(tmp_path), CheckpointConfig())
    ckpt.save(2, first, _iterator())
    ckpt.save(4, second, _iterator())
    ckpt.close()
    for folder, _, files in os.walk(tmp_path / "4" / "state"):
        for name in files:
            path = os.path.join(folder, name)
            with open(path, "r+b") as f:
                f.truncate(os.path.getsize(path) // 2)
    ckpt = checkpointing.Checkpointer(str(tmp_path), CheckpointConfig())
    with caplog.at_level(logging.WARNING):
        restored = ckpt.restore_latest(trainer.abstract, trainer.shardings, _iterator())
    ckpt.close()
    assert "4 does not restore" in caplog.text
    assert int(restored["step"]) == 0
    assert _equal(restored["params"], first["params"])


def test_init_from_copies_only_the_encoder(trainer, tmp_path):
    source = trainer.init()
    ckpt = checkpointing.Checkpointer(str(tmp_path / "src"), CheckpointConfig())
    ckpt.save(7, source, _iterator())
    ckpt.close()
    cfg = CheckpointConfig(init_from=str(tmp_path / "src"), init_mode="encoder")
    ckpt = checkpointing.Checkpointer(str(tmp_path / "new"), cfg)
    state, origin = checkpointing.restore_or_init(
        ckpt, trainer.abstract, trainer.shardings, _iterator(), lambda: trainer.init(seed=1)
    )
    ckpt.close()
    assert origin == "init_from"
    assert int(state["step"]) == 0
    assert _equal(state["params"]["audio_encoder"], source["params"]["audio_encoder"])
    assert not _equal(state["params"]["text_encoder"], source["params"]["text_encoder"])
    scratch = trainer.init(seed=1)
    assert _equal(state["params"]["text_encoder"], scratch["params"]["text_encoder"])


_RESTORE_ON_TWO = textwrap.dedent(
    """
    import sys
    import jax, numpy as np
    sys.path.insert(0, {root!r}); sys.path.insert(0, {tests!r})
    from test_train_checkpointing import _trainer, _iterator
    from audiolm_pt import sharding
    from audiolm_pt.experiment_sections import CheckpointConfig
    from audiolm_pt.train import checkpointing
    assert jax.device_count() == 2
    trainer = _trainer(mesh=sharding.ShardingConfig(ici_data=1, ici_fsdp=2))
    it = _iterator()
    ckpt = checkpointing.Checkpointer({path!r}, CheckpointConfig())
    state = ckpt.restore_latest(trainer.abstract, trainer.shardings, it)
    leaves = jax.tree.leaves(state)
    assert all(len(x.sharding.device_set) == 2 for x in leaves)
    np.savez({out!r}, *[np.asarray(x) for x in leaves], next_index=it.get_state()["next_index"])
    """
)


def test_eight_device_checkpoint_restores_on_two_devices(trainer, tmp_path):
    state = trainer.init()
    it = _iterator()
    next(it)
    ckpt = checkpointing.Checkpointer(str(tmp_path / "ckpt"), CheckpointConfig())
    ckpt.save(1, state, it)
    ckpt.close()
    script = _RESTORE_ON_TWO.format(
        root=ROOT,
        tests=os.path.join(ROOT, "tests"),
        path=str(tmp_path / "ckpt"),
        out=str(tmp_path / "restored.npz"),
    )
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2")
    subprocess.run([sys.executable, "-c", script], check=True, env=env, timeout=600)
    got = np.load(tmp_path / "restored.npz")
    assert int(got["next_index"]) == 1
    leaves = jax.tree.leaves(state)
    assert len(got.files) == len(leaves) + 1
    for i, leaf in enumerate(leaves):
        np.testing.assert_array_equal(got[f"arr_{i}"], np.asarray(leaf))


def test_a_checkpoint_from_another_process_count_seeks_to_its_step(tmp_path):
    """No iterator state for this process: a seekable iterator moves to global batch
    `step` (every step consumed one); the model state restores as usual."""
    ckpt = checkpointing.Checkpointer(str(tmp_path), CheckpointConfig())
    data = tmp_path / "7" / "data"
    data.mkdir(parents=True)
    (data / "process_0-of-2.json").write_text("{}")
    it = synthetic.SyntheticIterator(preset("tiny"), 8, 24, 8)
    ckpt._restore_iterator(7, it)
    assert it.get_state() == {"next_index": 7}
    ckpt.close()
