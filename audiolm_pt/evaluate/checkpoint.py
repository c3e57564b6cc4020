"""Rebuilds a trained model from a run directory: its `config.json` (written by
`audiolm_pt.main`), tokenizer and the parameters of any saved step, placed on one local device
whatever mesh wrote them. A randomly initialised model of the same config serves as a baseline.
"""

import dataclasses
import json
import logging
import os
from pathlib import Path

import jax
import ml_collections
from flax import nnx

from audiolm_pt.models.config import ModelConfig
from audiolm_pt.models.model import AudioTextModel
from audiolm_pt.run_config import CONFIG_NAME, model_config
from audiolm_pt.text import Tokenizer, load_tokenizer
from audiolm_pt.train.checkpointing import load_params

log = logging.getLogger(__name__)
_REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclasses.dataclass
class Run:
    workdir: str
    config: ml_collections.ConfigDict
    model_cfg: ModelConfig
    model: AudioTextModel
    tokenizer: Tokenizer | None
    step: int  # -1: random initialisation

    @property
    def max_text_len(self) -> int:
        return int(self.config.data.pipeline.max_text_len)


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


def read_config(workdir: Path) -> ml_collections.ConfigDict:
    path = workdir / CONFIG_NAME
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: the run has no {CONFIG_NAME} (written by audiolm_pt.main)"
        )
    return ml_collections.ConfigDict(json.loads(path.read_text(encoding="utf-8")))


def tokenizer_of(config: ml_collections.ConfigDict) -> Tokenizer | None:
    name = config.data.pipeline.get("tokenizer", "")
    if not name:
        return None
    # Configs name the shipped tokenizer relative to the repository root.
    for candidate in (Path(name), _REPO_ROOT / name):
        if candidate.exists():
            return load_tokenizer(candidate)
    raise FileNotFoundError(f"data.pipeline.tokenizer={name}: not found")


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
    config = read_config(workdir)
    tokenizer = tokenizer_of(config)
    model_cfg = model_config(config, tokenizer)
    model = AudioTextModel(model_cfg, rngs=nnx.Rngs(seed))
    loaded_step = -1
    if step_dir is not None:
        params = nnx.state(model, nnx.Param)
        restored = load_params(str(step_dir), "all", params, _single_device(params))
        nnx.update(model, restored)
        loaded_step = int(step_dir.name)
    log.info("loaded %s at step %d", workdir, loaded_step)
    return Run(os.fspath(workdir), config, model_cfg, model, tokenizer, loaded_step)
