"""Audio → feature windows for one clip: decode, validate, cap the length, compute the
front end's features and/or encode the waveform.

Runs in worker processes, so it imports no TensorFlow and returns only plain values.
"""

import dataclasses
import io
from pathlib import Path

import numpy as np
import soundfile

from audiolm_pt.audio import AudioError, FrontendConfig, is_silent, load_audio
from audiolm_pt.audio.frontend import INT16_SCALE, features_np, num_frames

# A decoded clip shorter than its manifest promises by more than this is truncated audio.
TRUNCATION_TOLERANCE_S = 0.1


@dataclasses.dataclass(frozen=True)
class FeatureJob:
    """Everything a worker needs for one clip; ``duration`` None means the whole file."""

    audio: Path
    frontend: FrontendConfig
    max_seconds: float
    long_clip_policy: str
    store_waveform: bool
    store_features: bool = True
    start: float = 0.0
    duration: float | None = None
    expected_seconds: float | None = None


@dataclasses.dataclass(frozen=True)
class Window:
    """One example's audio: ``suffix`` is appended to the clip id (``#w<k>`` or empty)."""

    suffix: str
    features: np.ndarray  # float16 [num_frames, n_mels]; no frames unless stored
    num_frames: int  # the front end's frame count of the window
    waveform: bytes  # FLAC of the int16 samples, empty unless stored
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
    rate = job.frontend.sample_rate
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
    if num_frames(wave.size, job.frontend) == 0:
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
    cfg = job.frontend
    if job.store_features:
        features = features_np(wave, cfg).astype(np.float16)
    else:
        features = np.zeros((0, cfg.n_mels), np.float16)
    return Window(
        suffix=suffix,
        features=features,
        num_frames=num_frames(wave.size, cfg),
        waveform=encode_flac(wave, cfg.sample_rate) if job.store_waveform else b"",
        seconds=wave.size / cfg.sample_rate,
    )


def encode_flac(wave: np.ndarray, sample_rate: int) -> bytes:
    """The waveform as 16-bit FLAC (lossless for its int16 counts round(wave * 32768))."""
    counts = np.clip(np.round(wave * INT16_SCALE), -32768, 32767).astype(np.int16)
    buffer = io.BytesIO()
    soundfile.write(buffer, counts, sample_rate, format="FLAC", subtype="PCM_16")
    return buffer.getvalue()
