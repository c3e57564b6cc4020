"""Music clips: melodies, chords and arpeggios on General MIDI instruments, rendered by fluidsynth.

A melody id fixes the musical material (key, scale, note sequence, rhythm, chord progression);
the clip then picks instrument, tempo, register and velocity. Many clips are written into one
MIDI file, one after another with silent gaps, each on its own channel and program, rendered by
a single fluidsynth call (loading the soundfont dominates the cost of a call) and cut apart.
"""

import functools
import subprocess
import tempfile
from pathlib import Path

import mido
import numpy as np
import soundfile as sf
import soxr

from audiolm_pt.data.demo_corpus.errors import ClipError
from audiolm_pt.data.demo_corpus.general_midi import FAMILIES, INSTRUMENTS
from audiolm_pt.data.demo_corpus.splits import melody_id

FLUIDSYNTH = "fluidsynth"
SOUNDFONT = "/usr/share/sounds/sf2/FluidR3_GM.sf2"
RENDER_RATE = 44100
# fluidsynth output gain: loud chords peak near full scale, soft notes stay audibly soft.
RENDER_GAIN = 1.0

SCALES = {
    "major": (0, 2, 4, 5, 7, 9, 11),
    "minor": (0, 2, 3, 5, 7, 8, 10),
    "dorian": (0, 2, 3, 5, 7, 9, 10),
    "pentatonic": (0, 2, 4, 7, 9),
}
KEY_NAMES = ("C", "C sharp", "D", "E flat", "E", "F", "F sharp", "G", "A flat", "A", "B flat", "B")
PATTERNS = ("melody", "chords", "arpeggio")
REGISTERS = {"low": 43, "middle": 55, "high": 67}
TEMPO_RANGE = (60, 180)
VELOCITY_RANGE = (35, 120)
TAIL_SECONDS = 0.8
GAP_SECONDS = 2.0
TICKS_PER_SECOND = 960  # ticks_per_beat 480 at the default MIDI tempo of 120 beats per minute
MAX_MUSIC_SECONDS = 9.0
# Notes of a register lie within these offsets from its base (see ``_pitch``).
REGISTER_SPAN = (-6, 26)
PROBE_THRESHOLD = 1e-3


def tempo_bucket(bpm: int) -> str:
    return "slow" if bpm < 90 else ("fast" if bpm > 130 else "medium")


def loudness_bucket(velocity: int) -> str:
    return "soft" if velocity < 65 else ("loud" if velocity > 95 else "moderate")


def material(melody: int) -> dict:
    """The musical material of a melody id: key, scale, 4 bars of notes and 4 chords."""
    rng = np.random.default_rng([melody, 7])
    scale_name = sorted(SCALES)[rng.integers(len(SCALES))]
    n_degrees = len(SCALES[scale_name])
    degree, notes = 0, []
    for _ in range(4):
        beats_left = 4.0
        while beats_left > 0:
            duration = min(beats_left, float(rng.choice([0.5, 1.0, 1.0, 1.5, 2.0])))
            degree = int(np.clip(degree + rng.choice([-2, -1, -1, 0, 1, 1, 2, 3]), -3, 9))
            notes.append((degree, duration))
            beats_left -= duration
    first = int(rng.choice([0, 5, 3]))
    chords = [first] + [int(rng.integers(n_degrees)) for _ in range(2)] + [int(rng.choice([4, 0]))]
    return {
        "key": int(rng.integers(12)),
        "scale": scale_name,
        "notes": notes,
        "chords": [c % n_degrees for c in chords],
    }


