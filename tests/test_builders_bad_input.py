"""TFDS builders on bad input: every reason is skipped or dropped, counted with its ids, and
every good example still arrives."""

import json

import numpy as np
import soundfile as sf
from test_builders_formats import (
    RATE,
    assert_features,
    chirp,
    lhotse_cut,
    read_split,
    write_audio,
    write_cuts,
)

from audiolm_pt.audio import FbankConfig
from audiolm_pt.data.builders import features
from audiolm_pt.data.builders.tfds_builder import build_dataset
from audiolm_pt.data.schema import labels_of

BAD_UTF8 = b"caf\xe9 noise"  # Latin-1, not UTF-8


def clip(clip_id, audio, captions=(("a sound", "short"),), **extra) -> dict:
    row = {"id": clip_id, "split": "train", "audio": audio}
    row["captions"] = [{"text": t, "style": s} for t, s in captions]
    return {**row, **extra}


def write_bad_audio(src) -> None:
    write_audio(src / "good1.wav", 1.0, seed=1)
    write_audio(src / "good2.wav", 0.8, seed=2)
    write_audio(src / "long.wav", 2.5, seed=3)
    (src / "zero_bytes.wav").write_bytes(b"")
    sf.write(src / "zero_samples.wav", np.zeros(0, np.float32), RATE)
    sf.write(src / "full.wav", chirp(1.5), RATE, subtype="PCM_16")
    full = (src / "full.wav").read_bytes()
    (src / "truncated.wav").write_bytes(full[: len(full) // 3])
    sf.write(src / "full.flac", chirp(1.5), RATE)
    flac = (src / "full.flac").read_bytes()
    (src / "truncated.flac").write_bytes(flac[: len(flac) // 2])
    (src / "junk.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunk" * 20)
    nan = chirp(0.5)
    nan[100] = np.nan
    sf.write(src / "nan.wav", nan, RATE, subtype="FLOAT")
    sf.write(src / "silent.wav", np.zeros(RATE, np.float32), RATE)
    sf.write(src / "tiny.wav", chirp(0.5)[:100], RATE)


def test_demo_bad_input_is_counted_and_good_clips_arrive(tmp_path):
    src = tmp_path / "src"
    write_bad_audio(src)
    rows = [
        clip("good1", "good1.wav", labels={"event": ["a", "b"]}),
        clip("missing", "nope.wav"),
        clip("zero_bytes", "zero_bytes.wav"),
        clip("zero_samples", "zero_samples.wav"),
        clip("truncated", "truncated.wav", duration=1.5),
        clip("truncated_flac", "truncated.flac"),
        clip("junk", "junk.wav"),
        clip("nan", "nan.wav"),
        clip("silent", "silent.wav"),
        clip("tiny", "tiny.wav"),
        clip("long", "long.wav"),
        clip("good1", "good2.wav"),
        clip("nocap", "good2.wav", captions=[("", "short"), ("BAD", "short")]),
    ]
    lines = [json.dumps(r).encode() for r in rows]
    good2 = clip(
        "good2",
        "good2.wav",
        captions=[("kept", "long"), ("  ", "short"), ("BAD", "short"), ("odd", "poem")],
        labels={"event": "BAD", "domain": "music"},
    )
    lines.append(json.dumps(good2).encode())
    lines += [
        b"{not json",
        json.dumps({"split": "train", "audio": "good1.wav"}).encode(),
        json.dumps(clip("nosplit", "good1.wav", split=None)).encode(),
        json.dumps(clip("badcaps", "good1.wav") | {"captions": "x"}).encode(),
        b"[1, 2]",
    ]
    manifest = b"\n".join(line.replace(b'"BAD"', b'"' + BAD_UTF8 + b'"') for line in lines)
    (src / "manifest.jsonl").write_bytes(manifest + b"\n")

    builder = build_dataset(src, tmp_path / "data", max_seconds=1.0, workers=1)
    train = read_split(builder, "train")
    assert sorted(train) == ["good1", "good2", "long#w0", "long#w1", "long#w2"]
    assert_features(train["good1"], src / "good1.wav")
    assert_features(train["good2"], src / "good2.wav")
    assert train["good2"]["captions"] == ["kept"]
    assert train["good2"]["caption_styles"] == ["long"]
    assert labels_of(train["good2"]) == {"domain": ["music"]}

    report = json.loads((builder.data_path / "build_report.train.json").read_text())
    one = {"count": 1}
    assert report["skipped_clips"] == {
        "duplicate_id": {**one, "ids": ["good1"]},
        "empty": {"count": 2, "ids": ["zero_bytes", "zero_samples"]},
        "missing_file": {**one, "ids": ["missing"]},
        "no_usable_caption": {**one, "ids": ["nocap"]},
        "non_finite": {**one, "ids": ["nan"]},
        "silent": {**one, "ids": ["silent"]},
        "too_short": {**one, "ids": ["tiny"]},
        "truncated_audio": {**one, "ids": ["truncated"]},
        "undecodable": {"count": 2, "ids": ["truncated_flac", "junk"]},
    }
    assert report["dropped_captions"] == {
        "empty": {"count": 2, "ids": ["nocap", "good2"]},
        "non_utf8": {"count": 2, "ids": ["nocap", "good2"]},
        "unknown_style": {**one, "ids": ["good2"]},
    }
    assert report["dropped_labels"] == {"non_utf8": {**one, "ids": ["good2"]}}
    assert report["long_clips"] == {"long_clip_windowed": {**one, "ids": ["long"]}}
    assert report["malformed_rows"] == {
        "captions must be a list and labels an object": {**one, "ids": ["manifest.jsonl:18"]},
        "invalid JSON: Expecting property name enclosed in double quotes": {
            **one,
            "ids": ["manifest.jsonl:15"],
        },
        "missing id or audio": {**one, "ids": ["manifest.jsonl:16"]},
        "missing or invalid split": {**one, "ids": ["manifest.jsonl:17"]},
        "not a JSON object": {**one, "ids": ["manifest.jsonl:19"]},
    }
    totals = report["totals"]
    assert (totals["clips_read"], totals["clips_written"], totals["examples_written"]) == (14, 3, 5)
    assert (totals["clips_skipped"], totals["malformed_rows"]) == (11, 5)
    assert totals["captions_dropped"] == 5
    assert totals["clips_per_second"] > 0


def test_csv_json_and_cut_manifests_with_bad_rows(tmp_path):
    caps = tmp_path / "audiocaps"
    caps.mkdir()
    (caps / "val.csv").write_bytes(
        b"audiocap_id,youtube_id,start_time,caption\n"
        b"1,ok,0,a bird sings\n"
        b"2,ok,0," + BAD_UTF8 + b"\n"
        b"3,extra,0,a,b,c\n"
        b"4, ,0,no clip\n"
        b"5,blank,0,\n"
    )
    write_audio(caps / "audio/val/ok.wav", 0.6)
    write_audio(caps / "audio/val/blank.wav", 0.6)
    builder = build_dataset(caps, tmp_path / "data", format="audiocaps")
    val = read_split(builder, "validation")
    assert list(val) == ["ok"]
    assert val["ok"]["captions"] == ["a bird sings"]
    report = json.loads((builder.data_path / "build_report.validation.json").read_text())
    assert report["malformed_rows"] == {
        "empty youtube_id": {"count": 1, "ids": ["val.csv:5"]},
        "wrong number of cells": {"count": 1, "ids": ["val.csv:4"]},
    }
    assert report["dropped_captions"] == {
        "empty": {"count": 1, "ids": ["blank"]},
        "non_utf8": {"count": 1, "ids": ["ok"]},
    }
    assert report["skipped_clips"] == {"no_usable_caption": {"count": 1, "ids": ["blank"]}}

    wavcaps = tmp_path / "wavcaps"
    write_audio(wavcaps / "SoundBible/1.flac", 0.5)
    (wavcaps / "SoundBible.json").write_text(
        json.dumps({"data": [{"id": 1, "caption": "a bell"}, {"caption": "no id"}]})
    )
    (wavcaps / "Broken.json").write_text('{"data": [')
    builder = build_dataset(wavcaps, tmp_path / "data", format="wavcaps")
    assert list(read_split(builder, "train")) == ["SoundBible/1"]
    report = json.loads((builder.data_path / "build_report.train.json").read_text())
    assert report["malformed_rows"] == {
        "entry without an id": {"count": 1, "ids": ["SoundBible.json:1"]},
        'not a JSON object with a "data" list': {"count": 1, "ids": ["Broken.json"]},
    }

    cuts = tmp_path / "cuts"
    write_audio(cuts / "rec.wav", 1.0)
    url_cut = lhotse_cut("url", 0.0, 1.0, "x", [{"text": "t"}])
    url_cut["recording"]["sources"][0]["type"] = "url"
    write_cuts(
        cuts / "cuts_train.jsonl.gz",
        [
            lhotse_cut("in", 0.0, 0.5, "rec.wav", [{"text": "first half"}]),
            lhotse_cut("past_end", 0.5, 1.5, "rec.wav", [{"text": "runs off the end"}]),
            lhotse_cut("nocap", 0.0, 0.5, "rec.wav", [{"custom": {}}]),
            url_cut,
        ],
    )
    builder = build_dataset(cuts, tmp_path / "data", format="lhotse", name="cuts")
    assert list(read_split(builder, "train")) == ["in"]
    report = json.loads((builder.data_path / "build_report.train.json").read_text())
    assert report["skipped_clips"] == {
        "no_usable_caption": {"count": 1, "ids": ["nocap"]},
        "truncated_audio": {"count": 1, "ids": ["past_end"]},
    }
    assert report["malformed_rows"] == {
        "unsupported audio source type 'url'": {"count": 1, "ids": ["cuts_train.jsonl.gz:4"]}
    }


def test_window_ids_that_collide_with_clip_ids_are_duplicates(tmp_path):
    src = tmp_path / "src"
    write_audio(src / "long.wav", 2.5, seed=1)
    write_audio(src / "short.wav", 0.5, seed=2)
    rows = [
        clip("x", "long.wav"),
        clip("x#w1", "short.wav"),
        clip("y#w0", "short.wav"),
        clip("y", "long.wav"),
    ]
    (src / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    builder = build_dataset(src, tmp_path / "data", max_seconds=1.0)
    assert sorted(read_split(builder, "train")) == ["x#w0", "x#w1", "x#w2", "y#w0"]
    assert_features(read_split(builder, "train")["x#w1"], src / "long.wav", RATE, 2 * RATE)
    report = json.loads((builder.data_path / "build_report.train.json").read_text())
    assert report["skipped_clips"] == {"duplicate_id": {"count": 2, "ids": ["x#w1", "y"]}}
    assert report["long_clips"] == {"long_clip_windowed": {"count": 1, "ids": ["x"]}}


def test_unexpected_errors_skip_the_clip_with_a_named_reason(tmp_path, monkeypatch):
    def broken_features(wave, cfg):
        raise FloatingPointError("odd file")

    monkeypatch.setattr(features, "features_np", broken_features)
    write_audio(tmp_path / "a.wav", 0.5)
    job = features.FeatureJob(tmp_path / "a.wav", FbankConfig(), 30.0, "window", False)
    assert features.extract(job) == features.FeatureResult(skip="failed_FloatingPointError")
