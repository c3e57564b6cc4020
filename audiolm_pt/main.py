"""Command-line entry point of training.

    python -m audiolm_pt.main --config=configs/contrastive.py:base --workdir=DIR \
        [--config.optimizer.learning_rate=3e-4 ...] [--multiprocess ...] [--dry_run]

Every config field can be overridden from the command line; the config is parsed once, by
`audiolm_pt.experiment.parse`, and an unknown key or a bad value fails at start-up naming
the key. `--dry_run` validates, prints the resolved config and the mesh, and exits without
reading data or writing anything. With `--multiprocess`, `jax.distributed.initialize` runs
before anything touches a device (coordinator flags, or auto-detection on TPU pods and
SLURM); each process reads its share of the global batch and
`jax.make_array_from_process_local_data` assembles the global arrays.
"""

import contextlib
import json
import logging
import os
from collections.abc import Callable
from typing import Any

import jax
import numpy as np
from absl import app, flags
from jax.experimental import multihost_utils
from ml_collections import config_flags

from audiolm_pt import console, experiment, sharding
from audiolm_pt.data.pipeline_config import PipelineConfig
from audiolm_pt.experiment import ExperimentConfig
from audiolm_pt.inference.params import CheckpointMismatchError
from audiolm_pt.run_metrics import MetricsLogger
from audiolm_pt.train import heldout, loop, mfu, synthetic
from audiolm_pt.train.build import Trainer, build_from_config
from audiolm_pt.train.checkpointing import Checkpointer, CheckpointWriteError

_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment config file[:arg].")
_WORKDIR = flags.DEFINE_string("workdir", None, "Checkpoints and metrics go here.")
_DRY_RUN = flags.DEFINE_bool(
    "dry_run", False, "Validate the config, print it and the mesh, and exit."
)
_MULTI = flags.DEFINE_bool("multiprocess", False, "Call jax.distributed.initialize first.")
_COORDINATOR = flags.DEFINE_string("coordinator_address", None, "host:port of process 0.")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Number of processes.")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "This process's index.")
_CPU_COLLECTIVES = flags.DEFINE_string(
    "cpu_collectives", None, "CPU collectives implementation for multi-process CPU runs (gloo)."
)

log = logging.getLogger("audiolm_pt.main")  # also when run as __main__
DATA_INFO_NAME = "data_info.json"


def make_to_global(
    trainer: Trainer, pipeline_cfg: PipelineConfig | None = None
) -> Callable[[dict[str, np.ndarray]], dict[str, jax.Array]]:
    """Host batches to global arrays. With `bucket_frames` in `pipeline_cfg`, each host's
    batch is padded to the smallest bucket holding its own longest clip, so with several
    processes they first agree on the largest of their frame counts (one small all-gather
    per batch)."""
    agree = bool(pipeline_cfg and pipeline_cfg.bucket_frames) and jax.process_count() > 1

    def to_global(batch: dict[str, np.ndarray]) -> dict[str, jax.Array]:
        if agree:
            from audiolm_pt.data.pipeline import batch_frames, pad_frames

            frames = np.int32(batch_frames(batch, pipeline_cfg))
            most = int(np.max(multihost_utils.process_allgather(frames)))
            batch = pad_frames(batch, most, pipeline_cfg)
        return {
            k: jax.make_array_from_process_local_data(trainer.batch_sharding, v)
            for k, v in batch.items()
        }

    return to_global


def make_iterator(config: ExperimentConfig, split: str) -> Any:
    """This process's batch iterator for `split` ("train" or "eval")."""
    data = config.data
    if data.source == "synthetic":
        return synthetic.SyntheticIterator(
            config.model,
            data.pipeline.global_batch_size,
            data.pipeline.max_frames,
            data.pipeline.max_text_len,
            seed=config.seed + (split == "eval"),
            process_index=jax.process_index(),
            process_count=jax.process_count(),
        )
    from audiolm_pt.data import pipeline  # the data stack, only when real data is read

    return pipeline.make_iterator(*tfds_sources(config, split))


def tfds_sources(config: ExperimentConfig, split: str) -> tuple[dict[str, Any], Any]:
    """(TFDS sources of `split`, the pipeline config reading them)."""
    from audiolm_pt.data import pipeline

    data = config.data
    sources = {
        name: pipeline.tfds_source(name, data.split_name(split), data.data_dir or None)
        for name in data.tfds_names
    }
    return sources, data.pipeline_for(split)


