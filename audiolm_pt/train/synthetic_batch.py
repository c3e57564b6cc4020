"""Synthetic batches with the pipeline's keys and shapes, as plain numpy: no data stack
(Grain, TFDS) is imported, so benchmarks and device-only images can build the train step's
inputs. Batch k depends only on (seed, k)."""

import numpy as np

from audiolm_pt.models.config import ModelConfig
from audiolm_pt.objectives import TEXT_FEATURES


def synthetic_batch(
    cfg: ModelConfig, batch_size: int, num_frames: int, num_tokens: int, seed: int, index: int
) -> dict[str, np.ndarray]:
    """One batch: random log-mels with random valid lengths, random captions, labels, and
    for a locked text tower the pooled caption features that training reads from its cache."""
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
    if cfg.text.locked and cfg.has_text_encoder:
        width = cfg.text.transformer.width
        batch[TEXT_FEATURES] = rng.standard_normal((batch_size, width), np.float32)
    if cfg.heads.num_labels:
        batch["labels"] = (rng.random((batch_size, cfg.heads.num_labels)) < 0.2).astype(np.float32)
    return batch
