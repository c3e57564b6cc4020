"""The selectable audio front end: Kaldi fbank or librosa-style log-mel, named by
``FRONTENDS`` and described by its config object (``FbankConfig`` or ``LogMelConfig``).

Host code computes a clip's features with ``features_np``. When features are computed on the
accelerator instead, the host only cuts the waveform: ``cut_segment`` returns the samples from
which ``device_features`` (JAX, batched, under ``jit``) computes exactly the frames
``[first, first + count)`` of ``features_np(wave)``, edge handling included (Kaldi's
reflected edges, librosa's centre padding), so the host keeps no more than the crop's
samples. One difference is by construction: with log-mel ``top_db`` the floor sits below
the peak of the frames computed, that is, of the crop, where ``features_np`` uses the clip's.
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from audiolm_pt.audio.fbank import FbankConfig, fbank_jax, fbank_np, num_fbank_frames
from audiolm_pt.audio.log_mel import (
    LogMelConfig,
    clip_top_db,
    log_mel_jax,
    log_mel_np,
    num_log_mel_frames,
)

FrontendConfig = FbankConfig | LogMelConfig
# Each front end's name and the config class that describes it.
CONFIG_TYPES: dict[str, type] = {"fbank": FbankConfig, "log_mel": LogMelConfig}
FRONTENDS = tuple(CONFIG_TYPES)
# Stored waveforms are int16 counts of round(wave * 32768).
INT16_SCALE = 32768.0


def features_np(wave: np.ndarray, cfg: FrontendConfig) -> np.ndarray:
    """Host features float32 ``[..., T, n_mels]`` of a float waveform in [-1, 1]."""
    return fbank_np(wave, cfg) if isinstance(cfg, FbankConfig) else log_mel_np(wave, cfg)


def num_frames(num_samples: int, cfg: FrontendConfig) -> int:
    """Frames ``features_np`` gives for ``num_samples`` samples."""
    if isinstance(cfg, FbankConfig):
        return num_fbank_frames(num_samples, cfg)
    return num_log_mel_frames(num_samples, cfg)


def hop(cfg: FrontendConfig) -> int:
    """Samples between frame starts."""
    return cfg.frame_shift if isinstance(cfg, FbankConfig) else cfg.hop_length


def hop_ms(cfg: FrontendConfig) -> float:
    return 1000.0 * hop(cfg) / cfg.sample_rate


def _frame_length(cfg: FrontendConfig) -> int:
    return cfg.frame_length if isinstance(cfg, FbankConfig) else cfg.n_fft


def segment_length(count: int, cfg: FrontendConfig) -> int:
    """Samples ``segment`` returns for ``count`` frames."""
    return (count - 1) * hop(cfg) + _frame_length(cfg)


def _first_offset(cfg: FrontendConfig) -> int:
    """Where frame 0 starts, in samples of the clip (negative: before it)."""
    if isinstance(cfg, FbankConfig):
        return 0 if cfg.snip_edges else cfg.frame_shift // 2 - cfg.frame_length // 2
    return -(cfg.n_fft // 2) if cfg.center else 0


def _reflects(cfg: FrontendConfig) -> bool:
    """Whether frames past the clip's ends read reflected samples (else zeros)."""
    if isinstance(cfg, FbankConfig):
        return not cfg.snip_edges
    return cfg.center and cfg.pad_mode != "constant"


def _reflected(idx: np.ndarray, n: int, cfg: FrontendConfig) -> np.ndarray:
    """Indices into a clip of ``n`` samples for positions ``idx`` beyond its ends."""
    if isinstance(cfg, FbankConfig):
        # Kaldi reflects about the ends, repeatedly: period 2n, -1 reads sample 0.
        idx = np.mod(idx, 2 * n)
        return np.where(idx >= n, 2 * n - 1 - idx, idx)
    if cfg.pad_mode == "reflect" and n > 1:
        # numpy's reflect (librosa's): -1 reads sample 1, period 2(n - 1).
        idx = np.mod(idx, 2 * (n - 1))
        return np.where(idx >= n, 2 * (n - 1) - idx, idx)
    return np.clip(idx, 0, n - 1)


def cut_segment(wave: np.ndarray, first: int, count: int, cfg: FrontendConfig) -> np.ndarray:
    """The ``segment_length(count)`` samples (same dtype as ``wave``) from which
    ``device_features`` computes frames ``[first, first + count)`` of ``features_np(wave)``;
    positions past the clip's last frame read zero (or, with reflected edges, the reflection)."""
    wave = np.asarray(wave)
    length = segment_length(count, cfg)
    start = first * hop(cfg) + _first_offset(cfg)
    if _reflects(cfg):
        return wave[_reflected(start + np.arange(length), len(wave), cfg)]
    out = np.zeros(length, wave.dtype)
    lo, hi = max(start, 0), min(start + length, len(wave))
    if hi > lo:
        out[lo - start : hi - start] = wave[lo:hi]
    return out


def _raw(cfg: FrontendConfig) -> FrontendConfig:
    """``cfg`` framing a segment from its first sample, without edge handling or top_db."""
    if isinstance(cfg, FbankConfig):
        return dataclasses.replace(cfg, snip_edges=True)
    return dataclasses.replace(cfg, center=False, top_db=None)


def device_features(
    segments: jax.Array, valid_frames: jax.Array, cfg: FrontendConfig
) -> tuple[jax.Array, jax.Array]:
    """Features ``[B, T, n_mels]`` and frame mask ``[B, T]`` of ``cut_segment`` outputs
    ``segments [B, segment_length(T)]`` (int16 counts or float in [-1, 1]), each with
    ``valid_frames [B]`` frames; invalid frames are zero. Traceable under ``jit``."""
    wave = segments.astype(jnp.float32)
    if jnp.issubdtype(segments.dtype, jnp.integer):
        wave = wave / INT16_SCALE
    raw = _raw(cfg)
    features = fbank_jax(wave, raw) if isinstance(raw, FbankConfig) else log_mel_jax(wave, raw)
    mask = jnp.arange(features.shape[-2])[None, :] < valid_frames[:, None]
    if isinstance(cfg, LogMelConfig):
        features = clip_top_db(features, cfg, jnp, mask)
    return jnp.where(mask[..., None], features, 0.0), mask
