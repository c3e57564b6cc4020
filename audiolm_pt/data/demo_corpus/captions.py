"""Captions in several styles (tags, short, long, transcript) from a clip's generation record.

Each style has several templates and synonyms, chosen with the clip's own random generator, so
captions vary across clips the way captions from differently styled corpora do.
"""

import numpy as np

SPEAKERS = {
    "male": ["a man", "a male speaker", "a male voice", "a man's voice"],
    "female": ["a woman", "a female speaker", "a female voice", "a woman's voice"],
}
PATTERN_WORDS = {
    "melody": ["melody", "tune", "melodic line", "simple melody"],
    "chords": ["chord progression", "series of chords", "sequence of block chords"],
    "arpeggio": ["arpeggio", "arpeggiated pattern", "run of broken chords"],
}
TEMPO_WORDS = {
    "slow": ["slow", "unhurried", "leisurely"],
    "medium": ["moderate", "medium-paced", "walking-pace"],
    "fast": ["fast", "quick", "lively"],
}
SPEED_WORDS = {
    "slow": ["slowly", "at a slow pace", "deliberately"],
    "normal": ["at a normal pace", "at an even pace", "at a steady pace"],
    "fast": ["quickly", "fast", "at a rapid pace"],
}
# How loud a recording is (levels.loudness_of_peak buckets), as adjectives...
LEVEL_WORDS = {
    "quiet": ["quiet", "faint", "low in volume"],
    "moderate": ["moderately loud", "at a moderate level", "at medium volume"],
    "loud": ["loud", "high in level", "strong"],
}
# ...and how hard notes are played (music.loudness_bucket of the velocity), as adverbs.
PLAYING_WORDS = {
    "soft": ["softly", "gently", "quietly"],
    "moderate": ["at a moderate level", "at medium volume", "with moderate force"],
    "loud": ["loudly", "forcefully", "powerfully"],
}
PATTERN_PHRASES = {
    "steady": [
        "repeats at a steady pace",
        "is heard again and again in a regular rhythm",
        "keeps repeating evenly",
    ],
    "irregular": [
        "repeats at irregular intervals",
        "sounds several times with uneven gaps",
        "comes and goes unevenly",
    ],
    "single": ["sounds once", "is heard a single time", "occurs once"],
    "once": ["plays through once", "is heard from start to end", "plays once"],
}


def _pick(rng: np.random.Generator, options: list[str]) -> str:
    return options[rng.integers(len(options))]


def _sentence(text: str) -> str:
    text = text.strip()
    ended = text.rstrip('"').endswith((".", "!", "?"))
    return text[0].upper() + text[1:] + ("" if ended else ".")


def _tags(rng: np.random.Generator, required: list[str], optional: list[str]) -> str:
    chosen = required + [t for t in optional if rng.random() < 0.6]
    order = rng.permutation(len(chosen))
    return ", ".join(chosen[i] for i in order)


def _speed_phrase(spec: dict) -> str:
    return {"slow": "slow", "normal": "normal", "fast": "fast"}[spec["speed"]]


def speaker(rng: np.random.Generator, spec: dict) -> str:
    return _pick(rng, SPEAKERS[spec["gender"]])


def music_phrase(rng: np.random.Generator, spec: dict) -> str:
    """e.g. 'a piano plays a slow melody'."""
    tempo = _pick(rng, TEMPO_WORDS[spec["tempo"]])
    return (
        f"{_article(spec['instrument'])} {spec['instrument']} plays {_article(tempo)} {tempo} "
        f"{_pick(rng, PATTERN_WORDS[spec['pattern']])}"
    )


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def _pitch_change(spec: dict) -> str:
    if spec["speed"] < 0.97:
        return "slowed down and lower in pitch"
    if spec["speed"] > 1.03:
        return "sped up and higher in pitch"
    return ""


def transcript(spec: dict) -> dict:
    return {"text": f'Transcript ({spec["language"]}): "{spec["text"]}"', "style": "transcript"}


