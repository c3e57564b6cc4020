"""Seed statistics of a study's final figures: mean and 95% Student-t interval per (metric,
arm, data size), Welch(-Satterthwaite) intervals for differences and contrasts of arm means,
and the CaptionStew study's three findings judged against them.

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
    return contrast([(1.0, a), (-1.0, b)], level)


def contrast(
    terms: Sequence[tuple[float, Sequence[float]]], level: float = LEVEL
) -> tuple[float, float]:
    """(sum of c * mean(values) over `terms` (c, values), half-width of its interval): the
    groups are taken as independent with unequal variances, so the standard error sums
    c^2 s^2 / n and the t-quantile uses Welch-Satterthwaite degrees of freedom (for two terms
    with c = +1, -1 this is Welch's interval). NaN half-width when a group has fewer than two
    values."""
    groups = [(c, np.asarray(v, np.float64)) for c, v in terms]
    estimate = float(sum(c * x.mean() for c, x in groups))
    if any(len(x) < 2 for _, x in groups):
        return estimate, math.nan
    parts = [(c * c * x.var(ddof=1) / len(x), len(x) - 1) for c, x in groups]
    variance = sum(v for v, _ in parts)
    if variance == 0:
        return estimate, 0.0
    dof = variance**2 / sum(v * v / d for v, d in parts)
    return estimate, float(stats.t.ppf(0.5 + level / 2, dof) * math.sqrt(variance))


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
    Each estimate is a contrast of arm means with a Welch-Satterthwaite interval
    (`contrast`). It treats every (arm, fraction) group as independent runs; the study's
    points at one seed share that seed (and, for the initialised arm, its tagging run), which
    this ignores."""
    con, cap = arms["contrastive"], arms["captioning"]
    init, scratch = arms["contrastive_init"], arms["scratch_of_init"]
    low, high = _common_range(scores, (probe_metric, language_metric), (con, cap, init, scratch))

    def values(metric: str, arm: str, fraction: float) -> np.ndarray:
        return _values(scores, metric, arm, fraction)

    out = [
        _finding(
            "contrastive is more data-efficient than captioning at small scale",
            f"{probe_metric}: contrastive - captioning at fraction {low:g}",
            *welch(values(probe_metric, con, low), values(probe_metric, cap, low)),
        ),
        _finding(
            "captioning scales better than contrastive on language-involved tasks",
            f"{language_metric}: captioning's gain from fraction {low:g} to {high:g} minus "
            "contrastive's",
            *contrast(
                [
                    (1.0, values(language_metric, cap, high)),
                    (-1.0, values(language_metric, cap, low)),
                    (-1.0, values(language_metric, con, high)),
                    (1.0, values(language_metric, con, low)),
                ]
            ),
        ),
        _finding(
            "supervised initialisation helps less as pretraining data grows",
            f"{probe_metric}: (init - scratch) at fraction {low:g} minus at fraction {high:g}",
            *contrast(
                [
                    (1.0, values(probe_metric, init, low)),
                    (-1.0, values(probe_metric, scratch, low)),
                    (-1.0, values(probe_metric, init, high)),
                    (1.0, values(probe_metric, scratch, high)),
                ]
            ),
        ),
    ]
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
