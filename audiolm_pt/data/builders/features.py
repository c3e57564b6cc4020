"""Audio → feature windows for one clip: decode, validate, cap the length, compute fbank.

Runs in worker processes, so it imports no TensorFlow and returns only plain values.
"""

import dataclasses
from pathlib import Path

import numpy as np

from audiolm_pt.audio import (
    AudioError,
    FbankConfig,
    fbank_np,
    is_silent,
    load_audio,
    num_fbank_frames,
)

# A decoded clip shorter than its manifest promises by more than this is truncated audio.
TRUNCATION_TOLERANCE_S = 0.1


@dataclasses.dataclass(frozen=True)
class FeatureJob:
    """Everything a worker needs for one clip; ``duration`` None means the whole file."""

    audio: Path
    fbank: FbankConfig
    max_seconds: float
    long_clip_policy: str
    store_waveform: bool
    start: float = 0.0
    duration: float | None = None
    expected_seconds: float | None = None


@dataclasses.dataclass(frozen=True)
class Window:
    """One example's audio: ``suffix`` is appended to the clip id (``#w<k>`` or empty)."""

    suffix: str
    fbank: np.ndarray  # float16 [num_frames, num_mel_bins]
    waveform: np.ndarray  # int16 [num_samples], empty unless stored
    seconds: float


@dataclasses.dataclass(frozen=True)
class FeatureResult:
    """Either ``skip`` (a reason) or ``windows``; ``long_clip`` says how a long clip was cut."""

    skip: str | None = None
    windows: tuple[Window, ...] = ()
    long_clip: str | None = None


def extract(job: FeatureJob) -> FeatureResult:
    """Features of one clip, or the reason it was skipped; never raises.

    An exception no check anticipated (a library failing on some odd file) becomes the skip
    reason ``failed_<ExceptionType>``: one clip must not end a long build, and the report
    still shows it.
    """
    try:
        return _extract(job)
    except Exception as error:
        return FeatureResult(skip=f"failed_{type(error).__name__}")


def _extract(job: FeatureJob) -> FeatureResult:
    rate = job.fbank.sample_rate
    try:
        wave = load_audio(job.audio, rate)
    except AudioError as error:
        return FeatureResult(skip=error.reason)
    if job.duration is not None or job.start:
        first = round(job.start * rate)
        last = None if job.duration is None else first + round(job.duration * rate)
        wave = wave[first:last]
    if job.expected_seconds is not None:
        tolerance = max(TRUNCATION_TOLERANCE_S, 0.01 * job.expected_seconds)
        if wave.size / rate < job.expected_seconds - tolerance:
            return FeatureResult(skip="truncated_audio")
    if wave.size == 0:
        return FeatureResult(skip="empty")
    if num_fbank_frames(wave.size, job.fbank) == 0:
        return FeatureResult(skip="too_short")
    if is_silent(wave):
        return FeatureResult(skip="silent")
    pieces, long_clip = cap_length(wave, round(job.max_seconds * rate), job.long_clip_policy)
    windows = tuple(_window(suffix, piece, job) for suffix, piece in pieces)
    return FeatureResult(windows=windows, long_clip=long_clip)


def cap_length(
    wave: np.ndarray, max_samples: int, policy: str
) -> tuple[list[tuple[str, np.ndarray]], str | None]:
    """Cuts a clip longer than ``max_samples``: ``truncate`` keeps the first ``max_samples``;
    ``window`` keeps ceil(n / max) windows of exactly ``max_samples``, the last one aligned
    to the end of the clip (overlapping its neighbour) so that no window is a short tail.
    Returns [(id suffix, samples)] and the long-clip note (None when nothing was cut)."""
    if wave.size <= max_samples:
        return [("", wave)], None
    if policy == "truncate":
        return [("", wave[:max_samples])], "long_clip_truncated"
    count = -(-wave.size // max_samples)
    starts = [min(k * max_samples, wave.size - max_samples) for k in range(count)]
    return [(f"#w{k}", wave[s : s + max_samples]) for k, s in enumerate(starts)], (
        "long_clip_windowed"
    )


def _window(suffix: str, wave: np.ndarray, job: FeatureJob) -> Window:
    if job.store_waveform:
        waveform = np.clip(np.round(wave * 32768.0), -32768, 32767).astype(np.int16)
    else:
        waveform = np.zeros((0,), np.int16)
    return Window(
        suffix=suffix,
        fbank=fbank_np(wave, job.fbank).astype(np.float16),
        waveform=waveform,
        seconds=wave.size / job.fbank.sample_rate,
    )
