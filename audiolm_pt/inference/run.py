"""Rebuilds a trained model from a run directory: its `config.json` (written by
`audiolm_pt.main`), tokenizer and the parameters of any saved step, placed on one local device
whatever mesh wrote them. A randomly initialised model of the same config serves as a baseline.
"""

import dataclasses
import logging
import os
from pathlib import Path

import jax
from etils import epath
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


def locate(path: str, step: int | None) -> tuple[Path, list[Path]]:
    """(workdir, step directories to try in order) for a workdir, its `checkpoints/` or one
    step's directory; `step` None means the newest saved step, falling back to older ones."""
    root = Path(path).resolve()
    if not root.exists():
        raise FileNotFoundError(f"{path}: no such run directory")
    if (root / "state").is_dir():
        if step is not None and int(root.name) != step:
            raise ValueError(f"{path} is step {root.name}, not step {step}")
        return root.parents[1], [root]
    ckpt_dir = root if root.name == "checkpoints" else root / "checkpoints"
    steps = sorted((int(p.name) for p in ckpt_dir.glob("*") if p.name.isdigit()), reverse=True)
    if not steps:
        raise FileNotFoundError(f"{path}: no checkpoint under {ckpt_dir}")
    if step is not None and step not in steps:
        raise FileNotFoundError(f"{path}: no checkpoint for step {step}; saved: {steps[::-1]}")
    chosen = [step] if step is not None else steps
    return ckpt_dir.parent, [ckpt_dir / str(s) for s in chosen]


def _single_device(tree):
    device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    return jax.tree.map(lambda _: device, tree)


def load_run(
    path: str, step: int | None = None, *, random_init: bool = False, seed: int = 0
) -> Run:
    """The run at `path` at `step` (newest when None: a corrupt newest step is named in a
    warning and the previous one loaded). With `random_init` the parameters are a fresh
    initialisation from `seed` instead of a checkpoint (the untrained baseline). Raises
    `CheckpointCorruptError` or `CheckpointMismatchError` naming the step directory."""
    if random_init:
        workdir, candidates = Path(path).resolve(), []
        if not (workdir / CONFIG_NAME).is_file():
            workdir = locate(path, step)[0]
    else:
        workdir, candidates = locate(path, step)
    config = experiment.read(workdir)
    model = AudioTextModel(config.model, rngs=nnx.Rngs(seed))
    loaded_step = -1
    if candidates:
        params = nnx.state(model, nnx.Param)
        steps = [epath.Path(p) for p in candidates]
        restored, where = load_params(steps, "all", params, _single_device(params))
        nnx.update(model, restored)
        loaded_step = int(where.name)
    log.info("loaded %s at step %d", workdir, loaded_step)
    return Run(os.fspath(workdir), config, model, experiment.tokenizer_of(config), loaded_step)