def speech_captions(rng: np.random.Generator, spec: dict, loudness: str) -> list[dict]:
    who, language = speaker(rng, spec), spec["language"]
    short = _pick(
        rng,
        [
            f"{who} speaks {language}",
            f"{who} says a sentence in {language} {_pick(rng, SPEED_WORDS[spec['speed']])}",
            f"a {_speed_phrase(spec)} {language} sentence spoken by {who}",
            f"someone talks in {language} with a {spec['pitch_level']}-pitched voice",
            f"{who} reads out a short sentence in {language}",
            f"{language} spoken in {spec['voice_description']}",
            f"someone with a {spec['voice_quality']} voice speaks {language}",
        ],
    )
    details = [
        _pick(
            rng,
            [
                f'The sentence means: "{spec["gloss"]}"',
                f'In English, the speaker says: "{spec["gloss"]}"',
                f'Translated, the words are "{spec["gloss"]}"',
            ],
        ),
        _pick(
            rng,
            [
                f"The speaking rate is {_speed_phrase(spec)}, about {spec['rate']} words "
                "per minute",
                f"The words come {_pick(rng, SPEED_WORDS[spec['speed']])}",
            ],
        ),
        _pick(
            rng,
            [
                f"The voice is {spec['pitch_level']} in pitch",
                f"The pitch of the voice is {spec['pitch_level']}",
            ],
        ),
        _pick(
            rng,
            [
                f"The recording is {_pick(rng, LEVEL_WORDS[loudness])} and clean, with "
                "no background sound",
                f"There is no background noise and the voice is "
                f"{_pick(rng, LEVEL_WORDS[loudness])}",
            ],
        ),
    ]
    opening = _pick(
        rng,
        [
            f"someone speaks {language} in {spec['voice_description']}",
            f"A short {language} sentence is read by {spec['voice_description']}",
            f"This is synthetic {language} speech in {spec['voice_description']}",
        ],
    )
    long = " ".join(_sentence(s) for s in [opening, *(details[i] for i in rng.permutation(4))])
    tags = _tags(
        rng,
        ["speech", language.lower()],
        [
            spec["gender"],
            f"{_speed_phrase(spec)} speech",
            f"{spec['pitch_level']} pitch",
            f"{spec['voice_quality']} voice",
            "talking",
        ],
    )
    return [
        {"text": tags, "style": "tags"},
        {"text": _sentence(short), "style": "short"},
        {"text": long, "style": "long"},
        transcript(spec),
    ]


def music_captions(rng: np.random.Generator, spec: dict) -> list[dict]:
    instrument, pattern = spec["instrument"], _pick(rng, PATTERN_WORDS[spec["pattern"]])
    tempo = _pick(rng, TEMPO_WORDS[spec["tempo"]])
    loudly = _pick(rng, PLAYING_WORDS[spec["loudness"]])
    short = _pick(
        rng,
        [
            music_phrase(rng, spec),
            f"{tempo} {pattern} on {_article(instrument)} {instrument}",
            f"solo {instrument} music in {spec['key_name']} {spec['scale']}",
            f"someone plays {_article(pattern)} {pattern} on the {instrument}",
            f"{_article(instrument)} {instrument} is played {loudly}",
        ],
    )
    details = [
        _pick(
            rng,
            [
                f"The tempo is {tempo}, about {spec['tempo_bpm']} beats per minute",
                f"It moves at {_article(tempo)} {tempo} {spec['tempo_bpm']} beats per minute",
            ],
        ),
        _pick(
            rng,
            [
                f"The notes sit in the {spec['register']} register",
                f"It is played in the {spec['register']} range of the instrument",
            ],
        ),
        _pick(
            rng,
            [
                f"The notes are played {_pick(rng, PLAYING_WORDS[spec['loudness']])}",
                f"The dynamics are {spec['loudness']}",
            ],
        ),
        _pick(
            rng,
            [
                "No other instrument and no background noise can be heard",
                "The instrument plays alone in a dry, clean recording",
            ],
        ),
    ]
    opening = _pick(
        rng,
        [
            f"{_article(instrument)} {instrument}, from the {spec['instrument_family']} family, "
            f"plays {_article(pattern)} {pattern} in {spec['key_name']} {spec['scale']}",
            f"this is {_article(pattern)} {pattern} in {spec['key_name']} {spec['scale']} "
            f"played on {_article(instrument)} {instrument} ({spec['instrument_family']})",
        ],
    )
    long = " ".join(_sentence(s) for s in [opening, *(details[i] for i in rng.permutation(4))])
    tags = _tags(
        rng,
        ["music", instrument],
        [
            spec["instrument_family"],
            spec["pattern"],
            f"{spec['tempo']} tempo",
            f"{spec['scale']} scale",
            spec["loudness"],
            f"{spec['register']} register",
        ],
    )
    return [
        {"text": tags, "style": "tags"},
        {"text": _sentence(short), "style": "short"},
        {"text": long, "style": "long"},
    ]


