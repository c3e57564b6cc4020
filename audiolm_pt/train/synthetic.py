"""The synthetic batch iterator, for trainer tests and runs where the data stack is not the
point. Global batch k is `synthetic_batch(..., index=k)` (re-exported from the grain-free
`synthetic_batch` module); process p of P takes its p-th contiguous slice, so any process count
sees the same global batch. The iterator's state is k, so it checkpoints and resumes like the
Grain iterator."""

from typing import Any

import grain
import numpy as np

from audiolm_pt.models.config import ModelConfig
from audiolm_pt.train.synthetic_batch import synthetic_batch

__all__ = ["SyntheticIterator", "synthetic_batch"]


class SyntheticIterator(grain.DatasetIterator):
    """Endless synthetic batches; `get_state`/`set_state` hold the next batch index, and
    `grain.checkpoint` saves it like any Grain iterator."""

    def __init__(
        self,
        cfg: ModelConfig,
        global_batch_size: int,
        num_frames: int,
        num_tokens: int,
        seed: int = 0,
        *,
        process_index: int = 0,
        process_count: int = 1,
    ):
        super().__init__()
        if global_batch_size % process_count:
            raise ValueError(
                f"global_batch_size={global_batch_size} is not divisible by {process_count} "
                "processes"
            )
        self._args = (cfg, global_batch_size, num_frames, num_tokens, seed)
        per_host = global_batch_size // process_count
        self._rows = slice(process_index * per_host, (process_index + 1) * per_host)
        self._next = 0
        self.skipped: dict[str, int] = {}

    def __next__(self) -> dict[str, np.ndarray]:
        batch = synthetic_batch(*self._args, self._next)
        self._next += 1
        return {key: value[self._rows] for key, value in batch.items()}

    def get_state(self) -> dict[str, Any]:
        return {"next_index": self._next}

    def set_state(self, state: dict[str, Any]) -> None:
        self._next = int(state["next_index"])

    def seek(self, global_batch: int) -> None:
        """Global batch `global_batch` next: the state is that count, whatever the process
        count."""
        self._next = global_batch
