"""The spectral core shared by fbank and log-mel, written once against an array namespace.

``xp`` is ``numpy`` (host path: float64 inside, float32 out) or ``jax.numpy`` (device path:
float32, traceable under ``jit``, any leading batch axes). Filterbanks and windows are numpy
constants that become XLA constants when traced.
"""

from types import ModuleType

import numpy as np


def as_signal(wave, xp: ModuleType):
    """The waveform as a float array of the namespace's working precision.

    Integer samples are refused rather than guessed at: a float scale in [-1, 1] is expected, and
    silently treating int16 counts as floats would offset log features by ``2 ln 32768``.
    """
    if np.issubdtype(wave.dtype, np.integer) or wave.dtype == np.bool_:
        raise TypeError(f"expected a float waveform in [-1, 1], got dtype {wave.dtype}")
    if wave.ndim < 1:
        raise ValueError(f"expected a waveform [..., num_samples], got shape {wave.shape}")
    return xp.asarray(wave, dtype=np.float64 if xp is np else xp.float32)


def power_spectrum(frames, n_fft: int, xp: ModuleType, power: float = 2.0):
    """``|rfft(frames, n_fft)| ** power`` over the last axis, ``[..., n_fft // 2 + 1]``."""
    spectrum = xp.fft.rfft(frames, n=n_fft, axis=-1)
    energy = spectrum.real**2 + spectrum.imag**2
    return energy if power == 2.0 else energy ** (power / 2.0)


def project(spectrum, bank: np.ndarray, xp: ModuleType):
    """Spectrum ``[..., bins]`` times filterbank ``[bins, n_mels]``, in full precision on device.

    Accelerators default to reduced-precision matmul passes; mel energies span many decades, so
    the device path asks for the highest precision.
    """
    bank = xp.asarray(bank, dtype=spectrum.dtype)
    if xp is np:
        return spectrum @ bank
    return xp.matmul(spectrum, bank, precision="highest")
