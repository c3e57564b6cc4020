"""Reading parameters out of a training checkpoint, onto whatever mesh or device the reader
has: the trainer's `checkpoint.init_from`, evaluators and `audiolm_pt.load` share it. Only
Orbax; nothing of the trainer.

Before restoring, a step's saved tree is compared with what the reader expects: a checkpoint
whose metadata cannot be read, or whose data does not restore, is corrupt
(`CheckpointCorruptError`, and readers of "the newest step" fall back to an older one); one
that reads but holds other parameters than the config builds is a `CheckpointMismatchError`,
never papered over by falling back."""

import functools
import logging
import sys
from collections.abc import Callable, Sequence
from typing import Any

import jax
import orbax.checkpoint as ocp
from etils import epath

log = logging.getLogger(__name__)
# The parameter sub-trees `init_from` copies in "encoder" mode.
ENCODER_KEYS = ("audio_encoder",)
_SHOWN = 3  # keys named per kind of mismatch
_RESHAPED = "of another shape"


class CheckpointCorruptError(RuntimeError):
    """A saved step whose metadata or data cannot be read."""


class CheckpointMismatchError(ValueError):
    """A readable saved step that holds other arrays than the reader expects."""


def restore_target(abstract: Any, shardings: Any) -> Any:
    """ShapeDtypeStructs carrying the current mesh's shardings: what Orbax restores into."""
    return jax.tree.map(
        lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), abstract, shardings
    )


def step_dirs(path: str) -> list[epath.Path]:
    """Step directories (holding `state/`), newest first: `path` itself when it is one, else
    every numbered directory of the checkpoint directory `path`."""
    root = epath.Path(path)
    if (root / "state").exists():
        return [root]
    steps = [int(p.name) for p in root.iterdir() if p.name.isdigit()] if root.exists() else []
    if not steps:
        raise FileNotFoundError(f"{path}: no checkpoint there")
    return [root / str(step) for step in sorted(steps, reverse=True)]


def _drop_late_callbacks(unraisable: Any, fallback: Callable[[Any], None]) -> None:
    if not (
        isinstance(unraisable.exc_value, RuntimeError)
        and str(unraisable.exc_value) == "Event loop is closed"
    ):
        fallback(unraisable)


def quiet_late_callbacks() -> None:
    """After a failed read, TensorStore reads still in flight complete into the event loop
    Orbax has closed, and each prints an 'Event loop is closed' traceback (dozens per step):
    noise that hides the one-line report. Once a checkpoint has been read, those are dropped."""
    if getattr(sys.unraisablehook, "func", None) is not _drop_late_callbacks:
        sys.unraisablehook = functools.partial(_drop_late_callbacks, fallback=sys.unraisablehook)


def one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return f"{type(err).__name__}: {text[:300]}"


def saved_shapes(where: epath.Path) -> dict[tuple[str, ...], tuple[int, ...]]:
    """{path in the saved tree: shape} of a step's `state`, from its metadata alone."""
    quiet_late_callbacks()
    try:
        with ocp.PyTreeCheckpointer() as ckptr:
            tree = ckptr.metadata(where / "state").item_metadata
    except Exception as err:  # whatever Orbax or TensorStore raise, the step is unreadable
        message = f"{where} does not restore (unreadable metadata: {one_line(err)})"
        raise CheckpointCorruptError(message) from err
    if tree is None:
        raise CheckpointCorruptError(f"{where} does not restore (no readable state metadata)")
    flat = ocp.tree.to_flat_dict(tree)
    return {key: tuple(meta.shape) for key, meta in flat.items() if hasattr(meta, "shape")}


def check_matches(where: epath.Path, target: Any, *, exact: bool) -> None:
    """Raises `CheckpointMismatchError` naming the keys where the step's saved arrays differ
    from `target` (missing, of another shape, and with `exact` also unexpected)."""
    saved = saved_shapes(where)
    flat = ocp.tree.to_flat_dict(ocp.tree.serialize_tree(target, keep_empty_nodes=True))
    wanted = {key: tuple(x.shape) for key, x in flat.items() if hasattr(x, "shape")}
    kinds = {
        "missing": [k for k in wanted if k not in saved],
        "unexpected": [k for k in saved if k not in wanted] if exact else [],
        _RESHAPED: [k for k in wanted if k in saved and saved[k] != wanted[k]],
    }
    parts = []
    for kind, keys in kinds.items():
        if not keys:
            continue
        shapes = {k: f" (saved {saved[k]}, expected {wanted[k]})" for k in keys if k in saved}
        keys = sorted(keys, key=lambda k: (k[0] != "params", k))  # parameters say most
        shown = [".".join(k) + (shapes[k] if kind == _RESHAPED else "") for k in keys[:_SHOWN]]
        more = f" and {len(keys) - _SHOWN} more" if len(keys) > _SHOWN else ""
        parts.append(f"{len(keys)} {kind}: {', '.join(shown)}{more}")
    if parts:
        raise CheckpointMismatchError(
            f"{where} does not hold what the config builds ({'; '.join(parts)}); was the "
            "config changed since this run saved it?"
        )


def _restore_params(where: epath.Path, target: Any) -> Any:
    check_matches(where, target, exact=False)
    restore_args = ocp.checkpoint_utils.construct_restore_args(target)
    try:
        with ocp.PyTreeCheckpointer() as ckptr:
            restored = ckptr.restore(
                where / "state",
                args=ocp.args.PyTreeRestore(
                    item=target, restore_args=restore_args, partial_restore=True
                ),
            )
    except Exception as err:  # truncated or flipped data: Orbax and TensorStore raise many kinds
        raise CheckpointCorruptError(f"{where} does not restore ({one_line(err)})") from err
    return restored["params"]


def load_params(
    path: str | Sequence[epath.Path], mode: str, abstract_params: Any, param_shardings: Any
) -> tuple[Any, epath.Path]:
    """(parameters, the step directory they came from) out of another run's checkpoint: all of
    them, or only `ENCODER_KEYS`. `path` is a step or checkpoint directory, or step directories
    newest first; a corrupt step is named in a warning and the next one tried, and when none
    restores the error names each."""
    wanted = {k: v for k, v in abstract_params.items() if mode == "all" or k in ENCODER_KEYS}
    shards = {k: param_shardings[k] for k in wanted}
    target = {"params": restore_target(wanted, shards)}
    candidates = step_dirs(path) if isinstance(path, str) else list(path)
    failures = []
    for where in candidates:
        try:
            params = _restore_params(where, target)
        except CheckpointCorruptError as err:
            failures.append(str(err))
            if where != candidates[-1]:
                log.warning("%s; trying the previous step", err)
            continue
        log.info("initialised %s parameters from %s", sorted(wanted), where)
        return params, where
    raise CheckpointCorruptError("; ".join(failures))
