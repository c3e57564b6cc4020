"""Sound-event clips from the sonic-pi samples: split pools, loading and augmentation.

Augmentation: gain, pitch/speed change by resampling, repetition patterns for short hits, and a
quiet background drawn from the same split's ambience samples or from coloured noise.
"""

import functools
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from audiolm_pt.data.demo_corpus.errors import ClipError
from audiolm_pt.data.demo_corpus.sample_descriptions import (
    CATEGORY_NAMES,
    DESCRIPTIONS,
    category_of,
)
from audiolm_pt.data.demo_corpus.splits import partition_by_category

SAMPLES_DIR = "/usr/share/sonic-pi/samples"
# Beds that can sit under a foreground sound; every other sample is a foreground event.
AMBIENCE_SAMPLES = frozenset(
    name for name in DESCRIPTIONS if category_of(name) == "ambi" or name == "vinyl_hiss"
)
NOISES = {"white": 0.0, "pink": 1.0, "brown": 2.0}
SHORT_SECONDS = 1.5


@functools.cache
def sample_splits() -> dict[str, str]:
    """Split of every described sample that is installed (held out per category)."""
    installed = sorted(p.stem for p in Path(SAMPLES_DIR).glob("*.flac") if p.stem in DESCRIPTIONS)
    return partition_by_category(installed, category_of)


def pool(split: str, ambience: bool) -> list[str]:
    """The split's ambience samples (``ambience=True``) or its foreground event samples."""
    return [
        name
        for name, s in sample_splits().items()
        if s == split and (name in AMBIENCE_SAMPLES) == ambience
    ]


@functools.cache
def _load(name: str) -> tuple[np.ndarray, int]:
    path = Path(SAMPLES_DIR, name + ".flac")
    try:
        audio, rate = sf.read(path, dtype="float32", always_2d=True)
    except (OSError, sf.LibsndfileError) as error:
        raise ClipError("unreadable_sample", f"{name}: {error}") from error
    if len(audio) == 0:
        raise ClipError("empty_sample", name)
    return np.ascontiguousarray(audio.mean(axis=1)), rate


def load(name: str, sample_rate: int, speed: float = 1.0) -> np.ndarray:
    """A sample as float32 mono at ``sample_rate``, played ``speed`` times faster (and higher)."""
    audio, rate = _load(name)
    return soxr.resample(audio, rate * speed, sample_rate).astype(np.float32)


def noise(rng: np.random.Generator, colour: str, num_samples: int) -> np.ndarray:
    """Unit-RMS noise whose power falls as 1/f**exponent (white 0, pink 1, brown 2)."""
    spectrum = rng.standard_normal(num_samples // 2 + 1) + 1j * rng.standard_normal(
        num_samples // 2 + 1
    )
    freqs = np.maximum(np.arange(len(spectrum)), 1.0)
    signal = np.fft.irfft(spectrum / freqs ** (NOISES[colour] / 2), n=num_samples)
    return (signal / (np.sqrt(np.mean(signal**2)) + 1e-12)).astype(np.float32)


def fit(audio: np.ndarray, num_samples: int) -> np.ndarray:
    """Loops or cuts audio to exactly ``num_samples``."""
    reps = -(-num_samples // max(1, len(audio)))
    return np.tile(audio, reps)[:num_samples]


def draw_event(rng: np.random.Generator, split: str, sample_rate: int) -> dict:
    """Draws a foreground event: sample, speed, repetition pattern and clip duration."""
    names = pool(split, ambience=False)
    if not names:
        raise ClipError("no_samples_in_split", split)
    name = names[rng.integers(len(names))]
    speed = float(rng.choice([1.0, 1.0, rng.uniform(0.75, 0.95), rng.uniform(1.05, 1.35)]))
    audio = load(name, sample_rate, speed)
    seconds = len(audio) / sample_rate
    if seconds < SHORT_SECONDS:
        pattern = str(rng.choice(["steady", "irregular", "single"]))
        duration = float(rng.uniform(2.0, 6.0))
    else:
        pattern = "once"
        duration = float(np.clip(seconds + rng.uniform(0.3, 1.5), 2.0, 10.0))
    spec = {
        "sample": name,
        "event_category": category_of(name),
        "category_name": CATEGORY_NAMES[category_of(name)],
        "description": DESCRIPTIONS[name],
        "speed": speed,
        "pattern": pattern,
        "duration": duration,
    }
    spec["onsets"] = _onsets(rng, spec, seconds)
    spec["repetitions"] = len(spec["onsets"])
    return spec


def _onsets(rng: np.random.Generator, spec: dict, seconds: float) -> list[float]:
    start = float(rng.uniform(0.1, 0.6))
    end = spec["duration"] - seconds
    if spec["pattern"] in ("once", "single"):
        return [min(start, max(0.0, end))]
    if spec["pattern"] == "steady":
        step = max(seconds, 0.2) + float(rng.uniform(0.05, 0.6))
        return [float(t) for t in np.arange(start, max(start, end) + 1e-9, step)]
    onsets, t = [], start
    while t <= max(start, end):
        onsets.append(t)
        t += max(seconds, 0.15) + float(rng.uniform(0.05, 0.9))
    return onsets


def render_event(spec: dict, sample_rate: int) -> np.ndarray:
    """Places the event's repetitions on a silent track of the spec's duration."""
    audio = load(spec["sample"], sample_rate, spec["speed"])
    track = np.zeros(round(spec["duration"] * sample_rate), np.float32)
    for onset in spec["onsets"]:
        first = round(onset * sample_rate)
        piece = audio[: max(0, len(track) - first)]
        track[first : first + len(piece)] += piece
    return track


def draw_background(rng: np.random.Generator, split: str) -> dict:
    """A background bed: one of the split's ambience samples, or coloured noise."""
    names = pool(split, ambience=True)
    if names and rng.random() < 0.6:
        name = names[rng.integers(len(names))]
        return {"kind": "sample", "sample": name, "description": DESCRIPTIONS[name]}
    colour = sorted(NOISES)[rng.integers(len(NOISES))]
    return {
        "kind": "noise",
        "colour": colour,
        "description": f"faint {colour} noise",
        "seed": int(rng.integers(2**31)),
    }


def render_background(spec: dict, num_samples: int, sample_rate: int) -> np.ndarray:
    """The background bed at unit RMS, looped or cut to ``num_samples``."""
    if spec["kind"] == "noise":
        return noise(np.random.default_rng(spec["seed"]), spec["colour"], num_samples)
    bed = fit(load(spec["sample"], sample_rate), num_samples)
    return bed / (np.sqrt(np.mean(bed**2)) + 1e-12)
