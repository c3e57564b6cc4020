"""Checkpoints: an async Orbax `CheckpointManager` holding the train state (params, optimizer
state, step, RNG, non-finite counters) and each process's Grain iterator state.

Resume order (`restore_or_init`): the workdir's newest readable checkpoint, else `init_from`
(another run's parameters, all of them or the audio encoder only), else a fresh state. A
checkpoint that fails to restore (truncated, corrupt) is reported and the next older one is
tried. Restores land on the current mesh's shardings, whatever mesh wrote them. A state with
non-finite parameters or optimizer moments is never written.
"""

import logging
from collections.abc import Callable
from typing import Any

import grain
import jax
import jax.numpy as jnp
import orbax.checkpoint as ocp
from etils import epath

from audiolm_pt.experiment_sections import CheckpointConfig
from audiolm_pt.inference.params import load_params, restore_target

log = logging.getLogger(__name__)

State = dict[str, Any]


@jax.jit
def _all_finite(tree: Any) -> jax.Array:
    leaves = [x for x in jax.tree.leaves(tree) if jnp.issubdtype(x.dtype, jnp.inexact)]
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves]))


class Checkpointer:
    """Saves and restores (state, iterator) under `directory`; one per training run."""

    def __init__(self, directory: str, cfg: CheckpointConfig):
        self.cfg = cfg
        options = ocp.CheckpointManagerOptions(
            max_to_keep=cfg.keep_last,
            keep_period=cfg.keep_every or None,
            enable_async_checkpointing=cfg.async_save,
            create=True,
        )
        self._manager = ocp.CheckpointManager(
            epath.Path(directory), options=options, item_names=("state", "data")
        )

    @property
    def directory(self) -> epath.Path:
        return self._manager.directory

    def all_steps(self) -> list[int]:
        return sorted(self._manager.all_steps())

    def save(self, step: int, state: State, iterator: grain.DatasetIterator) -> bool:
        """Starts an (async) save of `state` and the iterator position; False, with an error
        logged, when the state is not finite."""
        if not bool(_all_finite({"params": state["params"], "opt": state["opt_state"]})):
            log.error("step %d: state has non-finite values; not saving a checkpoint", step)
            return False
        args = ocp.args.Composite(
            state=ocp.args.StandardSave(state), data=grain.checkpoint.CheckpointSave(iterator)
        )
        return self._manager.save(step, args=args, force=True)

    def restore_latest(
        self, abstract: State, shardings: State, iterator: grain.DatasetIterator
    ) -> State | None:
        """The newest checkpoint that restores, onto `shardings`; the iterator is moved to its
        position. None when no checkpoint restores."""
        target = restore_target(abstract, shardings)
        for step in sorted(self._manager.all_steps(), reverse=True):
            try:
                state_args = ocp.args.Composite(state=ocp.args.StandardRestore(target))
                state = self._manager.restore(step, args=state_args).state
                self._restore_iterator(step, iterator)
            except Exception as err:  # any failure means: try an older one
                log.warning(
                    "checkpoint %s/%d does not restore (%s: %s); trying the previous one",
                    self.directory,
                    step,
                    type(err).__name__,
                    err,
                )
                continue
            log.info("restored checkpoint %s/%d", self.directory, step)
            return state
        return None

    def _restore_iterator(self, step: int, iterator: grain.DatasetIterator) -> None:
        """Moves `iterator` to the saved position. A checkpoint written by another number of
        processes holds no position for this one: every step consumed one global batch, so
        an iterator that can `seek` moves to global batch `step` (the examples an
        uninterrupted run would see next, when no record was skipped); another starts from
        its beginning, with a warning."""
        index, count = jax.process_index(), jax.process_count()
        data_dir = self.directory / str(step) / "data"
        if not (data_dir / f"process_{index}-of-{count}.json").exists():
            saved = sorted(p.name for p in data_dir.glob("process_*.json"))
            if hasattr(iterator, "seek"):
                iterator.seek(step)
                log.info(
                    "checkpoint %s/%d was written by %s; process %d of %d reads on from "
                    "global batch %d",
                    self.directory,
                    step,
                    saved,
                    index,
                    count,
                    step,
                )
                return
            log.warning(
                "checkpoint %s/%d holds iterator states %s, none for process %d of %d: the "
                "data iterator starts from its beginning",
                self.directory,
                step,
                saved,
                index,
                count,
            )
            return
        args = ocp.args.Composite(data=grain.checkpoint.CheckpointRestore(iterator))
        self._manager.restore(step, args=args)

    def wait(self) -> None:
        """Blocks until the last async save is committed."""
        self._manager.wait_until_finished()

    def close(self) -> None:
        self._manager.wait_until_finished()
        self._manager.close()


def restore_or_init(
    checkpointer: Checkpointer,
    abstract: State,
    shardings: State,
    iterator: grain.DatasetIterator,
    init: Callable[[], State],
) -> tuple[State, str]:
    """(state, where it came from: 'resumed', 'init_from' or 'scratch')."""
    state = checkpointer.restore_latest(abstract, shardings, iterator)
    if state is not None:
        return state, "resumed"
    state = init()
    cfg = checkpointer.cfg
    if not cfg.init_from:
        return state, "scratch"
    loaded = load_params(cfg.init_from, cfg.init_mode, abstract["params"], shardings["params"])
    params = state["params"]
    for key, value in loaded.items():
        params[key] = value
    return {**state, "params": params}, "init_from"
