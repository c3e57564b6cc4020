"""Fault injection: damage a run's inputs or outputs on purpose and check that nothing is lost
silently and nothing wrong is reported (issue 15). Each test fails on the code before its fix.

So far: caption manifests (CSV) with an unbalanced quote, a byte-order mark, duplicated rows;
a dataset that is not where data_dir points; evaluation options that are not a JSON object.
"""

import json

import pytest
from test_builders_formats import read_split, write_audio

from audiolm_pt.data import pipeline
from audiolm_pt.data.builders.tfds_builder import build_dataset
from audiolm_pt.evaluate import __main__ as evaluate_cli


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
