"""The training loop: resume or initialise, step, log, evaluate, checkpoint, stop cleanly.

The host never waits on the device inside the loop: step k's metrics are fetched only after
step k+1 has been dispatched. Step time is the host's time between consecutive dispatches
(which the device sets once the queue is full), data wait the time spent in `next(iterator)`.

SIGTERM (preemption) makes the loop save at the next step boundary and return normally, so
the process exits 0 and a restart resumes from that step. K consecutive non-finite steps
stop the run with `NonFiniteError`; the last checkpoint predates them. A checkpoint that
cannot be written is logged and training goes on to the next one (see `Checkpointer.save`);
the run stops with `CheckpointWriteError` when its last save fails or several fail in a row.
"""

import dataclasses
import logging
import signal
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import jax
import numpy as np
from clu import periodic_actions
from jax.experimental import multihost_utils

from audiolm_pt.experiment_sections import TrainConfig
from audiolm_pt.run_metrics import MetricsLogger
from audiolm_pt.train.build import Trainer
from audiolm_pt.train.checkpointing import Checkpointer, restore_or_init
from audiolm_pt.train.mfu import utilisation
from audiolm_pt.train.progress import Progress

log = logging.getLogger(__name__)
# What the loop calls every N steps: the live state in, scalars out.
Evaluator = Callable[[dict[str, Any]], dict[str, float]]


class NonFiniteError(RuntimeError):
    """Too many consecutive steps had a non-finite loss or gradient."""


@dataclasses.dataclass(frozen=True)
class ScheduledEval:
    name: str
    every_steps: int
    fn: Evaluator


class _Preemption:
    """Notices SIGTERM; with several processes all agree on the step to stop at."""

    def __init__(self):
        self.requested = False
        self._multi = jax.process_count() > 1
        if not self._multi:
            self._previous = signal.signal(signal.SIGTERM, self._on_signal)

    def _on_signal(self, signum, frame):
        log.warning("SIGTERM: saving at the next step boundary, then exiting")
        self.requested = True

    def reached(self, step: int) -> bool:
        if self._multi:
            # jax.distributed's preemption service traps SIGTERM and syncs the step.
            return multihost_utils.reached_preemption_sync_point(step)
        return self.requested

    def restore(self) -> None:
        if not self._multi:
            signal.signal(signal.SIGTERM, self._previous)


def _host_metrics(
    metrics: Mapping[str, Any], timing: Mapping[str, float], extra: Mapping[str, float]
) -> dict[str, float]:
    out = {k: float(v) for k, v in jax.device_get(dict(metrics)).items()}
    out.update(timing)
    out.update(extra)
    return out


def train(
    trainer: Trainer,
    iterator: Iterator,
    to_global: Callable[[dict[str, np.ndarray]], dict[str, jax.Array]],
    checkpointer: Checkpointer,
    logger: MetricsLogger,
    cfg: TrainConfig,
    *,
    checkpoint_every: int,
    global_batch_size: int,
    flops_per_step: float,
    peak_flops_per_device: float | None,
    evals: tuple[ScheduledEval, ...] = (),
    workdir: str = "",
    prepare: Callable[[dict[str, Any]], Callable[[dict], dict]] | None = None,
) -> dict[str, Any]:
    """Trains to `cfg.num_steps` (or until preempted) and returns the final state.

    `prepare(state)`, called once the state is restored or initialised, returns a function
    every host batch goes through before it is placed (e.g. the locked text tower's cache)."""
    state, origin = restore_or_init(
        checkpointer, trainer.abstract, trainer.shardings, iterator, trainer.init
    )
    start = int(state["step"])
    log.info("train state from %s at step %d", origin, start)
    transform = prepare(state) if prepare is not None else (lambda batch: batch)
    hooks = [periodic_actions.ReportProgress(num_train_steps=cfg.num_steps, writer=logger.writer)]
    if cfg.profile_steps and jax.process_index() == 0:
        hooks.append(
            periodic_actions.Profile(
                logdir=workdir,
                num_profile_steps=cfg.profile_steps,
                first_profile=cfg.profile_first,
                every_secs=None,
            )
        )
    preemption = _Preemption()
    progress = Progress(start, cfg.num_steps, enabled=jax.process_index() == 0)
    num_devices = trainer.mesh.devices.size
    pending = None  # (step, device metrics, host timings) of the last dispatched step
    last_dispatch = time.perf_counter()
    last_saved = start

    def flush(pending) -> None:
        step, metrics, timing = pending
        consecutive = int(metrics["consecutive_nonfinite"])
        if step % cfg.log_every == 0 or step == cfg.num_steps or consecutive:
            extra = utilisation(
                flops_per_step, timing["step_time"], num_devices, peak_flops_per_device
            )
            extra["examples_per_sec"] = global_batch_size / timing["step_time"]
            skipped = getattr(iterator, "skipped", {})
            extra.update({f"data_skipped/{k}": float(v) for k, v in skipped.items()})
            host = _host_metrics(metrics, timing, extra)
            logger.write_scalars(step, host)
            progress.report(step, host["loss"], extra["examples_per_sec"], timing["step_time"])
        if consecutive >= cfg.max_consecutive_nonfinite:
            raise NonFiniteError(
                f"step {step}: {consecutive} consecutive steps with a non-finite loss or "
                f"gradient (train.max_consecutive_nonfinite={cfg.max_consecutive_nonfinite}); "
                f"the last checkpoint is step {last_saved}"
            )

    try:
        step = start
        while step < cfg.num_steps:
            before_data = time.perf_counter()
            batch = to_global(transform(next(iterator)))
            data_wait = time.perf_counter() - before_data
            state, metrics = trainer.step(state, batch)
            now = time.perf_counter()
            timing = {"step_time": now - last_dispatch, "data_wait_time": data_wait}
            last_dispatch = now
            step += 1
            if pending is not None:
                flush(pending)
            pending = (step, metrics, timing)
            for hook in hooks:
                hook(step)
            due = [ev for ev in evals if step % ev.every_steps == 0]
            preempted = preemption.reached(step)
            at_checkpoint = bool(checkpoint_every and step % checkpoint_every == 0)
            last = preempted or step == cfg.num_steps
            saving = last or at_checkpoint
            if due or saving:  # the step's own line first, then its evaluations
                flush(pending)
                pending = None
            for ev in due:
                results = ev.fn(state)
                progress.evaluation(step, ev.name, results)
                logger.write_scalars(step, {f"eval/{ev.name}/{k}": v for k, v in results.items()})
            if saving and checkpointer.save(step, state, iterator, last=last):
                last_saved = step
            if preempted:
                log.warning("preempted: saved step %d, stopping", step)
                break
        if pending is not None:
            flush(pending)
    finally:
        checkpointer.wait()
        preemption.restore()
    return state
