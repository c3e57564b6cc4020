"""Seed statistics of a study's final figures: mean and 95% Student-t interval per (metric,
arm, data size), Welch intervals for differences between arms, and the CaptionStew study's
three findings judged against them.

A finding is "shown" when its 95% interval lies wholly on the side the study reports,
"contradicted" when it lies wholly on the other side, and "unresolved" when it contains zero
(or a point has fewer than two seeds, so no interval exists)."""

import dataclasses
import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

LEVEL = 0.95
GROUP = ["metric", "arm", "data_fraction", "num_train_clips"]


def t_interval(values: Sequence[float], level: float = LEVEL) -> tuple[float, float, int]:
    """(mean, half-width of the Student-t interval, n); the half-width is NaN below n = 2."""
    x = np.asarray(values, np.float64)
    n = len(x)
    if n < 2:
        return (float(x.mean()) if n else math.nan), math.nan, n
    half = stats.t.ppf(0.5 + level / 2, n - 1) * x.std(ddof=1) / math.sqrt(n)
    return float(x.mean()), float(half), n


def seed_stats(final: pd.DataFrame, metrics: Sequence[str] | None = None) -> pd.DataFrame:
    """Per (metric, arm, data fraction, training clips): n runs, mean, standard deviation and
    the 95% interval's half-width over runs (seeds)."""
    part = final if metrics is None else final[final["metric"].isin(metrics)]
    rows = []
    for key, group in part.groupby(GROUP, sort=True):
        mean, half, n = t_interval(group["value"])
        sd = float(group["value"].std(ddof=1)) if n > 1 else math.nan
        rows.append(dict(zip(GROUP, key, strict=True), n=n, mean=mean, sd=sd, ci95=half))
    return pd.DataFrame(rows, columns=[*GROUP, "n", "mean", "sd", "ci95"])


def interval_table(final: pd.DataFrame, metrics: Sequence[str]) -> pd.DataFrame:
    """ "mean ± half-width (n)" per (metric, arm) row and data-fraction column, metrics in the
    given order."""
    s = seed_stats(final, metrics)
    s["cell"] = [
        f"{m:.3f} ± {h:.3f} ({n})" if math.isfinite(h) else f"{m:.3f} ({n})"
        for m, h, n in zip(s["mean"], s["ci95"], s["n"], strict=True)
    ]
    table = s.pivot(index=["metric", "arm"], columns="data_fraction", values="cell")
    order = {m: i for i, m in enumerate(metrics)}
    table = table.sort_index(key=lambda k: k.map(order) if k.name == "metric" else k)
    table.columns = [f"fraction {f:g}" for f in table.columns]
    return table


def welch(a: Sequence[float], b: Sequence[float], level: float = LEVEL) -> tuple[float, float]:
    """(mean(a) - mean(b), half-width of its Welch interval); NaN half-width when either side
    has fewer than two values."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    diff = float(a.mean() - b.mean())
    if len(a) < 2 or len(b) < 2:
        return diff, math.nan
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    se = math.sqrt(va + vb)
    if se == 0:
        return diff, 0.0
    dof = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    return diff, float(stats.t.ppf(0.5 + level / 2, dof) * se)


def _values(scores: pd.DataFrame, metric: str, arm: str, fraction: float) -> np.ndarray:
    rows = scores[
        (scores["metric"] == metric)
        & (scores["arm"] == arm)
        & np.isclose(scores["data_fraction"], fraction)
    ]
    return rows["value"].to_numpy(np.float64)


@dataclasses.dataclass(frozen=True)
class Finding:
    """One claim, the quantity that tests it, its estimate and 95% interval, the verdict."""

    claim: str
    quantity: str
    estimate: float
    ci95: float
    verdict: str

    def as_row(self) -> dict:
        return dataclasses.asdict(self)


def _verdict(estimate: float, half: float) -> str:
    if not math.isfinite(half):
        return "unresolved"
    if estimate - half > 0:
        return "shown"
    if estimate + half < 0:
        return "contradicted"
    return "unresolved"


def _finding(claim: str, quantity: str, estimate: float, half: float) -> Finding:
    return Finding(claim, quantity, estimate, half, _verdict(estimate, half))


def findings(
    scores: pd.DataFrame,
    probe_metric: str,
    language_metric: str,
    arms: dict[str, str],
) -> list[Finding]:
    """The three findings from per-run family scores (`tables.family_scores`): `arms` maps
    the roles "contrastive", "captioning", "contrastive_init" and "scratch_of_init" (the
    arm a supervised initialisation is compared with) to arm labels. "Smallest" and
    "largest" are the data fractions every one of these arms was run at.

    1. Contrastive learning is more data-efficient at small scale: contrastive minus
       captioning on `probe_metric` at the smallest data fraction, > 0.
    2. Captioning scales better on language-involved tasks: captioning's gain on
       `language_metric` from the smallest to the largest fraction minus contrastive's, > 0.
    3. Supervised initialisation has diminishing returns: the initialised arm's advantage over
       its scratch arm on `probe_metric` at the smallest fraction minus at the largest, > 0.
    Each difference of independent runs gets a Welch interval (the scaling differences sum
    the variances of their four means)."""
    con, cap = arms["contrastive"], arms["captioning"]
    init, scratch = arms["contrastive_init"], arms["scratch_of_init"]
    low, high = _common_range(scores, (probe_metric, language_metric), (con, cap, init, scratch))
    out = []
    diff, half = welch(
        _values(scores, probe_metric, con, low), _values(scores, probe_metric, cap, low)
    )
    out.append(
        _finding(
            "contrastive is more data-efficient than captioning at small scale",
            f"{probe_metric}: contrastive - captioning at fraction {low:g}",
            diff,
            half,
        )
    )
    cap_gain = _gain(scores, language_metric, cap, low, high)
    con_gain = _gain(scores, language_metric, con, low, high)
    out.append(
        _finding(
            "captioning scales better than contrastive on language-involved tasks",
            f"{language_metric}: captioning's gain from fraction {low:g} to {high:g} minus "
            "contrastive's",
            cap_gain[0] - con_gain[0],
            math.hypot(cap_gain[1], con_gain[1]),
        )
    )
    small = welch(
        _values(scores, probe_metric, init, low), _values(scores, probe_metric, scratch, low)
    )
    large = welch(
        _values(scores, probe_metric, init, high), _values(scores, probe_metric, scratch, high)
    )
    out.append(
        _finding(
            "supervised initialisation helps less as pretraining data grows",
            f"{probe_metric}: (init - scratch) at fraction {low:g} minus at fraction {high:g}",
            small[0] - large[0],
            math.hypot(small[1], large[1]),
        )
    )
    return out


def _common_range(
    scores: pd.DataFrame, metrics: Sequence[str], arms: Sequence[str]
) -> tuple[float, float]:
    """The smallest and largest data fraction at which every arm has every metric."""
    common = None
    for metric in metrics:
        for arm in arms:
            have = scores[(scores["metric"] == metric) & (scores["arm"] == arm)]
            fractions = set(np.round(have["data_fraction"].to_numpy(np.float64), 9))
            common = fractions if common is None else common & fractions
    if not common:
        raise ValueError(f"no data fraction has {list(metrics)} for every arm of {list(arms)}")
    return min(common), max(common)


def _gain(scores, metric, arm, low, high) -> tuple[float, float]:
    """(mean at `high` - mean at `low`, its Welch half-width)."""
    return welch(_values(scores, metric, arm, high), _values(scores, metric, arm, low))
