"""The results-table helpers on small hand-made tables: validation, arms, last-step
selection, headline and family metrics, fits, the summary pivot, the tagging-init gain and the
markdown table, against values computed by hand."""

import json
import math

import numpy as np
import pandas as pd
import pytest

from audiolm_pt import collect
from audiolm_pt.analysis import tables


def _row(run, metric, value, *, step=100, objective="contrastive", init="scratch", fraction=1.0,
         status="done", source="eval", size="tiny"):  # fmt: skip
    return {
        "run": run,
        "sweep": "s",
        "objective": objective,
        "data_fraction": fraction,
        "init": init,
        "model_size": size,
        "num_train_clips": int(fraction * 1000),
        "global_batch_size": 4,
        "status": status,
        "step": step,
        "examples_seen": 4 * step,
        "source": source,
        "metric": metric,
        "value": value,
    }


def test_load_results_names_missing_columns(tmp_path):
    path = tmp_path / "r.csv"
    pd.DataFrame([_row("a", "loss", 1.0)]).drop(columns=["status", "value"]).to_csv(path)
    with pytest.raises(ValueError, match=r"\['status', 'value'\]"):
        tables.load_results(path)
    good = tmp_path / "r.parquet"
    pd.DataFrame([_row("a", "loss", 1.0)]).to_parquet(good)
    assert tables.load_results(good)["value"].tolist() == [1.0]


def test_clean_counts_bad_values_and_labels_arms():
    table = pd.DataFrame(
        [
            _row("a", "loss", 1.0),
            _row("a", "loss", np.nan),
            _row("b", "loss", np.inf, init="tagging"),
            _row("b", "loss", 2.0, init="tagging"),
        ]
    )
    out, skipped = tables.clean(table)
    assert skipped == {"non_finite_value": 2}
    assert out["arm"].tolist() == ["contrastive", "contrastive+tagging-init"]
    two_sizes = pd.DataFrame([_row("a", "loss", 1.0), _row("c", "loss", 1.0, size="small")])
    assert tables.clean(two_sizes)[0]["arm"].tolist() == ["contrastive@tiny", "contrastive@small"]


def test_final_eval_takes_the_last_step_of_finished_runs():
    table = pd.DataFrame(
        [
            _row("a", "m", 0.5, step=200),
            _row("a", "m", 0.1, step=100),
            _row("a", "loss", 3.0, step=300, source="train"),
            _row("b", "m", 0.9, status="failed"),
        ]
    )
    final, unfinished = tables.final_eval(tables.clean(table)[0])
    assert unfinished == {"b": "failed"}
    assert final[["run", "metric", "step", "value"]].values.tolist() == [["a", "m", 200, 0.5]]


def test_matching_keeps_pattern_order():
    names = [
        "zero_shot/domain/accuracy",
        "linear_probe/voice/mean/valid",
        "linear_probe/voice/mean/test",
        "retrieval/text_to_audio/R@1",
        "retrieval/audio_to_text/R@1",
        "retrieval/audio_to_text/R@10",
        "zero_shot/domain/mAP",
    ]
    assert tables.matching(names) == [
        "retrieval/audio_to_text/R@1",
        "retrieval/text_to_audio/R@1",
        "zero_shot/domain/accuracy",
        "linear_probe/voice/mean/test",
    ]


def _final(rows):
    return tables.final_eval(tables.clean(pd.DataFrame(rows))[0])[0]


def test_family_scores_average_the_tasks_every_run_has():
    final = _final(
        [
            _row("a", "zero_shot/x/accuracy", 0.2),
            _row("a", "zero_shot/y/accuracy", 0.4),
            _row("b", "zero_shot/x/accuracy", 0.6),  # b lacks task y: only x is common
            _row("b", "captioning/beam_1/CIDEr-D", 0.3, objective="captioning"),
        ]
    )
    scores, used = tables.family_scores(final)
    assert used == {
        "zero-shot accuracy": ["zero_shot/x/accuracy"],
        "captioning CIDEr-D": ["captioning/beam_1/CIDEr-D"],
    }
    got = {(r.run, r.metric): r.value for r in scores.itertuples()}
    assert got == {
        ("a", "zero-shot accuracy"): 0.2,
        ("b", "zero-shot accuracy"): 0.6,
        ("b", "captioning CIDEr-D"): 0.3,
    }


