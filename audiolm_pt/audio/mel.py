"""Mel scales and the two mel filterbanks: Kaldi's (triangles in mel) and librosa's (in Hz).

Filterbanks are float64 numpy matrices ``[num_fft_bins, n_mels]``, built once per configuration
and shared by the numpy and JAX feature paths (a right-multiplication maps power spectra to mel
energies).
"""

import functools

import numpy as np

MEL_SCALES = ("htk", "slaney")
MEL_NORMS = (None, "slaney")

# Slaney's scale: linear below 1 kHz (200/3 Hz per mel), logarithmic above (6.4x per 27 mels).
_SLANEY_HZ_PER_MEL = 200.0 / 3.0
_SLANEY_BREAK_HZ = 1000.0
_SLANEY_BREAK_MEL = _SLANEY_BREAK_HZ / _SLANEY_HZ_PER_MEL
_SLANEY_LOG_STEP = np.log(6.4) / 27.0


def hz_to_mel(hz: np.ndarray | float, scale: str = "htk") -> np.ndarray:
    """Frequency in Hz to mel on the ``htk`` (2595 log10(1 + f/700)) or ``slaney`` scale."""
    hz = np.asarray(hz, dtype=np.float64)
    if scale == "htk":
        return 2595.0 * np.log10(1.0 + hz / 700.0)
    linear = hz / _SLANEY_HZ_PER_MEL
    logarithmic = _SLANEY_BREAK_MEL + np.log(np.maximum(hz, 1e-10) / _SLANEY_BREAK_HZ) / (
        _SLANEY_LOG_STEP
    )
    return np.where(hz >= _SLANEY_BREAK_HZ, logarithmic, linear)


def mel_to_hz(mel: np.ndarray | float, scale: str = "htk") -> np.ndarray:
    """Inverse of :func:`hz_to_mel`."""
    mel = np.asarray(mel, dtype=np.float64)
    if scale == "htk":
        return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)
    linear = mel * _SLANEY_HZ_PER_MEL
    logarithmic = _SLANEY_BREAK_HZ * np.exp(_SLANEY_LOG_STEP * (mel - _SLANEY_BREAK_MEL))
    return np.where(mel >= _SLANEY_BREAK_MEL, logarithmic, linear)


@functools.lru_cache(maxsize=16)
def mel_filterbank(
    sample_rate: int,
    n_fft: int,
    n_mels: int,
    fmin: float,
    fmax: float,
    scale: str,
    norm: str | None,
) -> np.ndarray:
    """Triangular filters ``[n_fft // 2 + 1, n_mels]`` linear in Hz between mel-spaced edges.

    Edges are ``n_mels + 2`` points evenly spaced in mel from ``fmin`` to ``fmax``; filter ``m``
    rises from edge ``m`` to ``m + 1`` and falls to ``m + 2``. ``norm='slaney'`` scales each filter
    to unit area (``2 / bandwidth``), so a flat spectrum gives equal energy per band.
    """
    fft_hz = np.linspace(0.0, sample_rate / 2.0, n_fft // 2 + 1)
    edges = mel_to_hz(
        np.linspace(hz_to_mel(fmin, scale), hz_to_mel(fmax, scale), n_mels + 2), scale
    )
    lower, center, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (fft_hz[None, :] - lower) / (center - lower)
    falling = (upper - fft_hz[None, :]) / (upper - center)
    weights = np.maximum(0.0, np.minimum(rising, falling))
    if norm == "slaney":
        weights *= 2.0 / (upper - lower)
    bank = np.ascontiguousarray(weights.T)
    bank.setflags(write=False)
    return bank


@functools.lru_cache(maxsize=16)
def kaldi_mel_banks(
    sample_rate: int, padded_length: int, num_bins: int, low_freq: float, high_freq: float
) -> np.ndarray:
    """Kaldi's filterbank ``[padded_length // 2 + 1, num_bins]``, triangles linear in mel.

    ``high_freq <= 0`` is an offset below Nyquist (Kaldi's convention). As in Kaldi, the Nyquist
    bin carries no weight and a bin exactly on a triangle's edge gets zero.
    """
    nyquist = 0.5 * sample_rate
    high = high_freq if high_freq > 0.0 else nyquist + high_freq
    mel_low, mel_high = hz_to_mel(low_freq), hz_to_mel(high)
    delta = (mel_high - mel_low) / (num_bins + 1)
    left = mel_low + delta * np.arange(num_bins)[None, :]
    center, right = left + delta, left + 2.0 * delta
    num_fft_bins = padded_length // 2
    mel = hz_to_mel(np.arange(num_fft_bins) * sample_rate / padded_length)[:, None]
    # Kaldi's scale is 1127 ln(1 + f/700), 0.0005% off HTK's 2595 log10(1 + f/700); the ratios
    # below are invariant to that constant factor, so the weights are Kaldi's exactly.
    rising = (mel - left) / (center - left)
    falling = (right - mel) / (right - center)
    weights = np.where((mel > left) & (mel < right), np.minimum(rising, falling), 0.0)
    bank = np.concatenate([weights, np.zeros((1, num_bins))], axis=0)
    bank.setflags(write=False)
    return bank
