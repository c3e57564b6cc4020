"""Reading a run directory for inspection: metrics.jsonl of a resumed run (a step logged twice
keeps its last line), evaluated steps, the probe table and missing artefacts."""

import json
import math

import pytest

from audiolm_pt.analysis import run_files


def _write_lines(path, lines):
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))


def test_metrics_of_a_resumed_run(tmp_path):
    _write_lines(
        tmp_path / "metrics.jsonl",
        [
            {"step": 10, "loss": 3.0, "lr": 0.1},
            {"step": 20, "loss": 2.5, "lr": 0.2},
            {"step": 20, "eval/heldout_loss/loss": 2.9},
            {"step": 20, "loss": 2.4, "lr": 0.2},  # the resumed run logs step 20 again
            {"step": 30, "eval/zero_shot/domain/accuracy": 0.5},
            {"step": 30, "loss": 2.0, "lr": 0.3},
        ],
    )
    train = run_files.read_train_metrics(tmp_path)
    assert train[["step", "loss"]].values.tolist() == [[10, 3.0], [20, 2.4], [30, 2.0]]
    heldout = run_files.read_heldout_loss(tmp_path)
    assert heldout.values.tolist() == [[20, 2.9]]


def test_metrics_without_training_lines(tmp_path):
    _write_lines(tmp_path / "metrics.jsonl", [{"step": 5, "eval/x": 1.0}])
    with pytest.raises(ValueError, match="no training line"):
        run_files.read_train_metrics(tmp_path)
    assert run_files.read_heldout_loss(tmp_path).empty


def test_steps_and_missing_artefacts(tmp_path):
    with pytest.raises(FileNotFoundError, match="no eval"):
        run_files.resolve_step(tmp_path, None)
    (tmp_path / "eval").mkdir()
    for step in (50, 400, 1000):
        (tmp_path / "eval" / f"{step}.json").write_text(json.dumps({"results": {}}))
    (tmp_path / "eval" / "400_retrieval_examples.json").write_text("{}")
    assert run_files.eval_steps(tmp_path) == [50, 400, 1000]
    assert run_files.resolve_step(tmp_path, None) == 1000
    assert run_files.resolve_step(tmp_path, 50) == 50
    with pytest.raises(FileNotFoundError, match=r"evaluated: \[50, 400, 1000\]"):
        run_files.resolve_step(tmp_path, 60)
    assert run_files.caption_samples(tmp_path, 1000) is None
    assert run_files.retrieval_examples(tmp_path, 1000) is None
    assert run_files.linear_probe_table({}) is None
    assert run_files.confusions({"zero_shot": {"scoring": "embedding"}}) == {}


def test_linear_probe_table():
    baselines = {"logmel_stats": {"test": 0.45}, "mfcc_stats": {"test": 0.3}}
    results = {
        "linear_probe": {
            "voice": {
                "metric": "accuracy",
                "chance": 0.25,
                "mean": {
                    "C": 1.0,
                    "valid": 0.5,
                    "test": 0.4,
                    "baselines": baselines,
                    "gain": -0.05,
                },
                "attention": {"valid": 0.7, "test": 0.6},
                "num_clips": {"train": 10, "valid": 5, "test": 6},
            },
            "absent": {"unavailable": "no training clip has label 'absent'"},
        }
    }
    table = run_files.linear_probe_table(results)
    row = table.loc[("voice", "mean")]
    assert row[["model", "log-mel", "MFCC", "gain", "test clips"]].tolist() == [
        0.4, 0.45, 0.3, -0.05, 6
    ]  # fmt: skip
    assert table.loc[("voice", "attention"), "valid"] == 0.7
    assert math.isnan(table.loc[("voice", "attention"), "gain"])
    assert math.isnan(table.loc[("absent", ""), "model"])
    assert table.loc[("absent", ""), "note"].startswith("no training clip")
