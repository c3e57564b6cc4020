"""Fault injection on checkpoints (issue 15): a damaged newest step, a config that no longer
matches the saved state, and a checkpoint directory that cannot be written. Each test fails on
the code before its fix: the damaged step made every restart crash on `StepAlreadyExistsError`
and `load()` raise TensorStore's error; a changed config fell through to a fresh start and a
later JAX TypeError; a read-only directory hung the first save for five minutes."""

import contextlib
import json
import logging
import os
import shutil
import subprocess
import time

import jax
import numpy as np
import pytest
from test_api import TOKENIZER
from test_train_checkpointing import _equal, _iterator, _trainer

import audiolm_pt
from audiolm_pt import experiment
from audiolm_pt.experiment_sections import CheckpointConfig
from audiolm_pt.inference.params import CheckpointCorruptError, CheckpointMismatchError
from audiolm_pt.models.config import preset
from audiolm_pt.train import checkpointing
from audiolm_pt.train.build import build_from_config


@pytest.fixture(scope="module")
def trainer():
    return _trainer()


def _damage(step_dir, how: str) -> None:
    """Damage as a crash, a full disk or bad storage leaves it."""
    state = step_dir / "state"
    data = [p for p in state.rglob("*") if p.is_file() and p.parent.name == "d"]
    if how == "metadata deleted":
        (state / "_METADATA").unlink()
    for path in data:
        blob = bytearray(path.read_bytes())
        if how == "data truncated":
            path.write_bytes(bytes(blob[: len(blob) // 2]))
        elif how == "bits flipped":
            blob[::7] = bytes(b ^ 0xFF for b in blob[::7])
            path.write_bytes(bytes(blob))


def _save_two_steps(trainer, directory):
    first = trainer.init()
    second = dict(first, step=first["step"] + 4)
    ckpt = checkpointing.Checkpointer(str(directory), CheckpointConfig())
    ckpt.save(2, first, _iterator())
    ckpt.save(4, second, _iterator())
    ckpt.close()
    return first, second


def test_damaged_newest_steps_are_moved_aside_and_saved_afresh(trainer, tmp_path, caplog):
    """Steps 4, 6 and 8 damaged three ways: the restore falls back to step 2, and the resumed
    run's save of step 4 does not collide with the damaged one."""
    first = trainer.init()
    ckpt = checkpointing.Checkpointer(str(tmp_path), CheckpointConfig(keep_last=4))
    for step in (2, 4, 6, 8):
        ckpt.save(step, dict(first, step=first["step"] + step), _iterator())
    ckpt.close()
    damage = {8: "metadata deleted", 6: "data truncated", 4: "bits flipped"}
    for step, how in damage.items():
        _damage(tmp_path / str(step), how)
    ckpt = checkpointing.Checkpointer(str(tmp_path), CheckpointConfig(keep_last=4))
    with caplog.at_level(logging.WARNING):
        restored = ckpt.restore_latest(trainer.abstract, trainer.shardings, _iterator())
    assert _equal(restored, dict(first, step=first["step"] + 2))
    for step in damage:
        assert f"{tmp_path}/{step} does not restore" in caplog.text
        assert f"moved it to {tmp_path}/corrupt/{step} " in caplog.text
        assert (tmp_path / "corrupt" / str(step) / "state").is_dir()
    second = dict(first, step=first["step"] + 4)
    assert ckpt.save(4, second, _iterator())
    ckpt.close()
    ckpt = checkpointing.Checkpointer(str(tmp_path), CheckpointConfig(keep_last=4))
    assert ckpt.all_steps() == [2, 4]
    assert _equal(ckpt.restore_latest(trainer.abstract, trainer.shardings, _iterator()), second)
    ckpt.close()


def test_a_changed_config_is_refused_by_name_and_nothing_is_moved(trainer, tmp_path):
    _save_two_steps(trainer, tmp_path)
    hybrid = _trainer(objective="hybrid")
    ckpt = checkpointing.Checkpointer(str(tmp_path), CheckpointConfig())
    for attempt in (
        lambda: ckpt.check_resumable(hybrid.abstract),
        lambda: ckpt.restore_latest(hybrid.abstract, hybrid.shardings, _iterator()),
    ):
        with pytest.raises(CheckpointMismatchError) as error:
            attempt()
        message = str(error.value)
        assert message.startswith(f"{tmp_path}/4 does not hold what the config builds")
        assert "missing: params.decoder." in message
        assert "\n" not in message
    ckpt.close()
    assert sorted(os.listdir(tmp_path)) == ["2", "4"]


@pytest.fixture(scope="module")
def saved_run(tmp_path_factory):
    """A run directory as `main` leaves it: config.json and checkpoints at steps 2 and 4
    (different parameters), of a tiny contrastive model."""
    workdir = tmp_path_factory.mktemp("run")
    values = experiment.config_dict(preset("tiny", "contrastive")).to_dict()
    values["data"]["pipeline"]["tokenizer"] = TOKENIZER
    config = experiment.parse(values)
    trainer = build_from_config(config)
    first = trainer.init()
    second = dict(first, params=jax.tree.map(lambda x: x + 1.0, first["params"]))
    ckpt = checkpointing.Checkpointer(str(workdir / "checkpoints"), CheckpointConfig())
    ckpt.save(2, first, _iterator())
    ckpt.save(4, second, _iterator())
    ckpt.close()
    experiment.write(config, str(workdir))
    return workdir, first["params"]


def _copy(run, tmp_path):
    workdir = tmp_path / "run"
    shutil.copytree(run, workdir)
    return workdir


def test_load_names_a_damaged_step_and_falls_back(saved_run, tmp_path, caplog):
    workdir = _copy(saved_run[0], tmp_path)
    _damage(workdir / "checkpoints" / "4", "bits flipped")
    with caplog.at_level(logging.WARNING):
        model = audiolm_pt.load(str(workdir))
    assert model.run.step == 2
    assert f"{workdir}/checkpoints/4 does not restore" in caplog.text
    kernel = model.run.model.audio_proj.linears[0].kernel.value
    expected = saved_run[1]["audio_proj"]["linears"][0]["kernel"].value
    np.testing.assert_array_equal(np.asarray(kernel), np.asarray(expected))
    with pytest.raises(CheckpointCorruptError) as error:
        audiolm_pt.load(str(workdir), step=4)
    assert str(error.value).startswith(f"{workdir}/checkpoints/4 does not restore (")
    assert "\n" not in str(error.value)


def test_load_refuses_parameters_that_do_not_match_the_config(saved_run, tmp_path):
    workdir = _copy(saved_run[0], tmp_path)
    path = workdir / experiment.CONFIG_NAME
    config = json.loads(path.read_text())
    config["model"]["objective"] = "hybrid"
    path.write_text(json.dumps(config))
    with pytest.raises(CheckpointMismatchError, match=r"missing: params\.decoder\."):
        audiolm_pt.load(str(workdir))


@contextlib.contextmanager
def _tmpfs(path):
    """A small RAM file system at `path`, remountable read-only: the only way to refuse
    writes to root, as the tests run in CI."""
    path.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(path)])
    if mounted.returncode:
        pytest.skip("mounting a tmpfs needs root (CAP_SYS_ADMIN)")
    try:
        yield lambda mode: subprocess.run(["mount", "-o", f"remount,{mode}", str(path)], check=True)
    finally:
        subprocess.run(["umount", "-l", str(path)], check=True)


def test_an_unwritable_checkpoint_directory_fails_at_once_with_the_os_error(tmp_path):
    with _tmpfs(tmp_path / "fs") as remount:
        (tmp_path / "fs" / "checkpoints").mkdir()
        remount("ro")
        for directory in ("checkpoints", "new/checkpoints"):
            start = time.perf_counter()
            with pytest.raises(checkpointing.CheckpointWriteError, match="Read-only file system"):
                checkpointing.Checkpointer(str(tmp_path / "fs" / directory), CheckpointConfig())
            assert time.perf_counter() - start < 30  # it used to wait 300 s


def test_a_save_that_cannot_be_written_keeps_training_then_stops(trainer, tmp_path, caplog):
    state = trainer.init()
    with _tmpfs(tmp_path / "fs") as remount:
        ckpt = checkpointing.Checkpointer(str(tmp_path / "fs" / "ck"), CheckpointConfig())
        assert ckpt.save(2, state, _iterator())
        ckpt.wait()
        remount("ro")
        with caplog.at_level(logging.ERROR):
            assert not ckpt.save(4, state, _iterator())
        assert "step 4: no checkpoint written" in caplog.text
        assert "Read-only file system" in caplog.text
        with pytest.raises(checkpointing.CheckpointWriteError, match=r"step 6: .*Read-only"):
            ckpt.save(6, state, _iterator(), last=True)
        remount("rw")
        assert ckpt.save(8, state, _iterator())
        ckpt.close()
        assert ckpt.all_steps() == [2, 8]
