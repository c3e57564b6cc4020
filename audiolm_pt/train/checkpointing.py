"""Checkpoints: an async Orbax `CheckpointManager` holding the train state (params, optimizer
state, step, RNG, non-finite counters) and each process's Grain iterator state.

Resume order (`restore_or_init`): the workdir's newest readable checkpoint, else `init_from`
(another run's parameters, all of them or the audio encoder only), else a fresh state. A
checkpoint that fails to restore (truncated, corrupt) is reported, moved aside into
`corrupt/` and the next older one tried; the run then saves that step afresh. A readable
checkpoint of another model or optimizer (a changed config) stops the run with a message
naming the keys. Restores land on the current mesh's shardings, whatever mesh wrote them. A
state with non-finite parameters or optimizer moments is never written.
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
from audiolm_pt.inference.params import (
    CheckpointCorruptError,
    CheckpointMismatchError,
    check_matches,
    load_params,
    one_line,
    restore_target,
)

log = logging.getLogger(__name__)

State = dict[str, Any]
# Failed saves in a row after which a run stops rather than train on without checkpoints.
MAX_FAILED_SAVES = 3
# Where steps that do not restore are moved: out of Orbax's sight, kept for a post-mortem.
CORRUPT_DIR = "corrupt"


@jax.jit
def _all_finite(tree: Any) -> jax.Array:
    leaves = [x for x in jax.tree.leaves(tree) if jnp.issubdtype(x.dtype, jnp.inexact)]
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves]))


class CheckpointWriteError(OSError):
    """The checkpoint directory cannot be created or written."""


def _probe_writable(directory: epath.Path) -> None:
    """Fails at once, with the OS's reason, where a save would otherwise wait for a directory
    that a background thread could not create."""
    probe = directory / f".write_probe.{jax.process_index()}"
    try:
        directory.mkdir(parents=True, exist_ok=True)
        probe.write_text("audiolm_pt")
        probe.unlink()
    except OSError as err:
        message = f"checkpoint directory {directory} is not writable: {err}"
        raise CheckpointWriteError(message) from err


class Checkpointer:
    """Saves and restores (state, iterator) under `directory`; one per training run."""

    def __init__(self, directory: str, cfg: CheckpointConfig):
        self.cfg = cfg
        _probe_writable(epath.Path(directory))
        options = ocp.CheckpointManagerOptions(
            max_to_keep=cfg.keep_last,
            keep_period=cfg.keep_every or None,
            enable_async_checkpointing=cfg.async_save,
            create=True,
            # Created in the caller's thread, a step directory that cannot be made raises in
            # `save` instead of timing out in a background thread minutes later.
            async_options=ocp.AsyncOptions(create_directories_asynchronously=False),
        )
        self._failed_saves = 0
        self._manager = ocp.CheckpointManager(
            epath.Path(directory), options=options, item_names=("state", "data")
        )

    @property
    def directory(self) -> epath.Path:
        return self._manager.directory

    def all_steps(self) -> list[int]:
        return sorted(self._manager.all_steps())

    def save(
        self, step: int, state: State, iterator: grain.DatasetIterator, *, last: bool = False
    ) -> bool:
        """Starts an (async) save of `state` and the iterator position; False, with an error
        logged, when the state is not finite or the save cannot be written (nor the previous
        async one, whose failure surfaces here): the run goes on with its state in memory and
        saves again at its next checkpoint. A `last` save (end of run, preemption) that fails,
        and the `MAX_FAILED_SAVES`-th failure in a row, raise `CheckpointWriteError`."""
        if not bool(_all_finite({"params": state["params"], "opt": state["opt_state"]})):
            log.error("step %d: state has non-finite values; not saving a checkpoint", step)
            return False
        args = ocp.args.Composite(
            state=ocp.args.StandardSave(state), data=grain.checkpoint.CheckpointSave(iterator)
        )
        try:
            saved = self._manager.save(step, args=args, force=True)
        except Exception as err:  # OSError here; an earlier async write's TensorStore errors
            self._failed_saves += 1
            message = f"step {step}: no checkpoint written in {self.directory} ({one_line(err)})"
            if last or self._failed_saves >= MAX_FAILED_SAVES:
                raise CheckpointWriteError(
                    f"{message}; {self._failed_saves} failed save(s) in a row, stopping"
                ) from err
            log.error("%s; training goes on and saves again at the next checkpoint", message)
            return False
        self._failed_saves = 0
        return saved

    def check_resumable(self, abstract: State) -> None:
        """Raises `CheckpointMismatchError` when the newest readable step holds another state
        than `abstract`: called before a run writes anything that describes it."""
        for step in sorted(self._manager.all_steps(), reverse=True):
            try:
                check_matches(self.directory / str(step), abstract, exact=True)
            except CheckpointCorruptError:
                continue
            return

    def restore_latest(
        self, abstract: State, shardings: State, iterator: grain.DatasetIterator
    ) -> State | None:
        """The newest checkpoint that restores, onto `shardings`; the iterator is moved to its
        position. None when no checkpoint restores. A corrupt step is moved aside into
        `corrupt/`, so that the run saves that step afresh when it gets there; a readable step
        holding another state than `abstract` raises `CheckpointMismatchError`."""
        target = restore_target(abstract, shardings)
        for step in sorted(self._manager.all_steps(), reverse=True):
            try:
                check_matches(self.directory / str(step), target, exact=True)
                state_args = ocp.args.Composite(state=ocp.args.StandardRestore(target))
                state = self._manager.restore(step, args=state_args).state
                self._restore_iterator(step, iterator)
            except (CheckpointMismatchError, AttributeError, NameError, TypeError):
                raise  # a changed config, or a bug here: never a reason to move a step aside
            except Exception as err:  # unreadable metadata or data: the step is damaged
                self._move_aside(step, err)
                continue
            log.info("restored checkpoint %s/%d", self.directory, step)
            return state
        return None

    def _move_aside(self, step: int, err: Exception) -> None:
        source = self.directory / str(step)
        aside = self.directory / CORRUPT_DIR / str(step)
        copies = 0
        while aside.exists():
            copies += 1
            aside = self.directory / CORRUPT_DIR / f"{step}.{copies}"
        if jax.process_index() == 0:
            aside.parent.mkdir(parents=True, exist_ok=True)
            source.rename(aside)
        ocp.multihost.sync_global_processes(f"audiolm_pt_move_aside_{step}")
        self._manager.reload()
        if not isinstance(err, CheckpointCorruptError):
            err = CheckpointCorruptError(f"{source} does not restore ({one_line(err)})")
        log.warning("%s; moved it to %s and trying the previous one", err, aside)

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
        """Blocks until the last async save is committed; `CheckpointWriteError` if it fails."""
        try:
            self._manager.wait_until_finished()
        except Exception as err:  # whatever the background write raised
            raise CheckpointWriteError(
                f"the last checkpoint under {self.directory} was not written ({one_line(err)})"
            ) from err

    def close(self) -> None:
        try:
            self.wait()
        finally:
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
    loaded, _ = load_params(cfg.init_from, cfg.init_mode, abstract["params"], shardings["params"])
    params = state["params"]
    for key, value in loaded.items():
        params[key] = value
    return {**state, "params": params}, "init_from"