def sound_captions(
    rng: np.random.Generator, event: dict, background: dict, loudness: str
) -> list[dict]:
    what, how = event["description"], _pick(rng, PATTERN_PHRASES[event["pattern"]])
    change = _pitch_change(event)
    short = _pick(
        rng,
        [
            f"{what} {how}",
            f"{what} with {background['description']} behind it",
            f"{what}{', ' + change if change else ''}",
            f"the sound of {what}",
        ],
    )
    details = [
        _pick(rng, [f"It {how}", f"The sound {how}"])
        + (f", {event['repetitions']} times in all" if event["repetitions"] > 1 else ""),
        _pick(
            rng,
            [
                f"Behind it there is {background['description']}",
                f"A quiet background of {background['description']} stays underneath",
            ],
        ),
        _pick(
            rng,
            [
                f"The clip is {_pick(rng, LEVEL_WORDS[loudness])}",
                f"Overall it is {_pick(rng, LEVEL_WORDS[loudness])}",
            ],
        ),
    ]
    if change:
        details.append(f"The sample has been {change}")
    opening = _pick(
        rng, [f"{what} is heard", f"This clip contains {what}", f"A recording of {what}"]
    )
    long = " ".join(
        _sentence(s) for s in [opening, *(details[i] for i in rng.permutation(len(details)))]
    )
    tags = _tags(
        rng,
        ["sound effect", event["category_name"]],
        [what.split(" ", 1)[1], event["pattern"], "background noise"]
        + ([change.split(" and ")[1]] if change else []),
    )
    return [
        {"text": tags, "style": "tags"},
        {"text": _sentence(short), "style": "short"},
        {"text": long, "style": "long"},
    ]


def speech_music_captions(rng: np.random.Generator, voice: dict, music: dict) -> list[dict]:
    who, language = speaker(rng, voice), voice["language"]
    playing = music_phrase(rng, music)
    short = _pick(
        rng,
        [
            f"{who} speaks {language} while {playing}",
            f"{playing} as {who} talks in {language}",
            f"{language} speech from {who} over {music['tempo']} {music['instrument']} music",
        ],
    )
    long = " ".join(
        _sentence(s)
        for s in [
            f"someone speaks {language} in {voice['voice_description']} over background music",
            f"In the background, {playing} in {music['key_name']} {music['scale']}",
            f'The words, in English, are "{voice["gloss"]}"',
            f"The speech is {_speed_phrase(voice)} and {voice['pitch_level']} in pitch, and the "
            f"music stays quieter than the voice",
        ]
    )
    tags = _tags(
        rng,
        ["speech", "music", language.lower(), music["instrument"]],
        [voice["gender"], music["pattern"], f"{music['tempo']} tempo", "speech over music"],
    )
    return [
        {"text": tags, "style": "tags"},
        {"text": _sentence(short), "style": "short"},
        {"text": long, "style": "long"},
        transcript(voice),
    ]


def event_ambience_captions(rng: np.random.Generator, event: dict, ambience: dict) -> list[dict]:
    what, bed = event["description"], ambience["description"]
    how = _pick(rng, PATTERN_PHRASES[event["pattern"]])
    short = _pick(
        rng, [f"{what} over {bed}", f"{what} {how} against {bed}", f"{bed} with {what} on top"]
    )
    long = " ".join(
        _sentence(s)
        for s in [
            f"{what} {how} in the foreground",
            f"Underneath, {bed} continues for the whole clip",
            _pick(
                rng,
                [
                    "The foreground sound is clearly louder than the background",
                    "The ambience stays quieter than the main sound",
                ],
            ),
        ]
    )
    tags = _tags(
        rng,
        ["sound effect", "ambience", event["category_name"]],
        [what.split(" ", 1)[1], bed.split(" ", 1)[1], event["pattern"]],
    )
    return [
        {"text": tags, "style": "tags"},
        {"text": _sentence(short), "style": "short"},
        {"text": long, "style": "long"},
    ]
