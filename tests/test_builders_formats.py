"""TFDS builders: each source format builds, reads back, and matches features computed here."""

import csv
import dataclasses
import gzip
import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from audiolm_pt.audio import (
    FbankConfig,
    LogMelConfig,
    fbank_np,
    load_audio,
    num_fbank_frames,
    num_log_mel_frames,
)
from audiolm_pt.data.builders.__main__ import main
from audiolm_pt.data.builders.build_report import BuildReport
from audiolm_pt.data.builders.features import cap_length
from audiolm_pt.data.builders.formats.lhotse import split_of
from audiolm_pt.data.builders.tfds_builder import DATASET_VERSION, build_dataset, open_dataset
from audiolm_pt.data.processing import decode_waveform
from audiolm_pt.data.schema import labels_of

RATE = 16000


def chirp(seconds: float, rate: int = RATE, seed: int = 0) -> np.ndarray:
    """A rising chirp plus a little noise: real-ish audio with energy in every mel band."""
    t = np.arange(round(seconds * rate)) / rate
    sweep = 0.3 * np.sin(2 * np.pi * (150.0 + 1500.0 * t / max(seconds, 1e-3)) * t)
    noise = 0.02 * np.random.default_rng(seed).standard_normal(t.size)
    return (sweep + noise).astype(np.float32)


def write_audio(path, seconds: float, rate: int = RATE, seed: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, chirp(seconds, rate, seed), rate)


def write_jsonl(path, rows) -> None:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))


def write_csv(path, header, rows) -> None:
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows([header, *rows])


def text(value) -> str:
    return value.decode("utf-8")


def read_split(builder, split: str) -> dict[str, dict]:
    """Every example of a split, by id, with text fields decoded."""
    source = builder.as_data_source(split=split)
    examples = {}
    for i in range(len(source)):
        ex = dict(source[i])
        for key in ("id", "source"):
            ex[key] = text(ex[key])
        for key in ("captions", "caption_styles", "label_keys", "label_values"):
            ex[key] = [text(v) for v in ex[key]]
        examples[ex["id"]] = ex
    return examples


