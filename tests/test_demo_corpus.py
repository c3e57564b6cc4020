"""Tests for the demo corpus builder: manifest format, audio, captions, labels, splits, determinism.

A tiny corpus is built once per module (three chunks, so worker scheduling matters) with two
workers, again with one worker and again with another seed.
"""

import collections
import hashlib
import itertools
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audiolm_pt.data.demo_corpus import build, events, levels, music, sentences, speech, splits
from audiolm_pt.data.demo_corpus.general_midi import FAMILIES, INSTRUMENTS
from audiolm_pt.data.demo_corpus.sample_descriptions import DESCRIPTIONS, category_of

MISSING = [tool for tool in (speech.ESPEAK, music.FLUIDSYNTH) if shutil.which(tool) is None] + [
    path for path in (music.SOUNDFONT, events.SAMPLES_DIR) if not Path(path).exists()
]
needs_sources = pytest.mark.skipif(
    bool(MISSING), reason=f"demo corpus sources not installed: {', '.join(MISSING)}"
)

NUM_CLIPS, CHUNK = 36, 12
ROW_KEYS = {
    "id",
    "split",
    "audio",
    "domain",
    "duration",
    "sample_rate",
    "captions",
    "labels",
    "provenance",
}
DOMAIN_LABELS = {
    "speech": {"domain", "language", "voice", "speed", "gender"},
    "music": {"domain", "instrument_family", "instrument", "tempo", "pattern"},
    "sound": {"domain", "event_category", "event"},
}


def _build(out: Path, seed: int, workers: int) -> dict:
    return build.main(
        [
            f"--out={out}",
            f"--num_clips={NUM_CLIPS}",
            f"--seed={seed}",
            f"--workers={workers}",
            f"--chunk_size={CHUNK}",
        ]
    )


def _rows(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]


def _digests(out: Path) -> dict[str, str]:
    return {
        str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted((out / "audio").rglob("*.flac"))
    }


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    if MISSING:
        pytest.skip(f"demo corpus sources not installed: {', '.join(MISSING)}")
    out = tmp_path_factory.mktemp("demo_w2")
    info = _build(out, seed=0, workers=2)
    return out, info, _rows(out)


@needs_sources
def test_rows_are_well_formed_and_audio_matches(corpus):
    out, info, rows = corpus
    assert len(rows) == info["num_clips"] == NUM_CLIPS - sum(info["skipped"].values())
    assert info["skipped"] == {}
    assert len({row["id"] for row in rows}) == len(rows)
    for row in rows:
        assert set(row) == ROW_KEYS
        assert row["split"] in splits.SPLITS
        assert row["audio"] == f"audio/{row['split']}/{row['id']}.flac"
        assert row["labels"]["domain"] == row["domain"]
        audio, rate = sf.read(out / row["audio"], dtype="float32")
        assert sf.info(out / row["audio"]).subtype == "PCM_16"
        assert audio.ndim == 1
        assert rate == row["sample_rate"] == 16000
        assert len(audio) / rate == pytest.approx(row["duration"], abs=1e-6)
        assert 2.0 <= row["duration"] <= 10.0
        assert levels.rms(audio) > 1e-3, row["id"]
        assert np.max(np.abs(audio)) <= levels.PEAK_LIMIT + 1e-4
    assert set(info["counts"]["domain"]) == set(build.DOMAINS)
    assert set(info["counts"]["split"]) == set(splits.SPLITS)


@needs_sources
def test_caption_styles_and_transcripts(corpus):
    _, _, rows = corpus
    seen = collections.Counter()
    for row in rows:
        styles = [c["style"] for c in row["captions"]]
        seen.update(styles)
        assert {"tags", "short", "long"} <= set(styles)
        assert all(c["text"].strip() for c in row["captions"])
        speaks = "sentence" in row["provenance"]
        assert ("transcript" in styles) == speaks, row["id"]
        if speaks:
            text, gloss = sentences.sentence(row["provenance"]["sentence"])
            language = sentences.GRAMMARS[row["provenance"]["sentence"].split(":")[0]]["name"]
            transcript = next(c["text"] for c in row["captions"] if c["style"] == "transcript")
            assert transcript == f'Transcript ({language}): "{text}"'
            long = next(c["text"] for c in row["captions"] if c["style"] == "long")
            assert gloss in long
            assert language in long
    assert set(seen) == {"tags", "short", "long", "transcript"}
    shorts = [c["text"] for row in rows for c in row["captions"] if c["style"] == "short"]
    assert len(set(shorts)) > 0.9 * len(shorts)


