"""The device half of the input pipeline when ``feature_source="device"``: front-end features
from the waveform segments the host cut, and SpecAugment, inside the jitted step.

The host then only decodes, crops and batches int16 samples; the STFT, the mel projection and
the masks run on the accelerator, sharded over the batch like the rest of the step.
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp

from audiolm_pt.audio import frontend
from audiolm_pt.data.pipeline_config import PipelineConfig

Batch = dict[str, jax.Array]
Featurize = Callable[[Batch, jax.Array | None], Batch]


def make_featurizer(cfg: PipelineConfig) -> Featurize | None:
    """``featurize(batch, rng)``: a waveform batch (``waveform`` [B, S], ``num_frames`` [B])
    to a feature batch (``features``, ``feature_mask``), with SpecAugment drawn from ``rng``
    (None: evaluation, no masks). Batches that already hold features pass through. None when
    ``cfg`` computes features on the host."""
    if cfg.feature_source != "device":
        return None
    fe = cfg.frontend_config

    def featurize(batch: Batch, rng: jax.Array | None) -> Batch:
        if "waveform" not in batch:
            return batch
        features, mask = frontend.device_features(batch["waveform"], batch["num_frames"], fe)
        if rng is not None:
            masks = (cfg.time_masks, cfg.max_time_mask, cfg.freq_masks, cfg.max_freq_mask)
            features = spec_augment(features, mask, rng, *masks)
        out = {k: v for k, v in batch.items() if k not in ("waveform", "num_frames")}
        return {**out, "features": features, "feature_mask": mask}

    return featurize


def spec_augment(
    features: jax.Array,
    frame_mask: jax.Array,
    rng: jax.Array,
    time_masks: int,
    max_time_mask: int,
    freq_masks: int,
    max_freq_mask: int,
) -> jax.Array:
    """``transforms.spec_augment`` per example of a padded batch [B, T, F]: each mask's width
    is uniform in [0, max width] (at most the clip's valid frames, or F), its start uniform
    where it fits in the valid part, and it is filled with the clip's mean over valid frames."""
    batch, frames, bins = features.shape
    valid = jnp.sum(frame_mask, axis=1)
    weights = frame_mask[..., None].astype(features.dtype)
    fill = jnp.sum(features * weights, axis=(1, 2)) / jnp.maximum(valid * bins, 1)
    time_key, freq_key = jax.random.split(rng)
    hit_t = _bands(time_key, batch, time_masks, max_time_mask, valid, frames)
    hit_f = _bands(freq_key, batch, freq_masks, max_freq_mask, jnp.full((batch,), bins), bins)
    hit = hit_t[:, :, None] | hit_f[:, None, :]
    return jnp.where(hit & frame_mask[..., None], fill[:, None, None], features)


def _bands(
    rng: jax.Array, batch: int, count: int, max_width: int, size: jax.Array, length: int
) -> jax.Array:
    """bool [B, length]: the union of ``count`` random bands per example within ``size``."""
    hit = jnp.zeros((batch, length), bool)
    positions = jnp.arange(length)[None, :]
    for key in jax.random.split(rng, count):
        width_key, start_key = jax.random.split(key)
        widest = jnp.minimum(max_width, size)
        width = jax.random.randint(width_key, (batch,), 0, widest + 1)
        start = jax.random.randint(start_key, (batch,), 0, size - width + 1)
        hit |= (positions >= start[:, None]) & (positions < (start + width)[:, None])
    return hit
