"""Speech clips: espeak-ng voices, speaking-rate and pitch draws, and synthesis to a waveform."""

import io
import subprocess

import numpy as np
import soundfile as sf
import soxr

from audiolm_pt.data.demo_corpus import sentences
from audiolm_pt.data.demo_corpus.errors import ClipError

ESPEAK = "espeak-ng"

# espeak-ng variant -> (gender, how a listener would describe it, the quality in a word).
VOICES = {
    "m1": ("male", "an adult male voice", "adult"),
    "m2": ("male", "a plain male voice", "plain"),
    "m3": ("male", "a deep male voice", "deep"),
    "m7": ("male", "a bright male voice", "bright"),
    "croak": ("male", "a croaky, rough male voice", "croaky"),
    "klatt": ("male", "a buzzy, robotic male voice", "robotic"),
    "f1": ("female", "a calm female voice", "calm"),
    "f2": ("female", "a clear female voice", "clear"),
    "f3": ("female", "a soft female voice", "soft"),
    "f4": ("female", "a light female voice", "light"),
    "whisperf": ("female", "a whispering female voice", "whispering"),
    "grandma": ("female", "an elderly female voice", "elderly"),
}

# Words per minute; espeak-ng's default is 175.
RATE_RANGE = (110, 240)
PITCH_RANGE = (15, 85)


def speed_bucket(rate: int) -> str:
    return "slow" if rate < 145 else ("fast" if rate > 200 else "normal")


def pitch_bucket(pitch: int) -> str:
    return "low" if pitch < 38 else ("high" if pitch > 62 else "medium")


def draw_speech(rng: np.random.Generator, split: str, fractions: tuple) -> dict:
    """Draws what a speech clip says and how: language, sentence, voice, rate and pitch."""
    lang = sentences.LANGUAGES[rng.integers(len(sentences.LANGUAGES))]
    pool = sentences.sentence_pool(lang, split, fractions)
    sentence_id = pool[rng.integers(len(pool))]
    text, gloss = sentences.sentence(sentence_id)
    voice = sorted(VOICES)[rng.integers(len(VOICES))]
    rate = int(rng.integers(RATE_RANGE[0], RATE_RANGE[1] + 1))
    pitch = int(rng.integers(PITCH_RANGE[0], PITCH_RANGE[1] + 1))
    return {
        "lang": lang,
        "language": sentences.GRAMMARS[lang]["name"],
        "sentence_id": sentence_id,
        "text": text,
        "gloss": gloss,
        "voice": voice,
        "gender": VOICES[voice][0],
        "voice_description": VOICES[voice][1],
        "voice_quality": VOICES[voice][2],
        "rate": rate,
        "speed": speed_bucket(rate),
        "pitch": pitch,
        "pitch_level": pitch_bucket(pitch),
    }


def synthesize(spec: dict, sample_rate: int) -> np.ndarray:
    """Speaks ``spec['text']`` with espeak-ng; float32 mono at ``sample_rate``."""
    voice = f"{sentences.GRAMMARS[spec['lang']]['espeak']}+{spec['voice']}"
    command = [
        ESPEAK,
        "-v",
        voice,
        "-s",
        str(spec["rate"]),
        "-p",
        str(spec["pitch"]),
        "--stdout",
        spec["text"],
    ]
    try:
        result = subprocess.run(command, capture_output=True, timeout=60, check=True)
        audio, rate = sf.read(io.BytesIO(result.stdout), dtype="float32")
    except (OSError, subprocess.SubprocessError, sf.LibsndfileError) as error:
        raise ClipError("espeak_failed", str(error)) from error
    if audio.ndim > 1:
        audio = audio.mean(axis=1)
    return soxr.resample(audio, rate, sample_rate).astype(np.float32)
