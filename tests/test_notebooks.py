"""The notebooks run top to bottom headless (nbclient, the venv's own kernel) on a synthetic
results table with known power laws and on a fake run directory holding every artefact the
evaluators write; every figure file is written and non-empty, and the exponents the scaling
notebook prints are the ones the table was made with. The stored notebooks carry no outputs."""

import json
import re
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest

from audiolm_pt.analysis.run_notebooks import NOTEBOOKS, execute_notebook
from audiolm_pt.evaluate import metrics
from audiolm_pt.evaluate.captioning import write_feature_samples
from audiolm_pt.evaluate.data import Clip
from audiolm_pt.evaluate.retrieval import example_queries

TOTAL_CLIPS = 2000
# arm: (objective, init, fractions, (E_inf, A, alpha)) of error = 1 - metric.
ARMS = {
    "contrastive": ("contrastive", "scratch", (0.05, 0.1, 0.3, 1.0), (0.1, 2.0, 0.5)),
    "captioning": ("captioning", "scratch", (0.1, 0.3, 1.0), (0.0, 3.0, 0.3)),
    "hybrid": ("hybrid", "scratch", (0.1, 0.3, 1.0), (0.0, 2.0, 0.4)),
    "contrastive+tagging-init": ("contrastive", "tagging", (0.1, 0.3, 1.0), (0.0, 1.5, 0.25)),
}
# metric: scale of A (so metrics of one arm differ but share its exponent)
EVAL_METRICS = {
    "retrieval/audio_to_text/R@1": 1.0,
    "retrieval/text_to_audio/R@1": 0.9,
    "zero_shot/domain/accuracy": 0.8,
    "linear_probe/voice/mean/test": 0.7,
    "linear_probe/voice/attention/test": 0.6,
    "captioning/beam_1/CIDEr-D": 1.1,
}
SCALING_FIGURES = ("loss_curves", "metrics_vs_data", "comparison")
RUN_FIGURES = ("loss_lr", "caption_samples", "zero_shot_confusion")


def _has(objective: str, metric: str) -> bool:
    if metric.startswith("retrieval"):
        return objective != "captioning"
    if metric.startswith("captioning"):
        return objective != "contrastive"
    return True


def synthetic_table() -> pd.DataFrame:
    """Every arm at its fractions: a falling training loss, and evaluations at two steps of
    which the last follows the arm's law exactly; plus the supervised tagging run (one data
    size: nothing to fit), a failed run and a NaN row."""
    rows = []

    def add(run, objective, init, fraction, status, step, source, metric, value):
        rows.append(
            {
                "run": run,
                "sweep": "synthetic",
                "objective": objective,
                "data_fraction": fraction,
                "init": init,
                "model_size": "tiny",
                "num_train_clips": round(fraction * TOTAL_CLIPS),
                "global_batch_size": 8,
                "status": status,
                "step": step,
                "examples_seen": 8 * step,
                "source": source,
                "metric": metric,
                "value": value,
            }
        )

    for arm, (objective, init, fractions, (e_inf, a, alpha)) in ARMS.items():
        for fraction in fractions:
            run = f"{arm}-f{fraction:g}"
            D = fraction * TOTAL_CLIPS
            for step in range(10, 110, 10):
                loss = 2.0 + 3.0 * np.exp(-step / (30 + 100 * fraction))
                add(run, objective, init, fraction, "done", step, "train", "loss", loss)
                add(run, objective, init, fraction, "done", step, "train", "lr", 1e-3)
            heldout = "eval/heldout_loss/loss"
            add(run, objective, init, fraction, "done", 100, "heldout", heldout, loss + 0.2)
            for metric, scale in EVAL_METRICS.items():
                if _has(objective, metric):
                    value = 1 - (e_inf + scale * a * D ** (-alpha))
                    add(run, objective, init, fraction, "done", 50, "eval", metric, value / 2)
                    add(run, objective, init, fraction, "done", 100, "eval", metric, value)
    add("tagging", "tagging", "scratch", 1.0, "done", 100, "train", "loss", 1.0)
    add(
        "tagging",
        "tagging",
        "scratch",
        1.0,
        "done",
        100,
        "eval",
        "linear_probe/voice/mean/test",
        0.9,
    )
    add("hybrid-broken", "hybrid", "scratch", 0.3, "failed", 10, "train", "loss", 4.0)
    add(
        "hybrid-broken",
        "hybrid",
        "scratch",
        0.3,
        "failed",
        10,
        "eval",
        next(iter(EVAL_METRICS)),
        0.9,
    )
    add("captioning-f0.1", "captioning", "scratch", 0.1, "done", 110, "train", "loss", np.nan)
    return pd.DataFrame(rows)


