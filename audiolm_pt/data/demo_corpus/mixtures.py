"""Mixture clips: speech over music and a sound event over ambience, with compositional captions.

Both parts of a mixture come from the mixture's own split pools.
"""

import numpy as np

from audiolm_pt.data.demo_corpus import captions, clips, events, levels, music, speech
from audiolm_pt.data.demo_corpus.errors import ClipError

KINDS = ("speech_music", "event_ambience")


def draw_mixture(rng: np.random.Generator, split: str, config: dict) -> dict:
    kind = KINDS[rng.integers(len(KINDS))]
    rate = config["sample_rate"]
    if kind == "speech_music":
        spec = speech.draw_speech(rng, split, config["split_fractions"])
        voice = speech.synthesize(spec, rate)
        offset = float(rng.uniform(0.3, 1.0))
        music_spec = music.draw_music(
            rng, split, config["playable"], min_seconds=offset + len(voice) / rate + 0.3
        )
        return {
            "kind": kind,
            "speech": spec,
            "voice": voice,
            "offset": int(offset * rate),
            "music": music_spec,
            "snr_db": float(rng.uniform(6.0, 15.0)),
            "peak_db": levels.draw_peak_db(rng),
        }
    ambience_pool = events.pool(split, ambience=True)
    if not ambience_pool:
        raise ClipError("no_ambience_in_split", split)
    event = events.draw_event(rng, split, rate)
    name = ambience_pool[rng.integers(len(ambience_pool))]
    ambience = {"kind": "sample", "sample": name, "description": events.DESCRIPTIONS[name]}
    track = events.render_event(event, rate)
    bed = events.render_background(ambience, len(track), rate)
    mixed = levels.overlay(track, bed, float(rng.uniform(4.0, 12.0)))
    return {
        "kind": kind,
        "event": event,
        "ambience": ambience,
        "audio": levels.to_peak(mixed, levels.draw_peak_db(rng)),
    }


def finish_mixture(rng: np.random.Generator, record: dict, rendered) -> tuple:
    if record["kind"] == "speech_music":
        voice, music_spec = record["speech"], record["music"]
        mixed = levels.overlay(record["voice"], rendered, record["snr_db"], record["offset"])
        audio = levels.to_peak(mixed, record["peak_db"])
        labels = {**clips.speech_labels(voice), **clips.music_labels(music_spec)}
        provenance = {"sentence": voice["sentence_id"], "melody": f"m{music_spec['melody']}"}
        texts = captions.speech_music_captions(rng, voice, music_spec)
    else:
        event, ambience = record["event"], record["ambience"]
        audio = record["audio"]
        labels = {
            "event_category": [event["event_category"], events.category_of(ambience["sample"])],
            "event": [event["sample"], ambience["sample"]],
        }
        provenance = {"samples": [event["sample"], ambience["sample"]]}
        texts = captions.event_ambience_captions(rng, event, ambience)
    return audio, texts, {**labels, "mixture": record["kind"]}, provenance
