"""The scaling notebook's figures: training loss per run against steps and examples seen,
each evaluation metric's error against training clips with its power-law fit (log axes), and
the study's comparison of arms per task family with the relative gain of tagging
initialisation. Points are means over seeds with 95% t-interval error bars."""

import math
from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from audiolm_pt.analysis import intervals

_PLAIN = FuncFormatter(lambda v, _: f"{v:g}")


def arm_colors(arms: Sequence[str]) -> dict[str, tuple]:
    """One fixed colour per arm (sorted), the same in every figure."""
    cmap = plt.get_cmap("tab10")
    return {arm: cmap(i % 10) for i, arm in enumerate(sorted(set(arms)))}


def _grid(n: int, cols: int, width: float, height: float):
    cols = max(1, min(cols, n))
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, axes.flat[:n]


def _log_axes(ax, sizes: Sequence[float], log_y: bool = False) -> None:
    """Log x ticked at the data sizes (plain numbers); log y ticked at 1, 2, 5 × 10^k."""
    ax.set_xscale("log")
    ax.set_xticks(sorted(set(sizes)))
    ax.xaxis.set_major_formatter(_PLAIN)
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.tick_params(axis="x", labelrotation=45, labelsize=7)
    if log_y:
        ax.set_yscale("log")
        ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(_PLAIN)
        ax.yaxis.set_minor_formatter(NullFormatter())


def _legend(fig: Figure, axes, extra: Sequence[tuple[Line2D, str]] = ()) -> None:
    """One legend for the figure, each label once."""
    seen = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            seen.setdefault(label, handle)
    for handle, label in extra:
        seen[label] = handle
    if seen:
        fig.legend(
            seen.values(),
            seen.keys(),
            loc="upper center",
            ncol=min(len(seen), 4),
            bbox_to_anchor=(0.5, 0.0),
            frameon=False,
        )


def _mean_and_interval(curve: pd.DataFrame) -> tuple[pd.Series, np.ndarray]:
    """Per training-set size: the mean over runs (seeds) and its 95% t-interval half-width
    (0 where a size has a single run, so no bar is drawn)."""
    stats = (
        curve.groupby("num_train_clips")["value"]
        .apply(lambda v: pd.Series(intervals.t_interval(v)[:2], index=["mean", "half"]))
        .unstack()
    )
    return stats["mean"], np.nan_to_num(stats["half"].to_numpy(np.float64))


def loss_curves(table: pd.DataFrame, metric: str = "loss") -> Figure:
    """Per arm (rows): `metric` of every run against step and against examples seen, one
    colour per data fraction; held-out values dashed where the table has them (named
    `metric` or ending in `/metric`, as `eval/heldout_loss/loss`)."""
    train = table[(table["source"] == "train") & (table["metric"] == metric)]
    if train.empty:
        raise ValueError(f"the table has no training {metric!r} rows")
    heldout = table[table["source"] == "heldout"]
    heldout = heldout[[m.split("/")[-1] == metric for m in heldout["metric"]]]
    arms = sorted(train["arm"].unique())
    fractions = sorted(table["data_fraction"].unique())
    shade = plt.get_cmap("viridis")
    fig, axes = plt.subplots(len(arms), 2, figsize=(11, 2.8 * len(arms)), squeeze=False)
    for row, arm in zip(axes, arms, strict=True):
        for run, curve in train[train["arm"] == arm].groupby("run"):
            first = curve.iloc[0]
            k = fractions.index(first["data_fraction"])
            color = shade(k / max(1, len(fractions) - 1) * 0.9)
            status = "" if first["status"] == "done" else f" {first['status']}"
            label = f"fraction {first['data_fraction']:g} ({first['num_train_clips']}){status}"
            curve = curve.sort_values("step")
            held = heldout[heldout["run"] == run].sort_values("step")
            for ax, x in zip(row, ("step", "examples_seen"), strict=True):
                ax.plot(curve[x], curve["value"], color=color, lw=1.2, label=label)
                if not held.empty:
                    ax.plot(held[x], held["value"], "o--", color=color, lw=1.0, ms=3)
        for ax, x in zip(row, ("step", "examples seen"), strict=True):
            ax.set(title=f"{arm}: {metric} vs {x}", xlabel=x, ylabel=metric)
            ax.grid(alpha=0.3)
        row[1].legend(fontsize=7, title="training clips; -- held out", title_fontsize=7)
    fig.tight_layout()
    return fig


