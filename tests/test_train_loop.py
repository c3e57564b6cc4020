"""The training loop in-process: logged metrics and their arithmetic, evaluation hook,
periodic checkpoints, resume, and the stop after K consecutive non-finite steps."""

import dataclasses

import jax
import numpy as np
import pytest

from audiolm_pt import sharding
from audiolm_pt.experiment_sections import CheckpointConfig, OptimizerConfig, TrainConfig
from audiolm_pt.models.config import preset
from audiolm_pt.objectives import ObjectiveConfig
from audiolm_pt.run_metrics import MetricsLogger, read_jsonl
from audiolm_pt.train import heldout as heldout_lib
from audiolm_pt.train import loop, synthetic
from audiolm_pt.train.build import build_trainer
from audiolm_pt.train.checkpointing import Checkpointer

CFG = dataclasses.replace(
    preset("tiny", "contrastive"),
    text=dataclasses.replace(preset("tiny").text, vocab_size=500),
)
OBJECTIVE = ObjectiveConfig(objective="contrastive")


class _NanIterator(synthetic.SyntheticIterator):
    def __next__(self):
        batch = super().__next__()
        return dict(batch, features=np.full_like(batch["features"], np.nan))


def _to_global(trainer):
    def to_global(batch):
        return {
            k: jax.make_array_from_process_local_data(trainer.batch_sharding, v)
            for k, v in batch.items()
        }

    return to_global


def _run(trainer, iterator, workdir, num_steps, evals=(), max_nonfinite=20):
    ckpt = Checkpointer(f"{workdir}/checkpoints", CheckpointConfig(every_steps=2))
    logger = MetricsLogger(workdir)
    try:
        return loop.train(
            trainer,
            iterator,
            _to_global(trainer),
            ckpt,
            logger,
            TrainConfig(num_steps=num_steps, log_every=1, max_consecutive_nonfinite=max_nonfinite),
            checkpoint_every=2,
            global_batch_size=8,
            flops_per_step=1e9,
            peak_flops_per_device=1e12,
            evals=evals,
        )
    finally:
        ckpt.close()
        logger.close()


def test_loop_metrics_eval_checkpoints_and_nonfinite_stop(tmp_path):
    trainer = build_trainer(
        CFG,
        OBJECTIVE,
        OptimizerConfig(warmup_steps=2),
        sharding.ShardingConfig(ici_data=2, ici_fsdp=4),
        total_steps=10,
    )
    held_out = [synthetic.synthetic_batch(CFG, 8, 24, 8, seed=9, index=0)]
    heldout = heldout_lib.make_evaluator(trainer, held_out, OBJECTIVE, _to_global(trainer))
    evals = (loop.ScheduledEval("heldout", 2, heldout),)
    state = _run(trainer, synthetic.SyntheticIterator(CFG, 8, 24, 8), str(tmp_path), 4, evals)
    assert int(state["step"]) == 4

    rows = read_jsonl(str(tmp_path))
    train_rows = [r for r in rows if "loss" in r]
    assert [r["step"] for r in train_rows] == [1, 2, 3, 4]
    for r in train_rows:
        for key in (
            "contrastive_loss",
            "a2t_top1",
            "t2a_top1",
            "grad_norm",
            "data_wait_time",
            "skipped_total",
        ):
            assert key in r
        assert np.isfinite(r["loss"])
        assert r["lr"] == pytest.approx(float(trainer.schedule(r["step"] - 1)), rel=1e-6)
        assert r["examples_per_sec"] == pytest.approx(8 / r["step_time"])
        assert r["tflops_per_device"] == pytest.approx(1e9 / r["step_time"] / 8 / 1e12)
        assert r["mfu"] == pytest.approx(1e9 / r["step_time"] / 8 / 1e12)
    eval_rows = [r for r in rows if "eval/heldout/loss" in r]
    assert [r["step"] for r in eval_rows] == [2, 4]
    assert eval_rows[0]["eval/heldout/loss"] != eval_rows[1]["eval/heldout/loss"]
    assert heldout(state)["loss"] == pytest.approx(eval_rows[1]["eval/heldout/loss"], rel=1e-6)
    assert Checkpointer(f"{tmp_path}/checkpoints", CheckpointConfig()).all_steps() == [2, 4]

    # Resume at step 4, then every batch is non-finite: stop after two in a row.
    with pytest.raises(loop.NonFiniteError, match=r"2 consecutive .* last checkpoint is step 4"):
        _run(trainer, _NanIterator(CFG, 8, 24, 8), str(tmp_path), 10, max_nonfinite=2)
    assert Checkpointer(f"{tmp_path}/checkpoints", CheckpointConfig()).all_steps() == [2, 4]
    skipped = [r for r in read_jsonl(str(tmp_path)) if r["step"] > 4]
    assert [(r["step"], r["skipped_total"]) for r in skipped][:2] == [(5, 1.0), (6, 2.0)]


def test_unknown_evaluator_is_named():
    from audiolm_pt import experiment, main

    config = experiment.parse(
        {"data": {"source": "synthetic", "pipeline": {"tokenizer": ""}},
         "evals": {"retrieval_at_1": {"every_steps": 2}}}
    )  # fmt: skip
    with pytest.raises(ValueError, match=r"evals\.retrieval_at_1.*'retrieval_at_1'"):
        main.check_evals(config)
