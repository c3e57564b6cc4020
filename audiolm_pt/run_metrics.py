"""Metric output: TensorBoard (through clu's default writer) plus one JSON line per logged step
in `metrics.jsonl`, written by process 0 only (other processes log to the console).
"""

import json
import os
from collections.abc import Mapping
from typing import Any

import jax
import numpy as np
from clu import metric_writers

JSONL_NAME = "metrics.jsonl"


class MetricsLogger:
    """Writes scalar metrics to TensorBoard and `metrics.jsonl` under `workdir`."""

    def __init__(self, workdir: str, *, process_index: int | None = None):
        process_index = jax.process_index() if process_index is None else process_index
        self.is_writer = process_index == 0
        self.writer = metric_writers.create_default_writer(
            workdir, just_logging=not self.is_writer, asynchronous=True
        )
        self._jsonl = None
        if self.is_writer:
            os.makedirs(workdir, exist_ok=True)
            self._jsonl = open(os.path.join(workdir, JSONL_NAME), "a", encoding="utf-8")  # noqa: SIM115

    def write_scalars(self, step: int, scalars: Mapping[str, float]) -> None:
        scalars = {k: float(np.asarray(v)) for k, v in scalars.items()}
        self.writer.write_scalars(step, scalars)
        if self._jsonl is not None:
            self._jsonl.write(json.dumps({"step": step, **scalars}, allow_nan=True) + "\n")
            self._jsonl.flush()

    def write_hparams(self, hparams: Mapping[str, Any]) -> None:
        self.writer.write_hparams(dict(hparams))

    def close(self) -> None:
        self.writer.flush()
        self.writer.close()
        if self._jsonl is not None:
            self._jsonl.close()


def read_jsonl(workdir: str) -> list[dict[str, float]]:
    """Every line of a run's `metrics.jsonl`, in order."""
    with open(os.path.join(workdir, JSONL_NAME), encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]