def reference(path, start: int = 0, stop: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(float16 fbank, float32 waveform) of a file's samples [start:stop] at 16 kHz."""
    wave = load_audio(path, RATE)[start:stop]
    return fbank_np(wave, FbankConfig()).astype(np.float16), wave


def assert_features(ex: dict, path, start: int = 0, stop: int | None = None) -> None:
    fbank, wave = reference(path, start, stop)
    assert ex["features"].dtype == np.float16
    assert ex["features"].shape == (num_fbank_frames(wave.size, FbankConfig()), 80)
    assert ex["num_frames"] == ex["features"].shape[0]
    np.testing.assert_array_equal(ex["features"], fbank)


def test_demo_manifest_round_trip(tmp_path):
    src = tmp_path / "src"
    write_audio(src / "audio/a.wav", 1.0, seed=1)
    write_audio(src / "audio/b.flac", 0.7, rate=22050, seed=2)
    write_audio(src / "audio/c.wav", 1.2, seed=3)
    write_jsonl(
        src / "manifest.jsonl",
        [
            {
                "id": "a",
                "split": "train",
                "audio": "audio/a.wav",
                "domain": "speech",
                "duration": 1.0,
                "sample_rate": RATE,
                "captions": [
                    {"text": "a woman speaks", "style": "short"},
                    {"text": " speech, female ", "style": "tags"},
                ],
                "labels": {"domain": "speech", "event": ["speech", "female"]},
            },
            {
                "id": "b",
                "split": "train",
                "audio": "audio/b.flac",
                "duration": 0.7,
                "captions": [{"text": "a rising tone", "style": "long"}],
                "labels": {},
            },
            {
                "id": "c",
                "split": "test",
                "audio": "audio/c.wav",
                "captions": [{"text": "hello there", "style": "transcript"}],
                "labels": {"speaker": "s1"},
            },
        ],
    )
    builder = build_dataset(src, tmp_path / "data", format="demo", store_waveform=True)
    assert builder.data_path == tmp_path / "data" / "demo" / DATASET_VERSION
    train, test = read_split(builder, "train"), read_split(builder, "test")
    assert sorted(train) == ["a", "b"]
    assert list(test) == ["c"]
    a = train["a"]
    assert a["source"] == "demo"
    assert a["captions"] == ["a woman speaks", "speech, female"]
    assert a["caption_styles"] == ["short", "tags"]
    assert labels_of(a) == {"domain": ["speech"], "event": ["speech", "female"]}
    assert train["b"]["caption_styles"] == ["long"]
    assert labels_of(train["b"]) == {}
    assert test["c"]["caption_styles"] == ["transcript"]
    for ex, name in [(a, "a.wav"), (train["b"], "b.flac"), (test["c"], "c.wav")]:
        assert_features(ex, src / "audio" / name)
        _, wave = reference(src / "audio" / name)
        expected = np.clip(np.round(wave * 32768.0), -32768, 32767).astype(np.int16)
        np.testing.assert_array_equal(decode_waveform(ex["waveform"]), expected)
    assert decode_waveform(train["b"]["waveform"]).size == round(0.7 * RATE)

    report = json.loads((builder.data_path / "build_report.train.json").read_text())
    assert report["totals"]["clips_read"] == 2
    assert report["totals"]["examples_written"] == 2
    assert report["totals"]["audio_seconds_written"] == pytest.approx(1.7)
    assert report["skipped_clips"] == {}
    reopened = open_dataset(tmp_path / "data", "demo")
    assert reopened.info.metadata["frontend"] == "fbank"
    assert reopened.info.metadata["frontend_options"]["num_mel_bins"] == 80
    assert reopened.info.metadata["store_waveform"] is True
    assert len(reopened.as_data_source(split="test")) == 1


def test_audiocaps_groups_rows_and_finds_audio(tmp_path):
    src = tmp_path / "src"
    header = ["audiocap_id", "youtube_id", "start_time", "caption"]
    src.mkdir()
    write_csv(
        src / "train.csv", header, [[1, "yt1", 0, "a dog barks"], [2, "yt2", 30, "rain, then"]]
    )
    write_csv(
        src / "val.csv",
        header,
        [[3, "yt3", 0, "first"], [4, "yt3", 0, "second"], [5, "yt4", 10, "only"]],
    )
    write_audio(src / "audio/train/yt1.wav", 1.0, seed=1)
    write_audio(src / "audio/train/Yyt2.wav", 0.8, seed=2)
    write_audio(src / "audio/val/yt3.wav", 0.6, seed=3)
    write_audio(src / "audio/val/5.wav", 0.9, seed=4)
    builder = build_dataset(src, tmp_path / "data", format="audiocaps", caption_style="long")
    train, val = read_split(builder, "train"), read_split(builder, "validation")
    assert builder.info.splits.keys() == {"train", "validation"}
    assert train["yt2"]["captions"] == ["rain, then"]
    assert val["yt3"]["captions"] == ["first", "second"]
    assert val["yt3"]["caption_styles"] == ["long", "long"]
    assert val["yt4"]["captions"] == ["only"]
    assert_features(train["yt1"], src / "audio/train/yt1.wav")
    assert_features(train["yt2"], src / "audio/train/Yyt2.wav")
    assert_features(val["yt4"], src / "audio/val/5.wav")
    assert train["yt1"]["source"] == "audiocaps"
    assert train["yt1"]["label_keys"] == []


def test_clotho_five_captions_per_clip(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    header = ["file_name"] + [f"caption_{k}" for k in range(1, 6)]
    caps = [f"birds sing, number {k}" for k in range(1, 6)]
    write_csv(src / "clotho_captions_development.csv", header, [["park birds.wav", *caps]])
    write_csv(src / "clotho_captions_evaluation.csv", header, [["street.wav", *caps[::-1]]])
    write_audio(src / "development/park birds.wav", 1.5, rate=44100, seed=1)
    write_audio(src / "evaluation/street.wav", 0.5, seed=2)
    builder = build_dataset(src, tmp_path / "data", format="clotho", name="clotho_v2")
    train, test = read_split(builder, "train"), read_split(builder, "test")
    assert train["park birds.wav"]["captions"] == caps
    assert train["park birds.wav"]["caption_styles"] == ["short"] * 5
    assert test["street.wav"]["captions"] == caps[::-1]
    assert train["park birds.wav"]["source"] == "clotho_v2"
    assert_features(train["park birds.wav"], src / "development/park birds.wav")
    assert_features(test["street.wav"], src / "evaluation/street.wav")


def test_wavcaps_json_per_subsource(tmp_path):
    src = tmp_path / "src"
    write_audio(src / "FreeSound/101.flac", 0.8, seed=1)
    write_audio(src / "bbc/x/07001.wav", 1.1, seed=2)
    write_audio(tmp_path / "elsewhere/Yabc.wav", 0.6, seed=3)
    (src / "FreeSound.json").write_text(
        json.dumps(
            {"data": [{"id": "101", "file_name": "101.flac", "caption": "a door", "duration": 0.8}]}
        )
    )
    (src / "BBC_Sound_Effects.json").write_text(
        json.dumps({"data": [{"id": "07001", "wav_path": "bbc/x/07001.wav", "caption": "wind"}]})
    )
    (src / "AudioSet_SL.json").write_text(
        json.dumps(
            {
                "data": [
                    {
                        "id": "Yabc.wav",
                        "audio": str(tmp_path / "elsewhere/Yabc.wav"),
                        "caption": "music plays",
                    }
                ]
            }
        )
    )
    builder = build_dataset(src, tmp_path / "data", format="wavcaps")
    train = read_split(builder, "train")
    assert sorted(train) == ["AudioSet_SL/Yabc.wav", "BBC_Sound_Effects/07001", "FreeSound/101"]
    assert train["BBC_Sound_Effects/07001"]["captions"] == ["wind"]
    assert train["FreeSound/101"]["caption_styles"] == ["short"]
    assert_features(train["FreeSound/101"], src / "FreeSound/101.flac")
    assert_features(train["BBC_Sound_Effects/07001"], src / "bbc/x/07001.wav")
    assert_features(train["AudioSet_SL/Yabc.wav"], tmp_path / "elsewhere/Yabc.wav")


def lhotse_cut(cut_id, start, duration, source, supervisions):
    return {
        "id": cut_id,
        "start": start,
        "duration": duration,
        "channel": 0,
        "supervisions": supervisions,
        "recording": {
            "id": "rec",
            "sources": [{"type": "file", "channels": [0], "source": source}],
            "sampling_rate": RATE,
            "num_samples": 2 * RATE,
            "duration": 2.0,
        },
        "type": "MonoCut",
    }


def write_cuts(path, cuts) -> None:
    path.write_bytes(gzip.compress("".join(json.dumps(c) + "\n" for c in cuts).encode()))


def test_lhotse_cuts_are_segments(tmp_path):
    src = tmp_path / "src"
    write_audio(src / "wav/rec.wav", 2.0, seed=5)
    sup = {"id": "s", "recording_id": "rec", "start": 0.0, "duration": 0.8, "channel": 0}
    write_cuts(
        src / "cuts_train.jsonl.gz",
        [
            lhotse_cut(
                "c1", 0.25, 0.8, "wav/rec.wav", [{**sup, "custom": {"caption": ["x", "y"]}}]
            ),
            lhotse_cut("c2", 1.0, 0.9, "wav/rec.wav", [{**sup, "text": "z"}]),
        ],
    )
    write_cuts(
        src / "clotho_cuts_valid.jsonl.gz",
        [
            lhotse_cut(
                "c3", 0.0, 2.0, str(src / "wav/rec.wav"), [{**sup, "custom": {"caption": "w"}}]
            )
        ],
    )
    builder = build_dataset(src, tmp_path / "data", format="lhotse", name="captionstew")
    train, val = read_split(builder, "train"), read_split(builder, "validation")
    assert train["c1"]["captions"] == ["x", "y"]
    assert train["c2"]["captions"] == ["z"]
    assert val["c3"]["captions"] == ["w"]
    assert_features(train["c1"], src / "wav/rec.wav", 4000, 4000 + 12800)
    assert_features(train["c2"], src / "wav/rec.wav", 16000, 16000 + 14400)
    assert_features(val["c3"], src / "wav/rec.wav")


@pytest.mark.parametrize(
    ("name", "split"),
    [
        ("cuts_train.jsonl.gz", "train"),
        ("audiocaps_cuts_val.jsonl.gz", "validation"),
        ("clotho_dev.jsonl.gz", "validation"),
        ("clotho_development.jsonl.gz", "train"),
        ("cuts_eval.jsonl.gz", "test"),
        ("test-cuts.jsonl.gz", "test"),
    ],
)
def test_lhotse_split_from_file_name(tmp_path, name, split):
    assert split_of(tmp_path / name) == split


def test_cap_length_windows_and_truncation():
    wave = np.arange(10.0)
    pieces, note = cap_length(wave, 4, "window")
    assert note == "long_clip_windowed"
    assert [s for s, _ in pieces] == ["#w0", "#w1", "#w2"]
    assert [p.tolist() for _, p in pieces] == [[0, 1, 2, 3], [4, 5, 6, 7], [6, 7, 8, 9]]
    pieces, note = cap_length(wave, 4, "truncate")
    assert (note, [s for s, _ in pieces], pieces[0][1].tolist()) == (
        "long_clip_truncated",
        [""],
        [0, 1, 2, 3],
    )
    assert cap_length(wave, 10, "window")[1] is None


@pytest.mark.parametrize("policy", ["window", "truncate"])
def test_long_clips_in_a_build(tmp_path, policy):
    src = tmp_path / "src"
    write_audio(src / "long.wav", 2.5, seed=7)
    write_audio(src / "short.wav", 0.9, seed=8)
    rows = [
        {
            "id": i,
            "split": "train",
            "audio": f"{i}.wav",
            "captions": [{"text": i, "style": "short"}],
        }
        for i in ("long", "short")
    ]
    write_jsonl(src / "manifest.jsonl", rows)
    builder = build_dataset(src, tmp_path / "data", max_seconds=1.0, long_clip_policy=policy)
    train = read_split(builder, "train")
    if policy == "window":
        assert sorted(train) == ["long#w0", "long#w1", "long#w2", "short"]
        for k, start in enumerate([0, 16000, 24000]):
            assert train[f"long#w{k}"]["captions"] == ["long"]
            assert_features(train[f"long#w{k}"], src / "long.wav", start, start + 16000)
    else:
        assert sorted(train) == ["long", "short"]
        assert_features(train["long"], src / "long.wav", 0, 16000)
    assert_features(train["short"], src / "short.wav")
    report = json.loads((builder.data_path / "build_report.train.json").read_text())
    note = {"window": "long_clip_windowed", "truncate": "long_clip_truncated"}[policy]
    assert report["long_clips"] == {note: {"count": 1, "ids": ["long"]}}
    assert report["totals"]["clips_written"] == 2
    assert report["totals"]["examples_written"] == len(train)


def test_workers_give_the_same_examples(tmp_path):
    src = tmp_path / "src"
    rows = []
    for k in range(6):
        write_audio(src / f"{k}.wav", 0.5 + 0.1 * k, seed=k)
        rows.append(
            {
                "id": f"k{k}",
                "split": "train",
                "audio": f"{k}.wav",
                "captions": [{"text": f"clip {k}", "style": "short"}],
            }
        )
    write_jsonl(src / "manifest.jsonl", rows)
    inline = read_split(build_dataset(src, tmp_path / "a"), "train")
    pooled = read_split(build_dataset(src, tmp_path / "b", workers=2), "train")
    assert sorted(inline) == sorted(pooled) == [f"k{k}" for k in range(6)]
    for key, ex in inline.items():
        np.testing.assert_array_equal(ex["features"], pooled[key]["features"])
        assert ex["captions"] == pooled[key]["captions"]


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("format", "mp3dir"),
        ("name", "Bad-Name"),
        ("name", "librispeech"),
        ("max_seconds", 0),
        ("long_clip_policy", "loop"),
        ("workers", -1),
        ("caption_style", "poem"),
        ("splits", ("train", "nosuch")),
    ],
)
def test_bad_options_fail_naming_the_key(tmp_path, option, value):
    write_jsonl(tmp_path / "manifest.jsonl", [{"id": "a", "split": "train", "audio": "a.wav"}])
    with pytest.raises(ValueError, match=f"build option {option}="):
        build_dataset(tmp_path, tmp_path / "data", **{option: value})