def _pitch(key: int, scale: str, base: int, degree: int) -> int:
    steps = SCALES[scale]
    octave, step = divmod(degree, len(steps))
    pitch = base + key + 12 * octave + steps[step]
    # Fold by octaves into the register's window, which probe_playable checks at both ends.
    low, high = base + REGISTER_SPAN[0], base + REGISTER_SPAN[1]
    return pitch + 12 * (
        -(-(low - pitch) // 12)
        if pitch < low
        else -((pitch - high + 11) // 12)
        if pitch > high
        else 0
    )


def _triad(key: int, scale: str, base: int, root: int) -> list[int]:
    return [_pitch(key, scale, base, root + k) for k in (0, 2, 4)]


def note_events(spec: dict) -> list[tuple[float, float, int]]:
    """(start seconds, duration seconds, MIDI pitch) of every note of a music spec."""
    mat = material(spec["melody"])
    beat = 60.0 / spec["tempo_bpm"]
    key, scale, base = mat["key"], mat["scale"], REGISTERS[spec["register"]]
    events = []
    if spec["pattern"] == "melody":
        t = 0.0
        for degree, beats in mat["notes"]:
            if t >= spec["bars"] * 4:
                break
            events.append((t * beat, 0.9 * beats * beat, _pitch(key, scale, base, degree)))
            t += beats
    for bar in range(spec["bars"]):
        root = mat["chords"][bar % 4]
        if spec["pattern"] == "chords":
            for half in (0, 2):
                for pitch in _triad(key, scale, base, root):
                    events.append(((4 * bar + half) * beat, 1.9 * beat, pitch))
        elif spec["pattern"] == "arpeggio":
            triad = _triad(key, scale, base, root)
            for i, pitch in enumerate([*triad, triad[0] + 12, *triad[::-1], triad[1]]):
                events.append(((4 * bar + 0.5 * i) * beat, 0.45 * beat, pitch))
    return events


def draw_music(
    rng: np.random.Generator, split: str, playable: tuple, min_seconds: float = 0.0
) -> dict:
    """Draws a music clip: material, instrument, pattern, tempo, register and velocity.

    ``playable`` lists the (program, register) pairs to draw from (see ``probe_playable``);
    ``min_seconds`` asks for at least that much music (used under speech in mixtures).
    """
    if not playable:
        raise ClipError("no_playable_instrument")
    program, register = playable[rng.integers(len(playable))]
    tempo = int(rng.integers(TEMPO_RANGE[0], TEMPO_RANGE[1] + 1))
    bar_seconds = 4 * 60.0 / tempo
    max_bars = max(1, min(4, int(MAX_MUSIC_SECONDS // bar_seconds)))
    min_bars = min(max_bars, max(1, int(np.ceil(max(min_seconds, 1.5) / bar_seconds))))
    velocity = int(rng.integers(VELOCITY_RANGE[0], VELOCITY_RANGE[1] + 1))
    mat_id = melody_id(rng, split)
    return {
        "melody": mat_id,
        "key_name": KEY_NAMES[material(mat_id)["key"]],
        "scale": material(mat_id)["scale"],
        "program": program,
        "instrument": INSTRUMENTS[program],
        "instrument_family": FAMILIES[program // 8],
        "pattern": PATTERNS[rng.integers(len(PATTERNS))],
        "tempo_bpm": tempo,
        "tempo": tempo_bucket(tempo),
        "register": register,
        "velocity": velocity,
        "loudness": loudness_bucket(velocity),
        "bars": int(rng.integers(min_bars, max_bars + 1)),
    }


Part = tuple[int, int, list[tuple[float, float, int]]]  # (program, velocity, note events)


def _midi_file(parts: list[Part], tail: float, gap: float) -> tuple[mido.MidiFile, list]:
    """One MIDI file playing the parts one after another; returns it and each (start, end) tick."""
    timed, spans, cursor = [], [], 0
    for index, (program, velocity, notes) in enumerate(parts):
        # Channel 9 is General MIDI percussion; the other 15 carry one part each in turn.
        channel = [c for c in range(16) if c != 9][index % 15]
        timed.append((cursor, 0, mido.Message("program_change", channel=channel, program=program)))
        end = cursor
        for start, duration, pitch in notes:
            on = cursor + round(start * TICKS_PER_SECOND)
            off = on + max(1, round(duration * TICKS_PER_SECOND))
            note_on = mido.Message("note_on", channel=channel, note=pitch, velocity=velocity)
            timed.append((on, 2, note_on))
            timed.append((off, 1, mido.Message("note_off", channel=channel, note=pitch)))
            end = max(end, off)
        end += round(tail * TICKS_PER_SECOND)
        timed.append((end, 0, mido.Message("control_change", channel=channel, control=120)))
        spans.append((cursor, end))
        cursor = end + round(gap * TICKS_PER_SECOND)
    track = mido.MidiTrack()
    previous = 0
    for tick, _, message in sorted(timed, key=lambda item: (item[0], item[1])):
        track.append(message.copy(time=tick - previous))
        previous = tick
    track.append(mido.MetaMessage("end_of_track", time=cursor - previous))
    midi = mido.MidiFile(ticks_per_beat=480)
    midi.tracks.append(track)
    return midi, spans


def render_parts(
    parts: list[Part], sample_rate: int, tail: float = TAIL_SECONDS, gap: float = GAP_SECONDS
) -> list[np.ndarray]:
    """Renders parts with one fluidsynth call; float32 mono clips at ``sample_rate``."""
    if not parts:
        return []
    midi, spans = _midi_file(parts, tail, gap)
    with tempfile.TemporaryDirectory() as tmp:
        midi_path, wav_path = Path(tmp, "chunk.mid"), Path(tmp, "chunk.wav")
        midi.save(midi_path)
        command = [FLUIDSYNTH, "-ni", "-q", "-g", str(RENDER_GAIN), "-r", str(RENDER_RATE),
                   "-R", "0", "-C", "0", "-T", "wav", "-O", "float", "-F", str(wav_path),
                   SOUNDFONT, str(midi_path)]  # fmt: skip
        try:
            subprocess.run(command, capture_output=True, timeout=600, check=True)
            audio, rate = sf.read(wav_path, dtype="float32")
        except (OSError, subprocess.SubprocessError, sf.LibsndfileError) as error:
            raise ClipError("fluidsynth_failed", str(error)) from error
    mono = audio.mean(axis=1) if audio.ndim > 1 else audio
    clips = []
    for start, end in spans:
        first, last = (round(t * rate / TICKS_PER_SECOND) for t in (start, end))
        segment = np.zeros(last - first, np.float32)
        piece = mono[first:last]
        segment[: len(piece)] = piece
        clips.append(soxr.resample(segment, rate, sample_rate).astype(np.float32))
    return clips


def render(specs: list[dict], sample_rate: int) -> list[np.ndarray]:
    """Renders music specs (see ``draw_music``) with one fluidsynth call."""
    return render_parts([(s["program"], s["velocity"], note_events(s)) for s in specs], sample_rate)


@functools.cache
def probe_playable(sample_rate: int = 16000) -> tuple[tuple[int, str], ...]:
    """(program, register) pairs whose lowest and highest notes both sound in the soundfont.

    Some soundfont presets have no samples outside a key range (FluidR3's tuba is silent high
    up), so music clips draw only from pairs that were heard here. Raises ClipError when
    fluidsynth fails.
    """
    keys = [(program, register) for program in range(128) for register in REGISTERS]
    parts = [
        (program, 100, [(0.0, 0.1, REGISTERS[register] + offset)])
        for program, register in keys
        for offset in REGISTER_SPAN
    ]
    clips = render_parts(parts, sample_rate, tail=0.05, gap=0.1)
    heard = [float(np.max(np.abs(clip))) > PROBE_THRESHOLD for clip in clips]
    n = len(REGISTER_SPAN)
    return tuple(key for i, key in enumerate(keys) if all(heard[n * i : n * (i + 1)]))
