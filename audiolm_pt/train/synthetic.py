"""Synthetic batches with the pipeline's keys and shapes, for benchmarks and trainer tests
where the data stack is not the point. Global batch k depends only on (seed, k); process p of
P takes its p-th contiguous slice, so any process count sees the same global batch. The
iterator's state is k, so it checkpoints and resumes like the Grain iterator."""

from typing import Any

import grain
import numpy as np

from audiolm_pt.models.config import ModelConfig


def synthetic_batch(
    cfg: ModelConfig, batch_size: int, num_frames: int, num_tokens: int, seed: int, index: int
) -> dict[str, np.ndarray]:
    """One batch: random log-mels with random valid lengths, random captions, labels."""
    rng = np.random.default_rng([seed, index])
    n_mels = cfg.audio.n_mels
    frames = rng.integers(num_frames // 2, num_frames + 1, batch_size)
    words = rng.integers(3, num_tokens + 1, batch_size)
    vocab = min(cfg.text.vocab_size, cfg.decoder.vocab_size)
    tokens = rng.integers(1000 if vocab > 2000 else 5, vocab, (batch_size, num_tokens))
    text_mask = np.arange(num_tokens)[None] < words[:, None]
    tokens = np.where(text_mask, tokens, 0).astype(np.int32)
    eos = np.where(np.arange(num_tokens)[None] == words[:, None] - 1, cfg.decoder.eos_id, tokens)
    batch = {
        "features": rng.standard_normal((batch_size, num_frames, n_mels), np.float32),
        "feature_mask": np.arange(num_frames)[None] < frames[:, None],
        "text_tokens": tokens,
        "text_mask": text_mask,
        "decoder_inputs": np.concatenate(
            [np.full((batch_size, 1), cfg.decoder.bos_id, np.int32), tokens[:, :-1]], axis=1
        ),
        "decoder_targets": eos.astype(np.int32),
        "decoder_mask": text_mask,
    }
    if cfg.heads.num_labels:
        batch["labels"] = (rng.random((batch_size, cfg.heads.num_labels)) < 0.2).astype(np.float32)
    return batch


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
