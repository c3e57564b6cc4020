"""Single-domain clip recipes (speech, music, sound): draw a clip, then finish it.

``draw_*`` makes every random choice of a clip (and synthesizes what needs no shared renderer);
a clip that needs music carries a ``music`` spec that the builder renders with the other music
of its chunk. ``finish_*`` turns the record and rendered music into audio, captions, labels and
provenance. Both use the clip's own generator, so a clip does not depend on its neighbours.
"""

import numpy as np

from audiolm_pt.data.demo_corpus import captions, events, levels, music, speech


def speech_labels(spec: dict) -> dict:
    return {
        "language": spec["language"].lower(),
        "voice": spec["voice"],
        "speed": spec["speed"],
        "gender": spec["gender"],
    }


def music_labels(spec: dict) -> dict:
    return {
        "instrument_family": spec["instrument_family"],
        "instrument": spec["instrument"],
        "tempo": spec["tempo"],
        "pattern": spec["pattern"],
    }


def draw_speech(rng: np.random.Generator, split: str, config: dict) -> dict:
    spec = speech.draw_speech(rng, split, config["split_fractions"])
    rate = config["sample_rate"]
    voice = speech.synthesize(spec, rate)
    peak_db = levels.draw_peak_db(rng)
    audio = levels.pad(
        levels.to_peak(voice, peak_db),
        int(rng.uniform(0.1, 0.6) * rate),
        int(rng.uniform(0.2, 0.8) * rate),
    )
    return {"speech": spec, "audio": audio, "loudness": levels.loudness_of_peak(peak_db)}


def finish_speech(rng: np.random.Generator, record: dict, rendered) -> tuple:
    spec = record["speech"]
    return (
        record["audio"],
        captions.speech_captions(rng, spec, record["loudness"]),
        speech_labels(spec),
        {"sentence": spec["sentence_id"]},
    )


def draw_music(rng: np.random.Generator, split: str, config: dict) -> dict:
    return {"music": music.draw_music(rng, split, config["playable"])}


def finish_music(rng: np.random.Generator, record: dict, rendered) -> tuple:
    spec = record["music"]
    labels = music_labels(spec)
    return (rendered, captions.music_captions(rng, spec), labels, {"melody": f"m{spec['melody']}"})


def draw_sound(rng: np.random.Generator, split: str, config: dict) -> dict:
    rate = config["sample_rate"]
    event = events.draw_event(rng, split, rate)
    background = events.draw_background(rng, split)
    track = events.render_event(event, rate)
    bed = events.render_background(background, len(track), rate)
    peak_db = levels.draw_peak_db(rng)
    mixed = levels.overlay(track, bed, float(rng.uniform(18.0, 35.0)))
    return {
        "event": event,
        "background": background,
        "loudness": levels.loudness_of_peak(peak_db),
        "audio": levels.to_peak(mixed, peak_db),
    }


def finish_sound(rng: np.random.Generator, record: dict, rendered) -> tuple:
    event, background = record["event"], record["background"]
    labels = {"event_category": event["event_category"], "event": event["sample"]}
    samples = [event["sample"]] + ([background["sample"]] if background["kind"] == "sample" else [])
    return (
        record["audio"],
        captions.sound_captions(rng, event, background, record["loudness"]),
        labels,
        {"samples": samples},
    )