def fake_run(run_dir: Path, step: int = 200) -> None:
    """A run directory as the trainer and evaluators leave it, with two evaluated steps."""
    rng = np.random.default_rng(0)
    run_dir.mkdir(parents=True)
    lines = []
    for s in range(20, step + 20, 20):
        lines.append(
            {
                "step": s,
                "loss": 5 / (1 + s / 50),
                "contrastive_loss": 3 / (1 + s / 50),
                "caption_loss": 2 / (1 + s / 50),
                "lr": 1e-3 * min(1, s / 60),
            }
        )
        if s % 100 == 0:
            lines.append({"step": s, "eval/heldout_loss/loss": 5.5 / (1 + s / 50)})
    lines.append({"step": step, "eval/zero_shot/domain/accuracy": 0.5})
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    eval_dir = run_dir / "eval"
    eval_dir.mkdir()
    classes = ["music", "sound", "speech"]
    truth = rng.integers(0, 3, 30)
    scores = np.eye(3)[truth] + rng.normal(0, 0.6, (30, 3))
    results = {
        "zero_shot": {
            "scoring": "embedding",
            "domain": {
                "accuracy": metrics.accuracy(scores, truth),
                "mAP": 0.7,
                "num_classes": 3,
                "num_clips": 30,
                "chance": 0.4,
                "confusion": {
                    "classes": classes,
                    "counts": metrics.confusion_counts(scores, truth).tolist(),
                },
            },
        },
        "linear_probe": {
            "voice": {
                "metric": "accuracy",
                "mean": {"C": 1.0, "valid": 0.6, "test": 0.55},
                "attention": {"valid": 0.7, "test": 0.65, "step": 100},
                "num_clips": {"train": 50, "valid": 10, "test": 10},
                "chance": 0.3,
            },
            "event_category": {
                "metric": "mAP",
                "mean": {"C": 0.1, "valid": 0.4, "test": 0.35},
                "attention": {"unavailable": "a split has no clip with this label"},
            },
        },
    }
    for s in (100, step):
        (eval_dir / f"{s}.json").write_text(json.dumps({"step": s, "results": results}))
    clips = [
        Clip(
            f"clip{i}",
            rng.normal(size=(60 + 20 * i, 80)).astype(np.float32),
            (f"a caption of clip {i}", f"another caption {i}"),
            ("short", "long"),
            {},
        )
        for i in range(3)
    ]
    references = [list(c.captions) for c in clips]
    generated = {1: [f"generated {i}" for i in range(3)], 3: [f"beam {i}" for i in range(3)]}
    write_feature_samples(
        str(eval_dir / f"{step}_caption_samples.npz"), clips, references, generated
    )
    texts = [c for clip in clips for c in clip.captions]
    owner = np.repeat(np.arange(3), 2)
    similarity = rng.normal(size=(6, 3)) + 2 * (owner[:, None] == np.arange(3))
    saved = example_queries(similarity, owner, texts, [c.id for c in clips], 4, 2)
    (eval_dir / f"{step}_retrieval_examples.json").write_text(json.dumps(saved))


def _printed(nb: nbformat.NotebookNode) -> str:
    return "".join(
        out.get("text", "")
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.outputs
        if out.output_type == "stream"
    )


def _assert_pngs(fig_dir: Path, names) -> None:
    for name in names:
        path = fig_dir / f"{name}.png"
        assert path.is_file(), path
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", path
        assert path.stat().st_size > 5000, path


