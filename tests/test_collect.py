"""Result collection: hand-built run directories → one tidy table with exact rows and values,
bad input skipped and counted, Parquet round trip, the command line."""

import json
import math

import pandas as pd
import pytest

from audiolm_pt import collect

COLUMNS = [
    "run",
    "sweep",
    "objective",
    "data_fraction",
    "init",
    "num_train_clips",
    "global_batch_size",
    "status",
    "step",
    "examples_seen",
    "source",
    "metric",
    "value",
]


def _write(path, value) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(value if isinstance(value, str) else json.dumps(value))


def _lines(*rows) -> str:
    return "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows)


@pytest.fixture
def root(tmp_path):
    """Three runs: two sweep points (one resumed and failed) and a run outside any sweep."""
    a = tmp_path / "sweep" / "contrastive_f0.1"
    _write(a / "config.json", {"data": {"pipeline": {"global_batch_size": 32}}})
    _write(
        a / "sweep_point.json",
        {
            "sweep": "study",
            "tags": {"objective": "contrastive", "data_fraction": 0.1},
            "status": "done",
        },
    )
    _write(
        a / "data_info.json",
        {
            "demo": {"records": 100, "kept": 10, "fraction": 0.1},
            "extra": {"records": 50, "kept": 5, "fraction": 0.1},
        },
    )
    _write(
        a / "metrics.jsonl",
        _lines(
            {"step": 10, "loss": 2.5, "lr": 0.001},
            {"step": 20, "loss": 2.0, "lr": 0.002},
            {"step": 20, "eval/heldout_loss/loss": 2.2, "eval/heldout_loss/a2t_top1": 0.1},
            # Logged by the evaluator and also in eval/20.json (which wins) ...
            {"step": 20, "eval/retrieval/audio_to_text/R@1": 0.99},
            "{not json",
            # ... while this evaluator's JSON file is gone: the logged scalar is kept.
            {"step": 20, "eval/zero_shot/language/accuracy": 0.4},
        ),
    )
    _write(
        a / "eval" / "20.json",
        {
            "step": 20,
            "dataset": {"skipped": {"test": {"too_short": 3}}},
            "results": {
                "retrieval": {
                    "audio_to_text": {"R@1": 0.25, "R@5": 0.5},
                    "num_clips": 10,
                    "note": "text is not a metric",
                },
                "linear_probe": {
                    "voice": {"mean": {"test": 0.75, "C": 0.1}, "metric": "accuracy"},
                    "flag": True,
                },
            },
        },
    )
    _write(a / "eval" / "20_captions.tsv", "id\treference\n")
    b = tmp_path / "sweep" / "captioning_f1"
    _write(b / "config.json", {"data": {"pipeline": {"global_batch_size": 16}}})
    _write(
        b / "sweep_point.json",
        {
            "sweep": "study",
            "tags": {"objective": "captioning", "data_fraction": 1.0, "init": "scratch"},
            "status": "failed",
        },
    )
    _write(
        b / "metrics.jsonl",
        _lines({"step": 10, "loss": 3.0}, {"step": 10, "loss": 2.9}, {"step": 15, "loss": 2.8}),
    )
    _write(b / "eval" / "15.json", "{truncated")
    c = tmp_path / "loose"
    _write(c / "config.json", {"data": {"pipeline": {"global_batch_size": 8}}})
    _write(
        c / "metrics.jsonl",
        _lines({"loss": 1.0}, {"step": 5, "loss": "high", "grad_norm": 0.5}, ["a list"]),
    )
    (c / "checkpoints" / "5").mkdir(parents=True)
    _write(c / "checkpoints" / "5" / "config.json", {})  # inside checkpoints: not a run
    return tmp_path


def _rows(table, run):
    part = table[table["run"] == run]
    return {(r.source, r.step, r.metric): r.value for r in part.itertuples()}


