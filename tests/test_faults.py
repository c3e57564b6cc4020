"""Fault injection: damage a run's inputs or outputs on purpose and check that nothing is lost
silently and nothing wrong is reported (issue 15). Each test fails on the code before its fix.

Here: caption manifests (CSV) with an unbalanced quote, a byte-order mark, duplicated rows;
a dataset that is not where data_dir points; evaluation options that are not a JSON object;
a truncated WAV; the embed CLI's output directory, atomic outputs, stale errors file and
bounded memory; a clip-limited evaluation beside the full one. Checkpoint faults are in
`test_faults_checkpoints.py`, killed workers in `test_faults_processes.py`.
"""

import dataclasses
import json
import os

import numpy as np
import pytest
import soundfile as sf
from test_api import tiny_run
from test_builders_formats import read_split, write_audio
from test_evaluate_suite import _run, _split

from audiolm_pt import collect, embed, experiment
from audiolm_pt.analysis import run_files
from audiolm_pt.api import AudioModel
from audiolm_pt.audio import AudioError, load_audio
from audiolm_pt.data import pipeline
from audiolm_pt.data.builders.tfds_builder import build_dataset
from audiolm_pt.evaluate import __main__ as evaluate_cli
from audiolm_pt.evaluate import context as context_lib
from audiolm_pt.evaluate import runner
from audiolm_pt.evaluate.context import DataSpec
from audiolm_pt.evaluate.data import Split


def _report(builder, split: str) -> dict:
    return json.loads((builder.data_path / f"build_report.{split}.json").read_text())


def test_an_unbalanced_quote_spoils_its_row_only(tmp_path):
    """A CSV reader would read every row after the stray quote as one caption; the builder
    keeps the rows after it and counts the damaged one."""
    src = tmp_path / "clotho"
    lines = ["file_name,caption_1,caption_2"]
    for k in range(5):
        write_audio(src / "development" / f"c{k}.wav", 0.5)
        caption = '"a dog barks, loudly' if k == 1 else f"clip {k} plays"
        lines.append(f"c{k}.wav,{caption},a second caption {k}")
    (src / "clotho_captions_development.csv").write_text("\n".join(lines) + "\n")
    builder = build_dataset(src, tmp_path / "data", format="clotho")
    train = read_split(builder, "train")
    assert sorted(train) == ["c0.wav", "c2.wav", "c3.wav", "c4.wav"]
    assert train["c4.wav"]["captions"] == ["clip 4 plays", "a second caption 4"]
    report = _report(builder, "train")
    bad = {"unbalanced quotes": {"count": 1, "ids": ["clotho_captions_development.csv:3"]}}
    assert report["malformed_rows"] == bad


def test_a_byte_order_mark_and_a_duplicated_row(tmp_path):
    """A spreadsheet's UTF-8 BOM before the header is not part of the first column's name;
    an exactly repeated row is counted, not a second copy of the same caption."""
    src = tmp_path / "audiocaps"
    write_audio(src / "audio/val/yt1.wav", 0.5)
    write_audio(src / "audio/val/yt2.wav", 0.5)
    rows = [
        "audiocap_id,youtube_id,start_time,caption",
        "1,yt1,0,a bird sings",
        "2,yt1,0,birds chirp at dawn",
        "1,yt1,0,a bird sings",
        "3,yt2,0,rain on a roof",
    ]
    (src / "val.csv").write_bytes(b"\xef\xbb\xbf" + "\n".join(rows).encode() + b"\n")
    builder = build_dataset(src, tmp_path / "data", format="audiocaps")
    val = read_split(builder, "validation")
    assert sorted(val) == ["yt1", "yt2"]
    assert val["yt1"]["captions"] == ["a bird sings", "birds chirp at dawn"]
    report = _report(builder, "validation")
    assert report["malformed_rows"] == {"duplicate row": {"count": 1, "ids": ["val.csv:4"]}}


def test_a_missing_dataset_is_one_line_naming_the_directory_and_the_flags(tmp_path):
    """TFDS's own error lists its whole catalogue, hundreds of lines."""
    nowhere = str(tmp_path / "moved")
    with pytest.raises(pipeline.DatasetNotFoundError) as error:
        pipeline.tfds_source("demo", "train", nowhere)
    message = str(error.value)
    assert len(message.splitlines()) == 1
    assert nowhere in message
    assert "--config.data.data_dir" in message
    assert "--data_dir" in message


