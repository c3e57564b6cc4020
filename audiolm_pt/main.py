"""Command-line entry point of training.

    python -m audiolm_pt.main --config=configs/contrastive.py:base --workdir=DIR \
        [--config.optimizer.learning_rate=3e-4 ...] [--multiprocess ...]

Every config field can be overridden from the command line; a key that does not exist fails
at start-up with its name, both as an override (ml_collections) and inside the config file
(each section is read into a dataclass that rejects unknown keys). With `--multiprocess`,
`jax.distributed.initialize` runs before anything touches a device (coordinator flags, or
auto-detection on TPU pods and SLURM); each process reads its share of the global batch and
`jax.make_array_from_process_local_data` assembles the global arrays.
"""

import json
import logging
import os
from collections.abc import Callable
from typing import Any

import jax
import ml_collections
import numpy as np
from absl import app, flags
from ml_collections import config_flags

from audiolm_pt import strict_config
from audiolm_pt.models.config import ModelConfig
from audiolm_pt.objectives import ObjectiveConfig
from audiolm_pt.run_config import CONFIG_NAME, model_config, plain, use_pretrained_tokenizer
from audiolm_pt.train import evaluators, loop, mfu, synthetic
from audiolm_pt.train.build import Trainer, build_from_config
from audiolm_pt.train.checkpointing import CheckpointConfig, Checkpointer
from audiolm_pt.train.metrics import MetricsLogger

_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment config file[:arg].")
_WORKDIR = flags.DEFINE_string("workdir", None, "Checkpoints and metrics go here.")
_MULTI = flags.DEFINE_bool("multiprocess", False, "Call jax.distributed.initialize first.")
_COORDINATOR = flags.DEFINE_string("coordinator_address", None, "host:port of process 0.")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Number of processes.")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "This process's index.")
_CPU_COLLECTIVES = flags.DEFINE_string(
    "cpu_collectives", None, "CPU collectives implementation for multi-process CPU runs (gloo)."
)

log = logging.getLogger(__name__)
SECTIONS = (
    "seed",
    "model",
    "objective",
    "optimizer",
    "sharding",
    "checkpoint",
    "train",
    "data",
    "evals",
)
DATA_INFO_NAME = "data_info.json"
DATA_KEYS = ("source", "tfds_names", "data_dir", "train_split", "eval_split", "pipeline")


def check_sections(config: ml_collections.ConfigDict, model: ModelConfig) -> None:
    """Top-level and `data` keys must be known; text objectives need a tokenizer."""
    for key in sorted(config.to_dict()):
        if key not in SECTIONS:
            raise ValueError(f"unknown config key {key}; known: {list(SECTIONS)}")
    for key in sorted(config.data.to_dict()):
        if key not in DATA_KEYS:
            raise ValueError(f"unknown config key data.{key}; known: {list(DATA_KEYS)}")
    needs_text = model.has_text_encoder or model.has_decoder
    if needs_text and config.data.source == "tfds" and not config.data.pipeline.tokenizer:
        raise ValueError(
            f"model.objective={model.objective!r} needs captions: set data.pipeline.tokenizer"
        )


def make_to_global(trainer: Trainer) -> Callable[[dict[str, np.ndarray]], dict[str, jax.Array]]:
    def to_global(batch: dict[str, np.ndarray]) -> dict[str, jax.Array]:
        return {
            k: jax.make_array_from_process_local_data(trainer.batch_sharding, v)
            for k, v in batch.items()
        }

    return to_global


def make_iterator(config: ml_collections.ConfigDict, model: ModelConfig, split: str) -> Any:
    """This process's batch iterator for `split` ("train" or "eval")."""
    data = config.data
    if data.source == "synthetic":
        return synthetic.SyntheticIterator(
            model,
            data.pipeline.global_batch_size,
            data.pipeline.max_frames,
            data.pipeline.max_text_len,
            seed=config.seed + (split == "eval"),
            process_index=jax.process_index(),
            process_count=jax.process_count(),
        )
    if data.source != "tfds":
        raise ValueError(f"data.source={data.source!r}: expected 'synthetic' or 'tfds'")
    from audiolm_pt.data import pipeline  # the data stack, only when real data is read

    return pipeline.make_iterator(*_tfds_sources(config, split))


def _tfds_sources(config: ml_collections.ConfigDict, split: str) -> tuple[dict[str, Any], Any]:
    """(TFDS sources of `split`, the pipeline config reading them)."""
    from audiolm_pt.data import pipeline

    data = config.data
    pipeline_values = {**plain(data.pipeline), "train": split == "train"}
    cfg = pipeline.PipelineConfig.from_dict(pipeline_values)
    split_name = data.train_split if split == "train" else data.eval_split
    sources = {
        name: pipeline.tfds_source(name, split_name, data.data_dir or None)
        for name in data.tfds_names
    }
    return sources, cfg


def write_data_info(config: ml_collections.ConfigDict, workdir: str) -> None:
    """`workdir/data_info.json`: per training source {"records", "kept", "fraction"}, so a
    run's training-set size is read from the run, not recomputed (TFDS data only)."""
    if config.data.source != "tfds":
        return
    from audiolm_pt.data import pipeline

    info = pipeline.source_sizes(*_tfds_sources(config, "train"))
    with open(os.path.join(workdir, DATA_INFO_NAME), "w", encoding="utf-8") as f:
        json.dump(info, f, indent=2, sort_keys=True)