def test_rows_and_values_are_exact(root):
    result = collect.collect(str(root))
    table = result.table
    assert list(table.columns) == COLUMNS
    assert result.runs == ["loose", "sweep/captioning_f1", "sweep/contrastive_f0.1"]
    assert _rows(table, "sweep/contrastive_f0.1") == {
        ("train", 10, "loss"): 2.5,
        ("train", 10, "lr"): 0.001,
        ("train", 20, "loss"): 2.0,
        ("train", 20, "lr"): 0.002,
        ("heldout", 20, "loss"): 2.2,
        ("heldout", 20, "a2t_top1"): 0.1,
        ("eval", 20, "retrieval/audio_to_text/R@1"): 0.25,
        ("eval", 20, "retrieval/audio_to_text/R@5"): 0.5,
        ("eval", 20, "retrieval/num_clips"): 10.0,
        ("eval", 20, "linear_probe/voice/mean/test"): 0.75,
        ("eval", 20, "linear_probe/voice/mean/C"): 0.1,
        ("eval", 20, "zero_shot/language/accuracy"): 0.4,
    }
    a = table[table["run"] == "sweep/contrastive_f0.1"]
    assert set(a["sweep"]) == {"study"}
    assert set(a["objective"]) == {"contrastive"}
    assert set(a["data_fraction"]) == {0.1}
    assert a["init"].isna().all()  # this point has no such tag
    assert set(a["num_train_clips"]) == {15}
    assert set(a["status"]) == {"done"}
    assert (a["examples_seen"] == a["step"] * 32).all()
    assert _rows(table, "sweep/captioning_f1") == {
        ("train", 10, "loss"): 2.9,  # the resumed run's value
        ("train", 15, "loss"): 2.8,
    }
    b = table[table["run"] == "sweep/captioning_f1"]
    assert b["num_train_clips"].isna().all()  # no data_info.json
    assert list(b["examples_seen"]) == [160, 240]
    assert set(b["init"]) == {"scratch"}
    loose = table[table["run"] == "loose"]
    assert _rows(table, "loose") == {("train", 5, "grad_norm"): 0.5}
    assert loose["sweep"].isna().all()
    assert loose["status"].isna().all()
    assert loose["objective"].isna().all()
    assert list(loose["examples_seen"]) == [40]


def test_bad_input_is_counted_by_reason(root):
    result = collect.collect(str(root))
    assert result.skipped == {
        "eval/<step>.json: unreadable": 1,
        "metrics.jsonl: line without an integer step": 2,
        "metrics.jsonl: non-numeric value": 1,
        "metrics.jsonl: unreadable line": 1,
        "rows superseded by a later log of the same step": 1,
    }
    summary = result.summary()
    assert "3 runs, 15 rows" in summary
    assert "point sweep/captioning_f1: failed" in summary
    assert "skipped 1: eval/<step>.json: unreadable" in summary


def test_parquet_and_csv_round_trip(root, tmp_path):
    result = collect.collect(str(root))
    out = str(tmp_path / "out" / "results.parquet")
    paths = collect.write(result, out, csv=True)
    assert paths == [out, str(tmp_path / "out" / "results.csv")]
    back = pd.read_parquet(out)
    pd.testing.assert_frame_equal(back, result.table, check_dtype=False)
    assert str(back["step"].dtype) == "Int64"
    csv = pd.read_csv(paths[1])
    assert len(csv) == len(result.table)
    assert math.isclose(csv["value"].sum(), result.table["value"].sum())


def test_command_line_writes_under_root_by_default(root, capsys):
    assert collect.main([f"--root={root}"]) == 0
    assert "3 runs, 15 rows" in capsys.readouterr().out
    assert len(pd.read_parquet(root / "results.parquet")) == 15
    assert collect.main([f"--root={root / 'missing'}"]) == 2


def test_a_tag_named_like_a_column_is_prefixed(tmp_path):
    _write(tmp_path / "r" / "config.json", {"data": {"pipeline": {"global_batch_size": 2}}})
    _write(tmp_path / "r" / "sweep_point.json", {"tags": {"step": "x"}, "status": "done"})
    _write(tmp_path / "r" / "metrics.jsonl", _lines({"step": 3, "loss": 1.5}))
    table = collect.collect(str(tmp_path)).table
    assert list(table["tag_step"]) == ["x"]
    assert list(table["step"]) == [3]