@pytest.mark.parametrize(
    ("options", "message"),
    [("{bad", "--options: not JSON"), ("[1]", "--options: must be a JSON object")],
)
def test_bad_evaluate_options_are_one_line(options, message):
    with pytest.raises(SystemExit, match=message):
        evaluate_cli.main(["--workdir=unused", "--evals=retrieval", f"--options={options}"])


def test_a_truncated_wav_is_reported_not_read_in_part(tmp_path):
    """libsndfile reads the samples that are there; the header says how many should be."""
    whole = tmp_path / "whole.wav"
    sf.write(whole, np.zeros(16000, np.float32) + 0.1, 16000, subtype="PCM_16")
    data = whole.read_bytes()
    cut = tmp_path / "cut.wav"
    cut.write_bytes(data[: len(data) // 2])
    assert load_audio(whole, 16000).size == 16000
    for source in (cut, cut.read_bytes()):
        with pytest.raises(AudioError, match="of the 16000 frames its header declares") as error:
            load_audio(source, 16000)
        assert error.value.reason == "truncated_audio"


def test_embed_checks_its_output_directory_before_any_work(tmp_path):
    listing = tmp_path / "files.txt"
    listing.write_text("a.wav\n")
    out = str(tmp_path / "missing" / "emb.npy")
    # The run directory does not exist either: the output check must come first.
    with pytest.raises(SystemExit, match="is not a writable directory"):
        embed.main(["--workdir=unused", f"--input={listing}", f"--output={out}"])


def test_embed_outputs_are_whole_or_absent_and_a_stale_errors_file_goes(tmp_path, monkeypatch):
    out = str(tmp_path / "emb.npy")
    embed.write_outputs(out, np.ones((2, 3)), {"bad.wav": "undecodable"})
    with open(out + ".errors.json") as f:
        assert json.load(f) == {"bad.wav": "undecodable"}
    embed.write_outputs(out, np.zeros((2, 3)), {})
    assert not os.path.exists(out + ".errors.json")  # a clean run leaves no stale errors

    def dies_half_way(f, array):
        f.write(b"\x93NUMPY partial")
        raise OSError("disk full")

    monkeypatch.setattr(embed.np, "save", dies_half_way)
    with pytest.raises(OSError, match="disk full"):
        embed.write_outputs(out, np.full((2, 3), 7.0), {})
    np.testing.assert_array_equal(np.load(out), np.zeros((2, 3)))  # the last whole output
    assert sorted(os.listdir(tmp_path)) == ["emb.npy"]


def test_embed_files_holds_one_chunk_of_features_at_a_time(monkeypatch):
    model = AudioModel(tiny_run(), batch_size=4)
    rng = np.random.default_rng(0)
    fake = {f"{i}.wav": rng.standard_normal((50 + i, 80)).astype(np.float32) for i in range(10)}
    fake["bad.wav"] = None

    def features(path):
        if fake[path] is None:
            raise AudioError("undecodable", path, "not audio")
        return fake[path]

    sizes = []
    embed_features = model.embed_features

    def recorded(batch):
        sizes.append(len(batch))
        return embed_features(batch)

    monkeypatch.setattr(model, "features", features)
    monkeypatch.setattr(model, "embed_features", recorded)
    paths = [*list(fake)[:4], "bad.wav", *list(fake)[4:10]]
    chunked, errors = model.embed_files(paths, chunk=3)
    assert max(sizes) <= 3
    assert list(errors) == ["bad.wav"]
    whole, _ = model.embed_files(paths, chunk=len(paths))
    np.testing.assert_allclose(chunked, whole, atol=1e-6, equal_nan=True)
    assert np.isnan(chunked[4]).all()
    assert not np.isnan(np.delete(chunked, 4, axis=0)).any()


def _evaluable_run(tmp_path, monkeypatch):
    """A run directory with 12 test clips read from memory (`limit` honoured)."""
    run = _run("contrastive", tmp_path)
    experiment.write(run.config, str(tmp_path))
    test_clips = _split(12, 2).clips
    monkeypatch.setattr(
        context_lib,
        "read_split",
        lambda name, split, data_dir, limit, cfg: Split(test_clips[:limit], {}),
    )
    return run, DataSpec.from_config(run.config)


def test_a_limited_evaluation_never_replaces_the_full_one(tmp_path, monkeypatch):
    """`--limit=40` used to overwrite eval/<step>.json and add a second row for the step that
    `collect` preferred; now it is filed, logged and collected as a variant."""
    run, full = _evaluable_run(tmp_path, monkeypatch)
    options = {"retrieval": {"num_examples": 2}}
    for data in (full, dataclasses.replace(full, limit=5)):
        results = runner.evaluate_run(run, ["retrieval"], options, data=data)
        runner.write_results(run.workdir, run.step, results)
    eval_dir = tmp_path / "eval"
    assert sorted(os.listdir(eval_dir)) == [
        "0.json",
        "0.limit5.json",
        "0.limit5_retrieval_examples.json",
        "0_retrieval_examples.json",
    ]
    standard = json.loads((eval_dir / "0.json").read_text())
    limited = json.loads((eval_dir / "0.limit5.json").read_text())
    assert standard["results"]["retrieval"]["num_captions"] == 2 * 12
    assert (standard["variant"], standard["dataset"]["limit"]) == ("", None)
    assert limited["results"]["retrieval"]["num_captions"] == 2 * 5
    assert (limited["variant"], limited["dataset"]["limit"]) == ("limit5", 5)
    assert run_files.eval_steps(tmp_path) == [0]
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [sorted(row)[0] for row in rows] == [
        "eval/retrieval/audio_to_text/R@1",
        "eval@limit5/retrieval/audio_to_text/R@1",
    ]
    table = collect.collect(str(tmp_path)).table
    captions = table[table["metric"] == "retrieval/num_captions"]
    assert dict(zip(captions["source"], captions["value"], strict=True)) == {
        "eval": 24.0,
        "eval@limit5": 10.0,
    }


def test_a_caption_of_5000_characters_is_kept_and_noted(tmp_path):
    src = tmp_path / "clotho"
    long_caption = "a dog barks " * 417  # 5,004 characters, as a merged row would give
    lines = ["file_name,caption_1", f"c0.wav,{long_caption}", "c1.wav,a short caption"]
    for k in range(2):
        write_audio(src / "development" / f"c{k}.wav", 0.5)
    (src / "clotho_captions_development.csv").write_text("\n".join(lines) + "\n")
    builder = build_dataset(src, tmp_path / "data", format="clotho")
    assert read_split(builder, "train")["c0.wav"]["captions"] == [long_caption.strip()]
    report = _report(builder, "train")
    assert report["long_captions"] == {"over_1000_chars": {"count": 1, "ids": ["c0.wav"]}}


def test_an_evaluation_with_other_options_is_filed_beside_the_first(tmp_path, monkeypatch):
    """Zero-shot run again with other tasks used to replace the demo's figures in place."""
    run, full = _evaluable_run(tmp_path, monkeypatch)
    for num_examples in (2, 3, 2):
        options = {"retrieval": {"num_examples": num_examples}}
        results = runner.evaluate_run(run, ["retrieval"], options, data=full)
        runner.write_results(run.workdir, run.step, results)
    eval_dir = tmp_path / "eval"
    (other,) = [p.name for p in eval_dir.glob("0.opts*.json") if "_" not in p.name]
    variant = other[len("0.") : -len(".json")]
    assert sorted(os.listdir(eval_dir)) == sorted(
        ["0.json", "0_retrieval_examples.json", other, f"0.{variant}_retrieval_examples.json"]
    )
    for name, count in (("0", 2), (f"0.{variant}", 3)):
        saved = json.loads((eval_dir / f"{name}.json").read_text())
        assert saved["options"] == {"retrieval": {"num_examples": count}}
        examples = json.loads((eval_dir / f"{name}_retrieval_examples.json").read_text())
        assert len(examples["text_to_audio"]) == count
    sources = set(collect.collect(str(tmp_path)).table["source"])
    assert sources == {"eval", f"eval@{variant}"}