def write_data_info(config: ExperimentConfig, workdir: str) -> None:
    """`workdir/data_info.json`: per training source {"records", "kept", "fraction",
    "fingerprint"}, so a run's training-set size is read from the run, not recomputed (TFDS
    data only). A run resumed on other data (a source added, removed, resized or rebuilt)
    stops here, naming what changed: its checkpointed data position would mean nothing."""
    if config.data.source != "tfds":
        return
    from audiolm_pt.data import pipeline

    info = pipeline.source_sizes(*tfds_sources(config, "train"))
    path = os.path.join(workdir, DATA_INFO_NAME)
    resuming = os.path.isdir(os.path.join(workdir, "checkpoints"))
    if resuming and os.path.isfile(path):
        with open(path, encoding="utf-8") as f:
            recorded = json.load(f)
        changed = data_changes(recorded, info)
        if changed:
            raise ValueError(
                f"{path}: the training data differ from those the checkpoints were written "
                f"with ({'; '.join(changed)}); use a new --workdir, or restore the data"
            )
    with open(path, "w", encoding="utf-8") as f:
        json.dump(info, f, indent=2, sort_keys=True)


def data_changes(recorded: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """What differs between two `data_info.json` contents, one phrase each (a recorded
    value of None, from runs written before fingerprints, is not compared)."""
    changes = [f"source {name} {'added' if name in current else 'removed'}"
               for name in sorted(set(recorded) ^ set(current))]  # fmt: skip
    for name in sorted(set(recorded) & set(current)):
        for key, now in sorted(current[name].items()):
            was = recorded[name].get(key)
            if was is not None and was != now:
                changes.append(f"{name}.{key} {was} -> {now}")
    return changes


def text_cache_preparer(
    config: ExperimentConfig, trainer: Trainer, cache_dir: str
) -> Callable[[dict[str, Any]], Callable[[dict], dict]]:
    """`prepare(state)` for the loop: the locked text tower's cache over every caption the
    training stream can draw (TFDS data; other sources fill it as captions arrive)."""
    from audiolm_pt.train import text_cache

    def prepare(state: dict[str, Any]) -> Callable[[dict], dict]:
        captions = []
        if config.data.source == "tfds":
            from audiolm_pt.data import pipeline

            captions = pipeline.caption_texts(*tfds_sources(config, "train"))
        tokenizer = experiment.tokenizer_of(config)
        max_len = config.data.pipeline.max_text_len
        return text_cache.build(trainer, state, tokenizer, captions, max_len, cache_dir)

    return prepare


def check_evals(config: ExperimentConfig) -> None:
    """Every scheduled evaluator exists and takes the options given (start-up, not at its
    first run)."""
    for name, spec in config.evals.items():
        if name == heldout.NAME:
            heldout.check_options(spec.options, f"evals.{name}")
            continue
        from audiolm_pt.evaluate import hook  # the evaluation stack, only when configured

        hook.check_options(name, spec.options, f"evals.{name}")


def make_evals(
    config: ExperimentConfig, trainer: Trainer, to_global: Callable, workdir: str
) -> tuple[loop.ScheduledEval, ...]:
    """The loop's evaluators: held-out loss on fixed batches of the eval split, or an
    evaluator of `audiolm_pt.evaluate` on the live state."""
    evals = []
    for name, spec in config.evals.items():
        if name == heldout.NAME:
            num_batches = spec.options.get("num_batches", 1)
            eval_iter = make_iterator(config, "eval")
            batches = [next(eval_iter) for _ in range(num_batches)]
            eval_iter.close()
            fn = heldout.make_evaluator(trainer, batches, trainer.objective, to_global)
        else:
            from audiolm_pt.evaluate import hook

            fn = hook.make_hook(name, trainer.graphdef, config, workdir, **spec.options)
        evals.append(loop.ScheduledEval(name, spec.every_steps, fn))
    return tuple(evals)


def describe(config: ExperimentConfig) -> str:
    """The resolved config and the mesh it runs on, as `--dry_run` prints them."""
    mesh = sharding.make_mesh(config.sharding)
    shape = dict(mesh.shape)
    body = json.dumps(experiment.as_dict(config), indent=2, sort_keys=True)
    return f"{body}\nmesh: {shape} over {mesh.devices.size} devices"


def run(config: ExperimentConfig, workdir: str) -> dict[str, Any]:
    """Trains according to `config`, writing to `workdir`; returns the final state."""
    model = config.model
    if model.text.init_from and model.has_text_encoder:
        log.info(
            "text tower: %s (%s)",
            model.text.init_from,
            "locked" if model.text.locked else "trained",
        )
    elif model.has_text_encoder:
        log.info("text tower: randomly initialised (model.text.init_from is empty)")
    check_evals(config)
    cache_dir = config.train.text_cache_dir or os.path.join(workdir, "text_cache")
    pipeline_cfg = config.data.pipeline
    # First, so that a directory that cannot be written fails in seconds, before any work.
    checkpointer = Checkpointer(os.path.join(workdir, "checkpoints"), config.checkpoint)
    with contextlib.ExitStack() as cleanup:  # closed last to first
        cleanup.callback(checkpointer.close)
        trainer = build_from_config(config)
        checkpointer.check_resumable(trainer.abstract)  # before config.json is overwritten
        buckets = pipeline_cfg.bucket_frames
        to_global = make_to_global(trainer, pipeline_cfg)
        if buckets:
            shapes = tuple(dict.fromkeys((*buckets, pipeline_cfg.max_frames)))
            log.info(
                "bucketing: each global batch is padded to one of %s frames; the step "
                "compiles once per shape it meets (at most %d)",
                shapes,
                len(shapes),
            )
        iterator = make_iterator(config, "train")
        cleanup.callback(iterator.close)
        evals = make_evals(config, trainer, to_global, workdir)
        flops = mfu.train_step_flops(
            model,
            pipeline_cfg.global_batch_size,
            pipeline_cfg.max_frames,
            pipeline_cfg.max_text_len,
        )
        device = jax.devices()[0]
        peak = mfu.peak_flops_per_device(device.device_kind, model.audio.transformer.dtype)
        logger = MetricsLogger(workdir)
        cleanup.callback(logger.close)
        logger.write_hparams({"config": json.dumps(experiment.as_dict(config))})
        if jax.process_index() == 0:
            write_data_info(config, workdir)
            experiment.write(config, workdir)
        return loop.train(
            trainer,
            iterator,
            to_global,
            checkpointer,
            logger,
            config.train,
            checkpoint_every=config.checkpoint.every_steps,
            global_batch_size=pipeline_cfg.global_batch_size,
            flops_per_step=flops,
            peak_flops_per_device=peak,
            evals=evals,
            workdir=workdir,
            prepare=(
                text_cache_preparer(config, trainer, cache_dir)
                if model.text.locked and model.has_text_encoder
                else None
            ),
        )


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    if _CPU_COLLECTIVES.value:
        jax.config.update("jax_cpu_collectives_implementation", _CPU_COLLECTIVES.value)
    if _MULTI.value:
        jax.distributed.initialize(
            _COORDINATOR.value, num_processes=_NUM_PROCESSES.value, process_id=_PROCESS_ID.value
        )
    console.configure()
    try:
        config = experiment.parse(_CONFIG.value)
    except (ValueError, FileNotFoundError) as err:
        raise SystemExit(f"config error: {err}") from None
    if _DRY_RUN.value:
        check_evals(config)
        print(describe(config))
        return
    if not _WORKDIR.value:
        raise app.UsageError("--workdir is required (except with --dry_run)")
    log.info(
        "process %d of %d, %d devices", jax.process_index(), jax.process_count(), jax.device_count()
    )
    try:
        run(config, _WORKDIR.value)
    except (CheckpointWriteError, CheckpointMismatchError) as err:
        raise SystemExit(f"checkpoint error: {err}") from None
    except FileNotFoundError as err:
        from audiolm_pt.data.pipeline import DatasetNotFoundError  # loaded if it was raised

        if isinstance(err, DatasetNotFoundError):
            raise SystemExit(f"data error: {err}") from None
        raise


if __name__ == "__main__":
    flags.mark_flags_as_required(["config"])
    app.run(main)
