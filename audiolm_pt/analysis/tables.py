"""The collected results table (one row per run, step and metric, written by
`audiolm_pt.collect`) turned into what the scaling notebook shows: arms (objective and
initialisation), each run's final evaluation figures, headline metrics and their families,
power-law fits per curve, the metric × arm × data-fraction summary and the relative gain of a
supervised (tagging) initialisation over training from scratch."""

import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from audiolm_pt.analysis.scaling_fit import fit_power_law

COLUMNS = (
    "run",
    "sweep",
    "objective",
    "data_fraction",
    "num_train_clips",
    "status",
    "step",
    "examples_seen",
    "source",
    "metric",
    "value",
)
# Tag columns a sweep may leave out, and what their absence means.
OPTIONAL = {"init": "scratch", "model_size": ""}
# A run needs these to be placed on a scaling curve.
RUN_KEYS = ("objective", "data_fraction", "num_train_clips")
RUN_COLUMNS = ("arm", "objective", "init", "model_size", "data_fraction", "num_train_clips")
# Evaluation figures the study compares, as patterns over the flattened result names.
HEADLINE = (
    r"retrieval/(audio_to_text|text_to_audio)/R@1",
    r"zero_shot/[^/]+/accuracy",
    r"linear_probe/[^/]+/(mean|mean_std|attention)/test",
    r"captioning/beam_1/CIDEr-D",
)
# One summary figure per task family: the mean of the matching metrics a run has.
FAMILIES = {
    "retrieval R@1": r"retrieval/(audio_to_text|text_to_audio)/R@1",
    "zero-shot accuracy": r"zero_shot/[^/]+/accuracy",
    "linear probe (test)": r"linear_probe/[^/]+/(mean|mean_std|attention)/test",
    "captioning CIDEr-D": r"captioning/beam_1/CIDEr-D",
}
SCRATCH = "scratch"


def load_results(path: str | Path) -> pd.DataFrame:
    """The table from Parquet or CSV; a missing column fails naming it."""
    path = Path(path)
    table = pd.read_csv(path) if path.suffix == ".csv" else pd.read_parquet(path)
    missing = [c for c in COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"{path}: results table lacks columns {missing}")
    return table


def clean(table: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, int]]:
    """Rows usable for plotting, with an `arm` column (objective and initialisation,
    replacing any `arm` tag) and the optional tags filled in, and the rows left out by
    reason."""
    skipped = {}
    keep = np.ones(len(table), bool)
    for key in RUN_KEYS:
        missing = table[key].isna().to_numpy() & keep
        skipped[f"run_without_{key}"] = int(missing.sum())
        keep &= ~missing
    value = pd.to_numeric(table["value"], errors="coerce").to_numpy(np.float64, na_value=np.nan)
    skipped["non_finite_value"] = int((keep & ~np.isfinite(value)).sum())
    keep &= np.isfinite(value)
    out = table[keep].copy()
    out["value"] = value[keep]
    out["num_train_clips"] = out["num_train_clips"].astype(np.int64)
    out["data_fraction"] = out["data_fraction"].astype(np.float64)
    for column, default in OPTIONAL.items():
        filled = out[column].fillna(default) if column in out else default
        out[column] = pd.Series(filled, index=out.index).astype(str)
    sizes = out["model_size"].nunique() > 1
    out["arm"] = [
        arm_label(o, i, m if sizes else None)
        for o, i, m in zip(out["objective"], out["init"], out["model_size"], strict=True)
    ]
    return out, {k: v for k, v in skipped.items() if v}


def arm_label(objective: str, init: str, model_size: str | None = None) -> str:
    """The objective, then "+<init>-init" unless trained from scratch, then "@<size>" when
    given (the table has several model sizes)."""
    label = objective if init == SCRATCH else f"{objective}+{init}-init"
    return f"{label}@{model_size}" if model_size else label


def final_eval(table: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, str]]:
    """Each finished run's evaluation figures at its last evaluated step (one row per run and
    metric), and the runs left out, not done, with their status."""
    evals = table[table["source"] == "eval"]
    done = evals["status"].eq("done").to_numpy(bool)
    unfinished = evals[~done].drop_duplicates("run").sort_values("run")
    left_out = dict(zip(unfinished["run"], unfinished["status"].astype(str), strict=True))
    evals = evals[done].sort_values("step")
    last = evals.groupby(["run", "metric"], sort=True).tail(1)
    return last[["run", *RUN_COLUMNS, "step", "metric", "value"]].reset_index(drop=True), left_out


