"""What the figures draw: per run a training curve and its held-out points (named as the
trainer logs them) in both loss panels, and a fitted curve only where a fit exists."""

import numpy as np
import pandas as pd

from audiolm_pt.analysis import run_plots, scaling_plots, tables


def _rows(run, fraction, source, metric, values, init="scratch"):
    return [
        {
            "run": run,
            "objective": "contrastive",
            "init": init,
            "model_size": "tiny",
            "data_fraction": fraction,
            "num_train_clips": int(fraction * 1000),
            "status": "done",
            "step": 10 * (i + 1),
            "examples_seen": 40 * (i + 1),
            "source": source,
            "metric": metric,
            "value": v,
        }
        for i, v in enumerate(values)
    ]


def test_loss_curves_draw_heldout_points():
    table = pd.DataFrame(
        _rows("a", 0.1, "train", "loss", [3, 2, 1])
        + _rows("a", 0.1, "heldout", "eval/heldout_loss/loss", [3.5, 2.5])
        + _rows("b", 1.0, "train", "loss", [3, 2.5, 2])
        + _rows("b", 1.0, "train", "lr", [1, 1, 1])
    )
    table, _ = tables.clean(table)
    fig = scaling_plots.loss_curves(table)
    for ax in fig.axes[:2]:
        lengths = sorted(len(line.get_xdata()) for line in ax.lines)
        assert lengths == [2, 3, 3]  # a's held-out points, a's and b's training curves


def test_metric_curves_draw_fits_where_fitted():
    rows = []
    for f in (0.1, 0.3, 1.0):
        rows += _rows(f"s{f}", f, "eval", "m", [1 - 2 * (f * 1000) ** -0.5])
    rows += _rows("t", 1.0, "eval", "m", [0.9], init="tagging")  # one size: no fit
    final = tables.final_eval(tables.clean(pd.DataFrame(rows).assign(sweep="s"))[0])[0]
    fits = tables.curve_fits(final, ["m"])
    (ax,) = scaling_plots.metric_curves(final, ["m"], fits).axes
    # Error-bar caps are marker-only lines (linestyle "None"); the curves and fits are the rest.
    styles = sorted(
        (line.get_linestyle(), len(line.get_xdata()))
        for line in ax.lines
        if line.get_linestyle() != "None"
    )
    assert styles == [("-", 1), ("-", 3), ("--", 50)]


def test_confusion_figure_annotates_counts():
    confusion = {"classes": ["a", "b"], "counts": np.array([[3, 1], [0, 2]]), "accuracy": 5 / 6}
    fig = run_plots.confusion_figure({"task": confusion})
    texts = sorted(t.get_text() for t in fig.axes[0].texts)
    assert texts == ["1", "2", "3"]  # zero cells left blank
