"""The spectral core shared by fbank and log-mel, written once against an array namespace.

``xp`` is ``numpy`` (host path) or ``jax.numpy`` (device path: traceable under ``jit``, any
leading batch axes). Both work in float32, the precision Kaldi, torchaudio and librosa analyse
in: float64 on the host doubled the cost of the data workers' busiest step for nothing a
float32 feature can keep. Filterbanks and windows are numpy
constants that become XLA constants when traced.
"""

from types import ModuleType

import numpy as np
import scipy.fft
import scipy.sparse


def as_signal(wave, xp: ModuleType):
    """The waveform as a float array of the namespace's working precision.

    Integer samples are refused rather than guessed at: a float scale in [-1, 1] is expected, and
    silently treating int16 counts as floats would offset log features by ``2 ln 32768``.
    """
    if np.issubdtype(wave.dtype, np.integer) or wave.dtype == np.bool_:
        raise TypeError(f"expected a float waveform in [-1, 1], got dtype {wave.dtype}")
    if wave.ndim < 1:
        raise ValueError(f"expected a waveform [..., num_samples], got shape {wave.shape}")
    return xp.asarray(wave, dtype=xp.float32)


def power_spectrum(frames, n_fft: int, xp: ModuleType, power: float = 2.0):
    """``|rfft(frames, n_fft)| ** power`` over the last axis, ``[..., n_fft // 2 + 1]``."""
    # numpy's float32 FFT is not vectorised (4x slower than scipy's here, slower than float64).
    rfft = scipy.fft.rfft if xp is np else xp.fft.rfft
    spectrum = rfft(frames, n=n_fft, axis=-1)
    energy = spectrum.real**2 + spectrum.imag**2
    return energy if power == 2.0 else energy ** (power / 2.0)


def project(spectrum, bank: np.ndarray, xp: ModuleType):
    """Spectrum ``[..., bins]`` times filterbank ``[bins, n_mels]``, in full precision on device.

    Accelerators default to reduced-precision matmul passes; mel energies span many decades, so
    the device path asks for the highest precision. The host multiplies by the bank as a sparse
    matrix (a few nonzeros per row): a dense BLAS product starts threads, which in every data
    worker at once oversubscribed the cores and cost the pipeline half its throughput.
    """
    if xp is np:
        rows = spectrum.reshape(-1, spectrum.shape[-1])
        return (rows @ _sparse(bank)).reshape(*spectrum.shape[:-1], bank.shape[1])
    return xp.matmul(spectrum, xp.asarray(bank, dtype=spectrum.dtype), precision="highest")


# Sparse float32 copies of the (cached, read-only) filterbanks, by the bank's id; each entry
# holds its bank, so an id cannot be reused while its entry lives.
_SPARSE: dict[int, tuple[np.ndarray, scipy.sparse.csr_array]] = {}


def _sparse(bank: np.ndarray) -> scipy.sparse.csr_array:
    """``bank`` as float32 CSR, converted once (a conversion costs 7% of a clip's fbank)."""
    entry = _SPARSE.get(id(bank))
    if entry is None:
        if len(_SPARSE) >= 64:
            _SPARSE.clear()
        entry = _SPARSE[id(bank)] = (bank, scipy.sparse.csr_array(bank.astype(np.float32)))
    return entry[1]
