"""Decoding audio files or bytes into mono float32 waveforms at a requested sample rate.

Failures raise :class:`AudioError` with a short ``reason`` slug that dataset builders count in
their bad-input reports. Silence and length are policy, not errors: :func:`is_silent` helps.
"""

import io
import os
import wave

import numpy as np
import soundfile as sf
import soxr

REASONS = ("missing_file", "undecodable", "empty", "non_finite", "truncated_audio")


class AudioError(Exception):
    """An input that cannot become a waveform; ``reason`` is one of ``REASONS``."""

    def __init__(self, reason: str, source: str, detail: str):
        super().__init__(f"{source}: {reason}: {detail}")
        self.reason = reason
        self.source = source


def _describe(source: str | os.PathLike | bytes) -> str:
    if isinstance(source, bytes | bytearray | memoryview):
        return f"<{len(source)} bytes>"
    return os.fspath(source)


def load_audio(source: str | os.PathLike | bytes, sample_rate: int) -> np.ndarray:
    """Decodes WAV/FLAC/OGG/MP3 (anything libsndfile reads) to mono float32 ``[n]``.

    Channels are averaged; audio is resampled with soxr's high-quality filter when its rate
    differs from ``sample_rate``. Raises :class:`AudioError` (reason ``missing_file``,
    ``undecodable``, ``empty`` for zero samples or a zero-byte input, ``non_finite`` for NaN or
    inf samples, ``truncated_audio`` for a PCM WAV holding fewer samples than its header
    declares: libsndfile reads such a file's partial audio without a word).
    """
    if not isinstance(sample_rate, int | np.integer) or sample_rate <= 0:
        raise ValueError(f"sample_rate must be a positive int, got {sample_rate!r}")
    name = _describe(source)
    if isinstance(source, bytes | bytearray | memoryview):
        size, handle = len(source), io.BytesIO(source)
    else:
        if not os.path.isfile(source):
            raise AudioError("missing_file", name, "no such file")
        size, handle = os.path.getsize(source), source
    if size == 0:
        raise AudioError("empty", name, "zero bytes")
    try:
        data, rate = sf.read(handle, dtype="float32", always_2d=True)
    except (sf.SoundFileError, RuntimeError) as err:
        raise AudioError("undecodable", name, str(err)) from err
    if data.shape[0] == 0:
        raise AudioError("empty", name, "zero samples")
    declared = _declared_wav_frames(source)
    if declared is not None and data.shape[0] < declared:
        raise AudioError(
            "truncated_audio", name, f"{data.shape[0]} of the {declared} frames its header declares"
        )
    if not np.isfinite(data).all():
        raise AudioError("non_finite", name, "NaN or infinite samples")
    wave = data.mean(axis=1, dtype=np.float32)
    if rate != sample_rate:
        wave = soxr.resample(wave, rate, sample_rate, quality="HQ")
    return np.ascontiguousarray(wave, dtype=np.float32)


def _declared_wav_frames(source: str | os.PathLike | bytes) -> int | None:
    """The frame count a PCM WAV header declares (None for other formats, and for the
    placeholder sizes streaming writers leave)."""
    if isinstance(source, bytes | bytearray | memoryview):
        handle = io.BytesIO(source)
    else:
        handle = os.fspath(source)
    try:
        with wave.open(handle) as w:
            frames, width = w.getnframes(), w.getsampwidth() * w.getnchannels()
    except (wave.Error, EOFError, OSError):
        return None
    return None if frames * width in (0, 0xFFFFFFFF) else frames


def is_silent(wave: np.ndarray, threshold_db: float = -60.0) -> bool:
    """True when the RMS level is below ``threshold_db`` dB re full scale (1.0); empty is silent."""
    if wave.size == 0:
        return True
    rms = float(np.sqrt(np.mean(np.square(wave, dtype=np.float64))))
    return rms <= 10.0 ** (threshold_db / 20.0)