def load_tokenizer(config: ml_collections.ConfigDict) -> Any | None:
    path = config.data.pipeline.get("tokenizer", "")
    if not path:
        return None
    from audiolm_pt.text import load_tokenizer as load

    return load(path)


# Keys of the `train` section read by the trainer's assembly and by `run`, not by the loop.
NOT_LOOP_KEYS = ("num_microbatches", "text_cache_dir")


def loop_config(config: ml_collections.ConfigDict) -> loop.LoopConfig:
    """The training loop's settings: the `train` section less `NOT_LOOP_KEYS`."""
    values = {k: v for k, v in plain(config.train).items() if k not in NOT_LOOP_KEYS}
    return strict_config.from_dict(loop.LoopConfig, values, "train")


def text_cache_preparer(
    config: ml_collections.ConfigDict, trainer: Trainer, tokenizer: Any, cache_dir: str
) -> Callable[[dict[str, Any]], Callable[[dict], dict]]:
    """`prepare(state)` for the loop: the locked text tower's cache over every caption the
    training stream can draw (TFDS data; other sources fill it as captions arrive)."""
    from audiolm_pt.train import text_cache

    def prepare(state: dict[str, Any]) -> Callable[[dict], dict]:
        captions = []
        if config.data.source == "tfds":
            from audiolm_pt.data import pipeline

            captions = pipeline.caption_texts(*_tfds_sources(config, "train"))
        max_len = config.data.pipeline.max_text_len
        return text_cache.build(trainer, state, tokenizer, captions, max_len, cache_dir)

    return prepare


def run(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
    """Trains according to `config`, writing to `workdir`; returns the final state."""
    use_pretrained_tokenizer(config)
    tokenizer = load_tokenizer(config)
    model = model_config(config, tokenizer)
    if model.text.init_from and model.has_text_encoder:
        log.info(
            "text tower: %s (%s)",
            model.text.init_from,
            "locked" if model.text.locked else "trained",
        )
    elif model.has_text_encoder:
        log.info("text tower: randomly initialised (model.text.init_from is empty)")
    check_sections(config, model)
    objective = strict_config.from_dict(ObjectiveConfig, plain(config.objective), "objective")
    ckpt_cfg = strict_config.from_dict(CheckpointConfig, plain(config.checkpoint), "checkpoint")
    loop_cfg = loop_config(config)
    cache_dir = config.train.get("text_cache_dir", "") or os.path.join(workdir, "text_cache")
    data = config.data
    trainer = build_from_config(config, model, loop_cfg.num_steps)
    to_global = make_to_global(trainer)
    iterator = make_iterator(config, model, "train")
    evals = []
    for name, spec in plain(config.evals).items():
        spec = dict(spec)
        every, num_batches = spec.pop("every_steps"), spec.pop("num_batches", 1)
        eval_iter = make_iterator(config, model, "eval")
        batches = [next(eval_iter) for _ in range(num_batches)]
        eval_iter.close()
        fn = evaluators.make_evaluator(
            name,
            trainer=trainer,
            batches=batches,
            objective=objective,
            to_global=to_global,
            run_config=config,
            workdir=workdir,
            **spec,
        )
        evals.append(loop.ScheduledEval(name, every, fn))
    flops = mfu.train_step_flops(
        model,
        data.pipeline.global_batch_size,
        data.pipeline.max_frames,
        data.pipeline.max_text_len,
    )
    device = jax.devices()[0]
    peak = mfu.peak_flops_per_device(device.device_kind, model.audio.transformer.dtype)
    logger = MetricsLogger(workdir)
    logger.write_hparams({"config": config.to_json()})
    if jax.process_index() == 0:
        # Evaluators and `audiolm_pt.load` rebuild the model and its data from this file.
        with open(os.path.join(workdir, CONFIG_NAME), "w", encoding="utf-8") as f:
            f.write(config.to_json(indent=2))
        write_data_info(config, workdir)
    checkpointer = Checkpointer(os.path.join(workdir, "checkpoints"), ckpt_cfg)
    try:
        return loop.train(
            trainer,
            iterator,
            to_global,
            checkpointer,
            logger,
            loop_cfg,
            checkpoint_every=ckpt_cfg.every_steps,
            global_batch_size=data.pipeline.global_batch_size,
            flops_per_step=flops,
            peak_flops_per_device=peak,
            evals=tuple(evals),
            workdir=workdir,
            prepare=(
                text_cache_preparer(config, trainer, tokenizer, cache_dir)
                if model.text.locked and model.has_text_encoder
                else None
            ),
        )
    finally:
        checkpointer.close()
        logger.close()
        iterator.close()


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    if _CPU_COLLECTIVES.value:
        jax.config.update("jax_cpu_collectives_implementation", _CPU_COLLECTIVES.value)
    if _MULTI.value:
        jax.distributed.initialize(
            _COORDINATOR.value, num_processes=_NUM_PROCESSES.value, process_id=_PROCESS_ID.value
        )
    logging.getLogger().setLevel(logging.INFO)
    log.info(
        "process %d of %d, %d devices", jax.process_index(), jax.process_count(), jax.device_count()
    )
    run(_CONFIG.value, _WORKDIR.value)


if __name__ == "__main__":
    flags.mark_flags_as_required(["config", "workdir"])
    app.run(main)
