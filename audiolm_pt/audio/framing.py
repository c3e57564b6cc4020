"""Slicing a waveform into overlapping frames, and the analysis windows applied to them.

Frames are described by a static integer index matrix ``[num_frames, frame_length]`` built with
numpy from the signal length alone, so the same matrix gathers frames from a numpy array on the
host and from a traced JAX array under ``jit`` (the length is a static shape there).
"""

import functools
from types import ModuleType

import numpy as np

KALDI_WINDOWS = ("povey", "hanning", "hamming", "rectangular")


def num_frames(num_samples: int, frame_length: int, hop: int, snip_edges: bool) -> int:
    """Frame count with Kaldi's two edge conventions.

    ``snip_edges=True`` keeps only frames that lie wholly inside the signal; ``False`` centres
    frame ``m`` on sample ``m * hop + hop / 2`` and keeps ``round(num_samples / hop)`` frames.
    """
    if snip_edges:
        return 0 if num_samples < frame_length else 1 + (num_samples - frame_length) // hop
    return (num_samples + hop // 2) // hop


def frame_indices(frame_length: int, hop: int, count: int) -> np.ndarray:
    """Indices ``[count, frame_length]`` of ``count`` frames starting every ``hop`` samples."""
    return hop * np.arange(count)[:, None] + np.arange(frame_length)[None, :]


@functools.lru_cache(maxsize=64)
def kaldi_frame_indices(
    num_samples: int, frame_length: int, hop: int, snip_edges: bool
) -> np.ndarray:
    """Sample indices ``[num_frames, frame_length]`` of each frame, Kaldi style.

    Without ``snip_edges`` frames overhang the signal ends; Kaldi reflects the overhang about the
    signal's ends (index ``-1`` reads sample ``0``, ``n`` reads ``n - 1``), again and again for
    signals shorter than the overhang, as here.
    """
    count = num_frames(num_samples, frame_length, hop, snip_edges)
    offset = 0 if snip_edges else hop // 2 - frame_length // 2
    idx = offset + frame_indices(frame_length, hop, count)
    if not snip_edges and count:
        # Repeated reflection (what Kaldi loops over for short signals) has period 2n.
        idx = np.mod(idx, 2 * num_samples)
        idx = np.where(idx >= num_samples, 2 * num_samples - 1 - idx, idx)
    idx.setflags(write=False)
    return idx


def kaldi_frames(wave, frame_length: int, hop: int, snip_edges: bool, xp: ModuleType):
    """Frames ``[..., num_frames, frame_length]`` of ``wave [..., n]``, Kaldi style (see
    ``kaldi_frame_indices``); on the host with ``snip_edges`` a strided view, which spares
    building and gathering an index matrix for every new clip length."""
    n = wave.shape[-1]
    if xp is np and snip_edges and n >= frame_length:
        return np.lib.stride_tricks.sliding_window_view(wave, frame_length, axis=-1)[..., ::hop, :]
    return wave[..., kaldi_frame_indices(n, frame_length, hop, snip_edges)]


@functools.lru_cache(maxsize=16)
def kaldi_window(kind: str, length: int) -> np.ndarray:
    """Kaldi's symmetric analysis windows (float64 ``[length]``); ``povey`` is Hann to the 0.85."""
    phase = 2.0 * np.pi * np.arange(length) / (length - 1)
    windows = {
        "hanning": lambda: 0.5 - 0.5 * np.cos(phase),
        "povey": lambda: (0.5 - 0.5 * np.cos(phase)) ** 0.85,
        "hamming": lambda: 0.54 - 0.46 * np.cos(phase),
        "rectangular": lambda: np.ones(length),
    }
    window = windows[kind]()
    window.setflags(write=False)
    return window


@functools.lru_cache(maxsize=16)
def periodic_hann(win_length: int, n_fft: int) -> np.ndarray:
    """Periodic Hann of ``win_length`` zero-padded symmetrically to ``n_fft`` (float64)."""
    window = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(win_length) / win_length)
    left = (n_fft - win_length) // 2
    window = np.pad(window, (left, n_fft - win_length - left))
    window.setflags(write=False)
    return window