def test_scaling_notebook_recovers_the_exponents(tmp_path):
    results = tmp_path / "results.parquet"
    synthetic_table().to_parquet(results)
    fig_dir = tmp_path / "figures"
    out = tmp_path / "executed.ipynb"
    nb = execute_notebook(
        NOTEBOOKS / "scaling_curves.ipynb",
        {"RESULTS": str(results), "FIG_DIR": str(fig_dir)},
        out,
    )
    assert out.is_file()
    _assert_pngs(fig_dir, SCALING_FIGURES)
    text = _printed(nb)
    assert "rows left out: {'non_finite_value': 1}" in text
    assert "left out of the evaluation curves: {'hybrid-broken': 'failed'}" in text
    fits = {}
    for line in text.splitlines():
        tokens = line.split()
        if len(tokens) > 5 and tokens[0] in EVAL_METRICS and tokens[1] in ARMS:
            fits[tokens[0], tokens[1]] = (tokens[2], int(tokens[3]), float(tokens[4]))
    expected = {(m, arm) for m in EVAL_METRICS for arm, spec in ARMS.items() if _has(spec[0], m)}
    assert set(fits) == expected
    tagging = re.search(r"linear_probe/voice/mean/test +tagging +none +1 +NaN", text)
    assert tagging, "the one-size tagging run is listed, unfitted"
    for (_, arm), (form, n, alpha) in fits.items():
        fractions, (_, _, true_alpha) = ARMS[arm][2], ARMS[arm][3]
        assert form == ("saturating" if len(fractions) >= 4 else "power")
        assert n == len(fractions)
        assert alpha == pytest.approx(true_alpha, abs=2e-3)
    # relative gain of tagging init: (1 - 1.5 s D^-.25) vs (1 - (.1 + 2 s D^-.5)) at D = 200
    gains = pd.read_csv(fig_dir / "tagging_gain.csv")
    row = gains[(gains["metric"] == "retrieval R@1") & (gains["num_train_clips"] == 200)]
    scratch = np.mean([1 - (0.1 + s * 2.0 * 200**-0.5) for s in (1.0, 0.9)])
    tagging = np.mean([1 - s * 1.5 * 200**-0.25 for s in (1.0, 0.9)])
    assert row["relative_gain"].item() == pytest.approx((tagging - scratch) / scratch)
    summary = pd.read_csv(fig_dir / "summary.csv", index_col=[0, 1])
    cell = summary.loc[("zero_shot/domain/accuracy", "hybrid"), "fraction 1"]
    assert cell == f"{1 - 0.8 * 2.0 * 2000**-0.4:.3f} (1)"  # one run: no interval
    assert (fig_dir / "summary.md").read_text().startswith("| metric | arm | fraction 0.05 |")
    verdicts = pd.read_csv(fig_dir / "findings.csv")
    assert len(verdicts) == 3
    assert set(verdicts["verdict"]) == {"unresolved"}  # one seed per point cannot resolve


def test_inspect_notebook_draws_every_artefact(tmp_path):
    run_dir = tmp_path / "run"
    fake_run(run_dir)
    nb = execute_notebook(NOTEBOOKS / "inspect_run.ipynb", {"RUN_DIR": str(run_dir)})
    fig_dir = run_dir / "figures"
    _assert_pngs(fig_dir, RUN_FIGURES)
    text = _printed(nb)
    assert "evaluated step 200" in text
    assert "10 logged steps" in text
    probes = pd.read_csv(fig_dir / "linear_probe.csv", index_col=[0, 1])
    assert probes.loc[("voice", "attention"), "model"] == 0.65
    assert ("event_category", "attention") not in probes.index
    examples = pd.read_csv(fig_dir / "retrieval_examples.csv")
    assert list(examples["direction"]) == ["text_to_audio"] * 4 + ["audio_to_text"] * 3


def test_stored_notebooks_have_no_outputs():
    paths = sorted(NOTEBOOKS.glob("*.ipynb"))
    assert {p.name for p in paths} >= {"scaling_curves.ipynb", "inspect_run.ipynb"}
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert cell.outputs == [], path
                assert cell.execution_count is None, path
        tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
        assert len(tagged) == 1, path
        assert re.search(r"run_notebooks", nb.cells[0].source), path
