"""The console's view of training: one line per log interval with step/total, loss,
examples/s, elapsed time and ETA, and one line per evaluation. Process 0 only; the metric
writers (TensorBoard, metrics.jsonl) keep everything else."""

import sys
import time
from collections.abc import Mapping
from typing import TextIO


def duration(seconds: float) -> str:
    """`seconds` as 1h02m, 3m05s or 42s."""
    seconds = max(round(seconds), 0)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


class Progress:
    """Progress lines for a run from step `start` to `total`. The ETA multiplies the steps left
    by the mean step time since the first reported step, so compilation does not inflate it."""

    def __init__(self, start: int, total: int, *, enabled: bool = True, out: TextIO | None = None):
        self.start, self.total, self.enabled = start, total, enabled
        self.out = out or sys.stdout
        self._began = time.perf_counter()
        self._first: tuple[int, float] | None = None

    def line(
        self, step: int, loss: float, examples_per_sec: float, step_time: float, now: float
    ) -> str:
        """The line at `step`; before a second report the ETA extrapolates `step_time`."""
        if self._first is None:
            self._first = (step, now)
        first_step, first_time = self._first
        if step > first_step:
            step_time = (now - first_time) / (step - first_step)
        eta = duration((self.total - step) * step_time)
        width = len(str(self.total))
        return (
            f"step {step:>{width}}/{self.total} ({100 * step / self.total:3.0f}%)"
            f" | loss {loss:.4f} | {examples_per_sec:.1f} ex/s"
            f" | elapsed {duration(now - self._began)} | ETA {eta}"
        )

    def report(self, step: int, loss: float, examples_per_sec: float, step_time: float) -> None:
        line = self.line(step, loss, examples_per_sec, step_time, time.perf_counter())
        if self.enabled:
            print(line, file=self.out, flush=True)

    def evaluation(self, step: int, name: str, scalars: Mapping[str, float]) -> None:
        if not self.enabled:
            return
        shown = ", ".join(f"{k} {v:.4g}" for k, v in sorted(scalars.items())[:6])
        more = f" (+{len(scalars) - 6} more)" if len(scalars) > 6 else ""
        print(f"  eval {name} at step {step}: {shown}{more}", file=self.out, flush=True)