def metric_curves(final: pd.DataFrame, metrics: Sequence[str], fits: pd.DataFrame) -> Figure:
    """One panel per metric: error (1 - metric; the metric itself when it leaves [0, 1])
    against training clips per arm on log-log axes, fitted curves dashed."""
    if not metrics:
        raise ValueError("no evaluation metric to plot")
    colors = arm_colors(final["arm"])
    fig, axes = _grid(len(metrics), 4, 3.6, 3.0)
    for ax, metric in zip(axes, metrics, strict=True):
        part = final[final["metric"] == metric]
        bounded = part["value"].between(0, 1).all()
        for arm, curve in part.groupby("arm"):
            mean, half = _mean_and_interval(curve)
            y = 1 - mean if bounded else mean
            ax.errorbar(
                mean.index, y, yerr=half, fmt="o-", color=colors[arm], ms=4, lw=0.8, capsize=2,
                label=arm,
            )  # fmt: skip
            fit = fits[(fits["metric"] == metric) & (fits["arm"] == arm)]
            if bounded and len(fit) and fit.iloc[0]["form"] != "none":
                f = fit.iloc[0]
                D = np.geomspace(mean.index.min(), mean.index.max(), 50)
                ax.plot(D, f["E_inf"] + f["A"] * D ** (-f["alpha"]), "--", color=colors[arm])
        _log_axes(ax, part["num_train_clips"], log_y=True)
        ax.set(title=metric, xlabel="training clips")
        ax.set_ylabel("error = 1 - value" if bounded else "value")
        ax.title.set_fontsize(8)
        ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    fit_handle = Line2D([], [], color="k", ls="--")
    _legend(fig, axes, [(fit_handle, "power-law fit")])
    return fig


def comparison_figure(scores: pd.DataFrame, gains: pd.DataFrame, init: str = "tagging") -> Figure:
    """Top row: each family's score against training clips per arm. Bottom row: relative
    gain (%) of `init` initialisation over scratch per objective and data size."""
    families = list(dict.fromkeys(scores["metric"]))
    if not families:
        raise ValueError("no family score to compare")
    colors = arm_colors(scores["arm"])
    fig, axes = plt.subplots(2, len(families), figsize=(4.0 * len(families), 6.4), squeeze=False)
    for top, bottom, family in zip(axes[0], axes[1], families, strict=True):
        part = scores[scores["metric"] == family]
        for arm, curve in part.groupby("arm"):
            mean, half = _mean_and_interval(curve)
            top.errorbar(
                mean.index, mean.values, yerr=half, fmt="o-", color=colors[arm], capsize=2,
                label=arm,
            )  # fmt: skip
        _log_axes(top, part["num_train_clips"])
        top.set(title=family, xlabel="training clips", ylabel=family)
        top.grid(alpha=0.3)
        gain = gains[gains["metric"] == family]
        for objective, curve in gain.groupby("objective"):
            curve = curve.sort_values("num_train_clips")
            bottom.plot(
                curve["num_train_clips"],
                100 * curve["relative_gain"],
                "s-",
                label=f"{objective}: {init} init vs scratch",
            )
        if gain.empty:
            bottom.text(
                0.5, 0.5, f"no scratch / {init}-init pair", ha="center", transform=bottom.transAxes
            )
            bottom.set_xticks([])
        else:
            _log_axes(bottom, gain["num_train_clips"])
        bottom.axhline(0, color="k", lw=0.8)
        bottom.set(xlabel="training clips", ylabel="relative gain (%)")
        bottom.grid(alpha=0.3)
    fig.tight_layout()
    _legend(fig, axes.flat)
    return fig