def test_curve_fits_per_arm_and_out_of_range_metrics():
    rows = []
    for f in (0.1, 0.3, 1.0):
        D = f * 1000
        rows.append(_row(f"a{f}", "m", 1 - 2 * D**-0.5, fraction=f))
        rows.append(_row(f"t{f}", "m", 1 - D**-0.2, fraction=f, init="tagging"))
        rows.append(_row(f"a{f}", "cider", 1.5, fraction=f))
    fits = tables.curve_fits(_final(rows), ["m", "cider"]).set_index(["metric", "arm"])
    assert fits.loc[("m", "contrastive"), "alpha"] == pytest.approx(0.5, abs=1e-6)
    assert fits.loc[("m", "contrastive+tagging-init"), "alpha"] == pytest.approx(0.2, abs=1e-6)
    assert fits.loc[("m", "contrastive"), "form"] == "power"
    assert fits.loc[("m", "contrastive"), "A"] == pytest.approx(2.0, rel=1e-6)
    cider = fits.loc[("cider", "contrastive")]
    assert cider["form"] == "none"
    assert math.isnan(cider["alpha"])
    assert "outside [0, 1]" in cider["note"]


def test_summary_and_tagging_gain_hand_computed():
    final = _final(
        [
            _row("s1", "m", 0.5, fraction=0.1),
            _row("s2", "m", 0.8, fraction=1.0),
            _row("t1", "m", 0.6, fraction=0.1, init="tagging"),
            _row("t2", "m", 0.76, fraction=1.0, init="tagging"),
            _row("c1", "m", 0.3, fraction=0.1, objective="captioning"),
        ]
    )
    summary = tables.summary_table(final, ["m"])
    assert summary.columns.tolist() == ["fraction 0.1", "fraction 1"]
    assert summary.loc[("m", "contrastive"), "fraction 1"] == 0.8
    assert math.isnan(summary.loc[("m", "captioning"), "fraction 1"])
    gain = tables.tagging_gain(final)
    assert gain["objective"].tolist() == ["contrastive", "contrastive"]
    np.testing.assert_allclose(gain["relative_gain"], [0.1 / 0.5, -0.04 / 0.8])
    assert tables.tagging_gain(final[final["init"] == "scratch"]).empty


def test_markdown_table():
    frame = pd.DataFrame({"x": [1.23456, np.nan]}, index=pd.Index(["a", "b"], name="k"))
    assert tables.to_markdown(frame, digits=2) == "| k | x |\n|---|---|\n| a | 1.23 |\n| b |  |\n"


def test_optional_tags_and_runs_without_tags(tmp_path):
    rows = [_row("a", "m", 0.5), _row("loose", "m", 0.7)]
    table = pd.DataFrame(rows).drop(columns=["init", "model_size"])
    table.loc[1, ["objective", "data_fraction"]] = None
    table["num_train_clips"] = pd.array([100, None], dtype="Int64")
    path = tmp_path / "r.parquet"
    table.to_parquet(path)
    out, skipped = tables.clean(tables.load_results(path))
    assert skipped == {"run_without_objective": 1}
    assert out[["run", "arm", "init", "model_size"]].values.tolist() == [
        ["a", "contrastive", "scratch", ""]
    ]
    assert out["num_train_clips"].dtype == np.int64


def _write_json(path, value):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value))


def test_reads_the_collected_table(tmp_path):
    """The table `audiolm_pt.collect` writes from run directories, evaluator side files
    included, goes through to final figures and arms."""
    for name, init, kept, r1 in (("c_f0.1", "scratch", 40, 0.2), ("t_f0.1", "tagging", 40, 0.3)):
        run = tmp_path / name
        _write_json(run / "config.json", {"data": {"pipeline": {"global_batch_size": 8}}})
        tags = {"objective": "contrastive", "data_fraction": 0.1, "init": init}
        _write_json(run / "sweep_point.json", {"sweep": "s", "tags": tags, "status": "done"})
        _write_json(run / "data_info.json", {"demo": {"records": 400, "kept": kept}})
        lines = [{"step": 10, "loss": 3.0}, {"step": 10, "eval/heldout_loss/loss": 3.2}]
        (run / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
        results = {
            "retrieval": {"audio_to_text": {"R@1": r1}, "examples": "path"},
            "zero_shot": {
                "domain": {"accuracy": 0.5, "confusion": {"classes": ["a"], "counts": [[1]]}}
            },
        }
        _write_json(run / "eval" / "10.json", {"step": 10, "results": results})
        _write_json(run / "eval" / "10_retrieval_examples.json", {"top_k": 5})
    table = collect.collect(str(tmp_path)).table
    out, skipped = tables.clean(table)
    assert skipped == {}
    final, unfinished = tables.final_eval(out)
    assert unfinished == {}
    got = {(r.arm, r.metric): r.value for r in final.itertuples()}
    assert got == {
        ("contrastive", "retrieval/audio_to_text/R@1"): 0.2,
        ("contrastive", "zero_shot/domain/accuracy"): 0.5,
        ("contrastive+tagging-init", "retrieval/audio_to_text/R@1"): 0.3,
        ("contrastive+tagging-init", "zero_shot/domain/accuracy"): 0.5,
    }
    assert set(final["num_train_clips"]) == {40}
    heldout = out[out["source"] == "heldout"]
    assert heldout["metric"].tolist() == ["loss", "loss"]