def matching(names: Sequence[str], patterns: Sequence[str] = HEADLINE) -> list[str]:
    """The names fully matching a pattern, in pattern order, sorted within a pattern."""
    out: list[str] = []
    for pattern in patterns:
        out += sorted(n for n in set(names) if re.fullmatch(pattern, n) and n not in out)
    return out


def family_scores(
    final: pd.DataFrame, families: Mapping[str, str] = FAMILIES
) -> tuple[pd.DataFrame, dict[str, list[str]]]:
    """Per run and family the mean of the family's metrics, over the metrics that every run
    reporting the family has (so runs are averaged over the same tasks), and those metrics."""
    rows, used = [], {}
    for family, pattern in families.items():
        part = final[[re.fullmatch(pattern, m) is not None for m in final["metric"]]]
        if part.empty:
            continue
        per_run = part.groupby("run")["metric"].apply(set)
        common = sorted(set.intersection(*per_run))
        if not common:
            continue
        used[family] = common
        means = part[part["metric"].isin(common)].groupby(["run", *RUN_COLUMNS], as_index=False)
        rows.append(means["value"].mean().assign(metric=family))
    return (pd.concat(rows, ignore_index=True) if rows else final.iloc[:0]), used


def curve_fits(final: pd.DataFrame, metrics: Sequence[str]) -> pd.DataFrame:
    """A power-law fit of error = 1 - metric against training clips per metric and arm."""
    rows = []
    for metric in metrics:
        for arm, curve in final[final["metric"] == metric].groupby("arm", sort=True):
            values = curve["value"].to_numpy(np.float64)
            row = {"metric": metric, "arm": arm}
            if ((values < 0) | (values > 1)).any():
                row.update(form="none", n=curve["num_train_clips"].nunique(), alpha=math.nan)
                row.update(alpha_se=math.nan, E_inf=math.nan, E_inf_se=math.nan, A=math.nan)
                row["note"] = "values outside [0, 1]: error = 1 - metric undefined"
            else:
                fit = fit_power_law(curve["num_train_clips"].to_numpy(np.float64), 1 - values)
                row.update(form=fit.form, n=fit.n_points, alpha=fit.alpha, alpha_se=fit.alpha_se)
                row.update(E_inf=fit.e_inf, E_inf_se=fit.e_inf_se, A=fit.a, note=fit.note)
            rows.append(row)
    columns = ["metric", "arm", "form", "n", "alpha", "alpha_se", "E_inf", "E_inf_se", "A"]
    return pd.DataFrame(rows, columns=[*columns, "note"])


def summary_table(final: pd.DataFrame, metrics: Sequence[str]) -> pd.DataFrame:
    """Mean value per (metric, arm) row and data-fraction column, metrics in given order."""
    part = final[final["metric"].isin(metrics)]
    table = part.pivot_table(
        index=["metric", "arm"], columns="data_fraction", values="value", aggfunc="mean"
    )
    order = {m: i for i, m in enumerate(metrics)}
    table = table.sort_index(key=lambda k: k.map(order) if k.name == "metric" else k)
    table.columns = [f"fraction {f:g}" for f in table.columns]
    return table


def tagging_gain(scores: pd.DataFrame, init: str = "tagging") -> pd.DataFrame:
    """Relative gain (init - scratch) / |scratch| per objective, metric and data size, where
    an objective was run both from scratch and from `init`."""
    keys = ["objective", "model_size", "metric", "data_fraction", "num_train_clips"]
    mean = scores.groupby([*keys, "init"], as_index=False)["value"].mean()
    wide = mean.pivot_table(index=keys, columns="init", values="value").reset_index()
    if SCRATCH not in wide or init not in wide:
        return pd.DataFrame(columns=[*keys, SCRATCH, init, "relative_gain"])
    wide = wide.dropna(subset=[SCRATCH, init])
    gain = (wide[init] - wide[SCRATCH]) / wide[SCRATCH].abs()
    wide = wide.assign(relative_gain=gain.where(wide[SCRATCH] != 0))
    return wide[[*keys, SCRATCH, init, "relative_gain"]].reset_index(drop=True)


def to_markdown(table: pd.DataFrame, digits: int = 3) -> str:
    """A pipe table of `table` (named index included), numbers rounded to `digits`, blank
    where NaN."""
    flat = table.reset_index() if table.index.names[0] is not None else table

    def cell(v) -> str:
        if isinstance(v, float):
            return "" if math.isnan(v) else f"{v:.{digits}f}"
        return str(v)

    cells = [[cell(v) for v in row] for row in flat.itertuples(index=False)]
    header = [str(c) for c in flat.columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in cells]
    return "\n".join(lines) + "\n"