def test_missing_source_fails_at_start(tmp_path):
    with pytest.raises(ValueError, match="build option source_dir="):
        build_dataset(tmp_path / "nowhere", tmp_path / "data")
    with pytest.raises(ValueError, match=r"build option source_dir=.*no clotho manifest"):
        build_dataset(tmp_path, tmp_path / "data", format="clotho")


def test_report_keeps_at_most_n_ids():
    report = BuildReport("x", "train", max_ids=2)
    for clip in ("a", "b", "c"):
        report.count("skipped_clips", "silent", clip)
    assert report.to_dict()["skipped_clips"] == {"silent": {"count": 3, "ids": ["a", "b"]}}
    assert report.to_dict()["totals"]["clips_skipped"] == 3


def _one_clip_source(tmp_path):
    """A demo-format source of one half-second clip, "a", in the train split."""
    src = tmp_path / "src"
    write_audio(src / "a.wav", 0.5)
    caption = [{"text": "t", "style": "short"}]
    write_jsonl(
        src / "manifest.jsonl",
        [{"id": "a", "split": "train", "audio": "a.wav", "captions": caption}],
    )
    return src


def test_command_line(tmp_path, capsys):
    src = _one_clip_source(tmp_path)
    main([f"--source_dir={src}", f"--data_dir={tmp_path / 'data'}", "--name=tiny", "--workers=1"])
    out = capsys.readouterr().out
    assert "build report: tiny / train" in out
    assert (tmp_path / f"data/tiny/{DATASET_VERSION}/build_report.train.json").is_file()
    main([f"--source_dir={src}", f"--data_dir={tmp_path / 'data'}", "--name=tiny"])
    assert "exists; kept it" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="build option long_clip_policy="):
        main([f"--source_dir={src}", f"--data_dir={tmp_path}", "--long_clip_policy=x"])
    bad = {
        "--no_features": "build option store_features=False",
        "--frontend=mfcc": "build option frontend='mfcc'",
        '--frontend_options={"bogus": 1}': "'fbank.bogus'",
        "--frontend_options=[1]": "frontend_options: must be a JSON object",
    }
    for flag, message in bad.items():
        with pytest.raises(SystemExit, match=message):
            main([f"--source_dir={src}", f"--data_dir={tmp_path}", flag])


