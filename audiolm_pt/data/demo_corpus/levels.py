"""Gain, mixing and final clip checks shared by every domain."""

import numpy as np

from audiolm_pt.audio import is_silent
from audiolm_pt.data.demo_corpus.errors import ClipError

MIN_SECONDS, MAX_SECONDS = 2.0, 10.0
PEAK_LIMIT = 0.99
FADE_SECONDS = 0.05


def loudness_of_peak(peak_db: float) -> str:
    return "quiet" if peak_db < -16 else ("loud" if peak_db > -6 else "moderate")


def draw_peak_db(rng: np.random.Generator) -> float:
    return float(rng.uniform(-24.0, -1.0))


def to_peak(audio: np.ndarray, peak_db: float) -> np.ndarray:
    """Scales audio so its absolute peak is ``peak_db`` dB below full scale."""
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    if peak < 1e-9:
        raise ClipError("silent_audio", "nothing to scale")
    return (audio * (10 ** (peak_db / 20) / peak)).astype(np.float32)


def rms(audio: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(audio, dtype=np.float64)))) if audio.size else 0.0


def overlay(
    foreground: np.ndarray, background: np.ndarray, snr_db: float, offset: int = 0
) -> np.ndarray:
    """Adds ``background`` ``snr_db`` dB below the foreground's RMS; foreground starts at offset.

    The result is as long as the longer of the two (the foreground counted from its offset).
    """
    length = max(len(background), offset + len(foreground))
    out = np.zeros(length, np.float32)
    out[: len(background)] = background * (
        rms(foreground) / (rms(background) + 1e-12) / 10 ** (snr_db / 20)
    )
    out[offset : offset + len(foreground)] += foreground
    return out


def pad(audio: np.ndarray, before: int, after: int) -> np.ndarray:
    return np.concatenate([np.zeros(before, np.float32), audio, np.zeros(after, np.float32)])


def finish(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """Fits a clip to 2–10 s, limits its peak and converts it to int16; rejects silence.

    Silence is judged as the dataset builders judge it (``audio.is_silent``), so the corpus
    never holds a clip that a build would skip.
    """
    if not np.all(np.isfinite(audio)):
        raise ClipError("non_finite_audio")
    audio = audio[: int(MAX_SECONDS * sample_rate)].astype(np.float32)
    if len(audio) == int(MAX_SECONDS * sample_rate):
        fade = int(FADE_SECONDS * sample_rate)
        audio[-fade:] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)
    audio = pad(audio, 0, max(0, int(np.ceil(MIN_SECONDS * sample_rate)) - len(audio)))
    peak = float(np.max(np.abs(audio)))
    if peak > PEAK_LIMIT:
        audio *= PEAK_LIMIT / peak
    if is_silent(audio):
        raise ClipError("silent_audio")
    return np.round(audio * 32767).astype(np.int16)