@needs_sources
def test_labels_per_domain_agree_with_provenance(corpus):
    _, _, rows = corpus
    for row in rows:
        labels = row["labels"]
        if row["domain"] in DOMAIN_LABELS:
            assert set(labels) == DOMAIN_LABELS[row["domain"]]
        else:
            assert labels["mixture"] in ("speech_music", "event_ambience")
            kind = DOMAIN_LABELS["speech"] | DOMAIN_LABELS["music"]
            expected = kind if labels["mixture"] == "speech_music" else DOMAIN_LABELS["sound"]
            assert set(labels) == expected | {"mixture"}
        if "instrument" in labels:
            family = FAMILIES[INSTRUMENTS.index(labels["instrument"]) // 8]
            assert labels["instrument_family"] == family
        if "voice" in labels:
            assert labels["gender"] == speech.VOICES[labels["voice"]][0]
            lang = row["provenance"]["sentence"].split(":")[0]
            assert labels["language"] == sentences.GRAMMARS[lang]["name"].lower()
        if "event" in labels:
            events_ = labels["event"] if isinstance(labels["event"], list) else [labels["event"]]
            assert events_ == row["provenance"]["samples"][: len(events_)]
            cats = labels["event_category"]
            assert (cats if isinstance(cats, list) else [cats]) == [category_of(e) for e in events_]


@needs_sources
def test_splits_share_no_sentence_melody_or_sample(corpus):
    _, _, rows = corpus
    used = {split: collections.defaultdict(set) for split in splits.SPLITS}
    fractions = (0.8, 0.1, 0.1)
    for row in rows:
        prov = row["provenance"]
        if "sentence" in prov:
            used[row["split"]]["sentence"].add(prov["sentence"])
            assert splits.split_of_key("sentence:" + prov["sentence"], fractions) == row["split"]
        if "melody" in prov:
            used[row["split"]]["melody"].add(prov["melody"])
            assert splits.split_of_melody(int(prov["melody"][1:])) == row["split"]
        for name in prov.get("samples", []):
            used[row["split"]]["sample"].add(name)
            assert events.sample_splits()[name] == row["split"]
    for kind in ("sentence", "melody", "sample"):
        for a, b in (("train", "valid"), ("train", "test"), ("valid", "test")):
            assert not used[a][kind] & used[b][kind], kind
    assert all(used["train"][k] for k in ("sentence", "melody", "sample"))
    assert any(used[s][k] for s in ("valid", "test") for k in ("sentence", "melody", "sample"))


@needs_sources
def test_same_seed_any_workers_is_byte_identical(corpus, tmp_path):
    out, _, _ = corpus
    _build(tmp_path, seed=0, workers=1)
    assert (tmp_path / "manifest.jsonl").read_bytes() == (out / "manifest.jsonl").read_bytes()
    assert _digests(tmp_path) == _digests(out)


@needs_sources
def test_other_seed_gives_other_clips(corpus, tmp_path):
    out, _, rows = corpus
    _build(tmp_path, seed=1, workers=2)
    other = _rows(tmp_path)
    assert {r["provenance"].get("sentence") for r in rows if r["domain"] == "speech"}.isdisjoint(
        {r["provenance"].get("sentence") for r in other if r["domain"] == "speech"}
    )
    assert set(_digests(out).values()).isdisjoint(_digests(tmp_path).values())


def test_generator_pools_are_large_and_split_disjoint():
    assert len(sentences.LANGUAGES) >= 8
    assert len(speech.VOICES) >= 6
    assert {gender for gender, _, _ in speech.VOICES.values()} == {"male", "female"}
    fractions = (0.8, 0.1, 0.1)
    for lang in sentences.LANGUAGES:
        pools = [set(sentences.sentence_pool(lang, s, fractions)) for s in splits.SPLITS]
        total = np.prod([len(sentences.GRAMMARS[lang][slot]) for slot in sentences.SLOTS])
        assert sum(map(len, pools)) == len(set().union(*pools)) == total >= 2000
        assert 0.75 < len(pools[0]) / total < 0.85
        texts = {sentences.sentence(i)[0] for p in pools for i in p}
        assert len(texts) == total
    assert len(INSTRUMENTS) == 128
    assert len(FAMILIES) == 16


def test_grammars_are_aligned_across_languages():
    for lang, grammar in sentences.GRAMMARS.items():
        assert sorted(grammar["order"]) == sorted(sentences.SLOTS), lang
        for slot in sentences.SLOTS:
            assert len(grammar[slot]) == len(sentences.GRAMMARS["en"][slot]), (lang, slot)
    text, gloss = sentences.sentence("de:0-0-0-0")
    assert text == "Der alte Mann liest ein Buch am Morgen im Park."
    assert gloss == "The old man reads a book in the park in the morning."


def test_sample_partition_holds_out_per_category():
    names = sorted(DESCRIPTIONS)
    assignment = splits.partition_by_category(names, category_of)
    by_category = collections.defaultdict(collections.Counter)
    for name, split in assignment.items():
        by_category[category_of(name)][split] += 1
    for category, counts in by_category.items():
        n = sum(counts.values())
        if n >= 3:
            held = max(1, round(0.1 * n))
            assert counts == {"train": n - 2 * held, "valid": held, "test": held}, category
        else:
            assert counts == {"train": n}
    assert splits.partition_by_category(names[::-1], category_of) == assignment


@needs_sources
def test_every_installed_sample_is_described():
    installed = {p.stem for p in Path(events.SAMPLES_DIR).glob("*.flac")}
    assert installed <= set(DESCRIPTIONS)
    assert len(installed) >= 160


def test_melody_ids_are_split_disjoint():
    rng = np.random.default_rng(0)
    for split in splits.SPLITS:
        assert {splits.split_of_melody(splits.melody_id(rng, split)) for _ in range(50)} == {split}


def test_note_events_follow_tempo_and_pattern():
    spec = {"melody": 12, "tempo_bpm": 120, "register": "middle", "bars": 2}
    chords = music.note_events({**spec, "pattern": "chords"})
    assert len(chords) == 2 * 2 * 3
    assert sorted({start for start, _, _ in chords}) == [0.0, 1.0, 2.0, 3.0]
    arpeggio = music.note_events({**spec, "pattern": "arpeggio"})
    assert [start for start, _, _ in arpeggio] == pytest.approx([0.25 * i for i in range(16)])
    melody = music.note_events({**spec, "pattern": "melody", "tempo_bpm": 60})
    assert max(s + d for s, d, _ in melody) <= 8.0
    assert melody[0][0] == 0.0
    mat = music.material(12)
    tonic = music.REGISTERS["middle"] + mat["key"]
    scale = set(music.SCALES[mat["scale"]])
    pitches = [pitch for _, _, pitch in melody + chords + arpeggio]
    assert all((pitch - tonic) % 12 in scale for pitch in pitches)
    low, high = (music.REGISTERS["middle"] + offset for offset in music.REGISTER_SPAN)
    assert all(low <= pitch <= high for pitch in pitches)


@needs_sources
def test_probe_finds_playable_instruments_in_every_family():
    playable = music.probe_playable(16000)
    assert len(playable) > 300
    assert {FAMILIES[program // 8] for program, _ in playable} == set(FAMILIES)
    assert (0, "middle") in playable


@needs_sources
def test_rendered_note_has_the_midi_pitch():
    # A flute note (program 73) is close to a sinusoid: its spectral peak is the note's pitch.
    spec = {
        "melody": 30,
        "tempo_bpm": 60,
        "register": "middle",
        "bars": 1,
        "pattern": "melody",
        "program": 73,
        "velocity": 100,
    }
    first_start, first_duration, pitch = music.note_events(spec)[0]
    (clip,) = music.render([spec], 16000)
    start, stop = int((first_start + 0.1) * 16000), int((first_start + first_duration) * 16000)
    segment = clip[start:stop] * np.hanning(stop - start)
    spectrum = np.abs(np.fft.rfft(segment, n=1 << 16))
    peak_hz = np.argmax(spectrum) * 16000 / (1 << 16)
    assert peak_hz == pytest.approx(440.0 * 2 ** ((pitch - 69) / 12), rel=0.03)


@needs_sources
def test_faster_speech_is_shorter():
    rng = np.random.default_rng(3)
    spec = speech.draw_speech(rng, "train", (0.8, 0.1, 0.1))
    slow = speech.synthesize({**spec, "rate": 110}, 16000)
    fast = speech.synthesize({**spec, "rate": 240}, 16000)
    assert 1.5 < len(slow) / len(fast) < 2.6


def test_noise_colours_have_their_spectral_slope():
    rng = np.random.default_rng(0)
    for colour, exponent in events.NOISES.items():
        x = events.noise(rng, colour, 1 << 16)
        assert levels.rms(x) == pytest.approx(1.0, rel=1e-4)
        power = np.abs(np.fft.rfft(x)) ** 2
        bands = np.logspace(1, np.log10(len(power) - 1), 12).astype(int)
        centres = np.sqrt(bands[:-1] * bands[1:])
        means = [power[a:b].mean() for a, b in itertools.pairwise(bands)]
        slope = np.polyfit(np.log(centres), np.log(means), 1)[0]
        assert slope == pytest.approx(-exponent, abs=0.15), colour


def test_overlay_sets_the_snr_and_finish_fits_the_clip():
    rng = np.random.default_rng(0)
    fg, bg = rng.standard_normal(8000).astype(np.float32), rng.standard_normal(16000)
    mixed = levels.overlay(fg, bg.astype(np.float32), snr_db=10.0, offset=4000)
    assert len(mixed) == 16000
    background = mixed.copy()
    background[4000:12000] -= fg
    assert 20 * np.log10(levels.rms(fg) / levels.rms(background)) == pytest.approx(10.0, abs=1e-3)
    short = levels.finish(np.full(100, 0.5, np.float32), 16000)
    assert short.dtype == np.int16
    assert len(short) == 32000
    assert short[0] == round(0.5 * 32767)
    long = levels.finish(np.full(200000, 2.0, np.float32), 16000)
    assert len(long) == 160000
    assert long.max() == round(levels.PEAK_LIMIT * 32767)
    assert long[-1] == 0
    with pytest.raises(Exception, match="silent_audio"):
        levels.finish(np.zeros(40000, np.float32), 16000)


@pytest.fixture
def clean_sample_caches():
    events.sample_splits.cache_clear()
    events._load.cache_clear()
    yield
    events.sample_splits.cache_clear()
    events._load.cache_clear()


@needs_sources
def test_failed_tools_and_unreadable_samples_are_counted_not_fatal(
    tmp_path, monkeypatch, clean_sample_caches
):
    broken = tmp_path / "samples"
    broken.mkdir()
    for path in Path(events.SAMPLES_DIR).glob("*.flac"):
        (broken / path.name).write_bytes(b"not a flac file")
    failing_tool = tmp_path / "fails"
    failing_tool.write_text("#!/bin/sh\necho 'simulated failure' >&2\nexit 1\n")
    failing_tool.chmod(0o755)
    monkeypatch.setattr(events, "SAMPLES_DIR", str(broken))
    monkeypatch.setattr(speech, "ESPEAK", str(failing_tool))
    info = build.main(
        [f"--out={tmp_path / 'a'}", "--num_clips=24", "--workers=1", "--chunk_size=12"]
    )
    rows = _rows(tmp_path / "a")
    assert {row["domain"] for row in rows} == {"music"}
    assert set(info["skipped"]) == {"espeak_failed", "unreadable_sample"}
    assert len(rows) + sum(info["skipped"].values()) == 24

    music.probe_playable(16000)  # cached: the probe succeeds, the chunk renders fail
    monkeypatch.setattr(music, "FLUIDSYNTH", str(failing_tool))
    info = build.build(
        str(tmp_path / "b"),
        24,
        0,
        1,
        12,
        build.check_config(build.parse_args(["--out=x", "--domain_mix=music=1"])),
    )
    assert info["num_clips"] == 0
    assert info["skipped"] == {"fluidsynth_failed": 24}


@needs_sources
def test_missing_tool_fails_at_start_up(monkeypatch, tmp_path):
    monkeypatch.setattr(speech, "ESPEAK", str(tmp_path / "no-espeak"))
    with pytest.raises(SystemExit, match=r"domain_mix needs .*no-espeak"):
        build.check_config(build.parse_args(["--out=x"]))
    build.check_config(build.parse_args(["--out=x", "--domain_mix=music=1,sound=1"]))


@pytest.mark.parametrize(
    ("argument", "key"),
    [
        ("--num_clips=0", "num_clips"),
        ("--domain_mix=speech=x", "domain_mix"),
        ("--domain_mix=noise=1", "domain_mix"),
        ("--split_fractions=train=1,dev=1", "split_fractions"),
        ("--sample_rate=100", "sample_rate"),
    ],
)
def test_bad_configuration_names_the_key(argument, key):
    with pytest.raises(SystemExit, match=key):
        build.check_config(build.parse_args(["--out=x", argument]))


def test_demo_zero_shot_prompts_use_wording_no_caption_uses(corpus):
    """The demo's zero-shot prompts put plain label words in wording that appears in no
    caption template, sample description or sentence table, nor in any built caption."""
    from configs.demo import ZERO_SHOT_TEMPLATES

    _, _, rows = corpus
    captions = [c["text"].lower() for row in rows for c in row["captions"]]
    package = Path(build.__file__).parent
    sources = " ".join(p.read_text().lower() for p in package.glob("*.py"))
    for template in ZERO_SHOT_TEMPLATES:
        wording = template.replace("{}", "").strip().lower()
        assert wording, template
        assert wording not in sources, template
        assert not any(wording in c for c in captions), template
