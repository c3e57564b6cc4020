"""Rebuilds a trained model from a run directory: its `config.json` (written by
`audiolm_pt.main`), tokenizer and the parameters of any saved step, placed on one local device
whatever mesh wrote them. A randomly initialised model of the same config serves as a baseline.
"""

import dataclasses
import logging
import os
from pathlib import Path

import jax
from flax import nnx

from audiolm_pt import experiment
from audiolm_pt.experiment import CONFIG_NAME, ExperimentConfig
from audiolm_pt.inference.params import load_params
from audiolm_pt.models.config import ModelConfig
from audiolm_pt.models.model import AudioTextModel
from audiolm_pt.text import Tokenizer

log = logging.getLogger(__name__)


@dataclasses.dataclass
class Run:
    workdir: str
    config: ExperimentConfig
    model: AudioTextModel
    tokenizer: Tokenizer | None
    step: int  # -1: random initialisation

    @property
    def model_cfg(self) -> ModelConfig:
        return self.config.model

    @property
    def max_text_len(self) -> int:
        return self.config.data.pipeline.max_text_len


def locate(path: str, step: int | None) -> tuple[Path, Path]:
    """(workdir, step directory) for a workdir, its `checkpoints/` or one step's directory;
    `step` None means the newest saved step."""
    root = Path(path).resolve()
    if not root.exists():
        raise FileNotFoundError(f"{path}: no such run directory")
    if (root / "state").is_dir():
        if step is not None and int(root.name) != step:
            raise ValueError(f"{path} is step {root.name}, not step {step}")
        return root.parents[1], root
    ckpt_dir = root if root.name == "checkpoints" else root / "checkpoints"
    workdir = ckpt_dir.parent
    steps = sorted(int(p.name) for p in ckpt_dir.glob("*") if p.name.isdigit())
    if not steps:
        raise FileNotFoundError(f"{path}: no checkpoint under {ckpt_dir}")
    if step is None:
        step = steps[-1]
    if step not in steps:
        raise FileNotFoundError(f"{path}: no checkpoint for step {step}; saved: {steps}")
    return workdir, ckpt_dir / str(step)


def _single_device(tree):
    device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    return jax.tree.map(lambda _: device, tree)


def load_run(
    path: str, step: int | None = None, *, random_init: bool = False, seed: int = 0
) -> Run:
    """The run at `path` at `step` (newest when None). With `random_init` the parameters are a
    fresh initialisation from `seed` instead of a checkpoint (the untrained baseline)."""
    if random_init:
        workdir, step_dir = Path(path).resolve(), None
        if not (workdir / CONFIG_NAME).is_file():
            workdir = locate(path, step)[0]
    else:
        workdir, step_dir = locate(path, step)
    config = experiment.read(workdir)
    model = AudioTextModel(config.model, rngs=nnx.Rngs(seed))
    loaded_step = -1
    if step_dir is not None:
        params = nnx.state(model, nnx.Param)
        restored = load_params(str(step_dir), "all", params, _single_device(params))
        nnx.update(model, restored)
        loaded_step = int(step_dir.name)
    log.info("loaded %s at step %d", workdir, loaded_step)
    return Run(os.fspath(workdir), config, model, experiment.tokenizer_of(config), loaded_step)
