"""Reading parameters out of a training checkpoint, onto whatever mesh or device the reader
has: the trainer's `checkpoint.init_from`, evaluators and `audiolm_pt.load` share it. Only
Orbax; nothing of the trainer."""

import logging
from typing import Any

import jax
import orbax.checkpoint as ocp
from etils import epath

log = logging.getLogger(__name__)
# The parameter sub-trees `init_from` copies in "encoder" mode.
ENCODER_KEYS = ("audio_encoder",)


def restore_target(abstract: Any, shardings: Any) -> Any:
    """ShapeDtypeStructs carrying the current mesh's shardings: what Orbax restores into."""
    return jax.tree.map(
        lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), abstract, shardings
    )


def step_dir(path: str) -> epath.Path:
    """A step directory (holding `state/`) from itself or from a checkpoint directory."""
    root = epath.Path(path)
    if (root / "state").exists():
        return root
    steps = [int(p.name) for p in root.iterdir() if p.name.isdigit()] if root.exists() else []
    if not steps:
        raise FileNotFoundError(f"checkpoint.init_from={path}: no checkpoint there")
    return root / str(max(steps))


def load_params(path: str, mode: str, abstract_params: Any, param_shardings: Any) -> Any:
    """Parameters from another run's checkpoint: all of them, or only `ENCODER_KEYS`."""
    wanted = {k: v for k, v in abstract_params.items() if mode == "all" or k in ENCODER_KEYS}
    shards = {k: param_shardings[k] for k in wanted}
    target = {"params": restore_target(wanted, shards)}
    restore_args = ocp.checkpoint_utils.construct_restore_args(target)
    where = step_dir(path)
    with ocp.PyTreeCheckpointer() as ckptr:
        restored = ckptr.restore(
            where / "state",
            args=ocp.args.PyTreeRestore(
                item=target, restore_args=restore_args, partial_restore=True
            ),
        )
    log.info("initialised %s parameters from %s", sorted(wanted), where)
    return restored["params"]