def test_the_module_runs_as_a_command():
    done = subprocess.run(
        [sys.executable, "-m", "audiolm_pt.data.builders", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0
    assert "--frontend_options" in done.stdout


def test_a_log_mel_waveform_only_dataset(tmp_path):
    """--frontend=log_mel --no_features --store_waveform: the records carry FLAC audio and
    the log-mel frame count, no features; the metadata names the front end."""
    src = _one_clip_source(tmp_path)
    main(
        [
            f"--source_dir={src}",
            f"--data_dir={tmp_path / 'data'}",
            "--frontend=log_mel",
            '--frontend_options={"n_mels": 32, "top_db": null}',
            "--store_waveform",
            "--no_features",
        ]
    )
    builder = open_dataset(tmp_path / "data", "demo")
    meta = builder.info.metadata
    assert (meta["frontend"], meta["store_features"], meta["store_waveform"]) == (
        "log_mel",
        False,
        True,
    )
    assert meta["frontend_options"] == dataclasses.asdict(LogMelConfig(n_mels=32, top_db=None))
    ex = read_split(builder, "train")["a"]
    _, wave = reference(src / "a.wav")
    assert ex["features"].shape == (0, 32)
    assert ex["num_frames"] == num_log_mel_frames(wave.size, LogMelConfig()) == 51
    expected = np.clip(np.round(wave * 32768.0), -32768, 32767).astype(np.int16)
    np.testing.assert_array_equal(decode_waveform(ex["waveform"]), expected)
