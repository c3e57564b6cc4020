"""Seed intervals against scipy's own t-interval and a Welch test, and the study's three
findings judged on planted tables: shown, contradicted and unresolved."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from audiolm_pt.analysis import intervals


def test_t_interval_matches_scipy():
    x = [0.61, 0.58, 0.66, 0.63]
    mean, half, n = intervals.t_interval(x)
    lo, hi = stats.t.interval(0.95, len(x) - 1, loc=np.mean(x), scale=stats.sem(x))
    assert n == 4
    assert mean == pytest.approx(np.mean(x))
    assert half == pytest.approx((hi - lo) / 2)
    assert math.isnan(intervals.t_interval([0.5])[1])


def test_welch_matches_scipy_ttest():
    a, b = [0.70, 0.74, 0.69, 0.75], [0.60, 0.66, 0.58]
    diff, half = intervals.welch(a, b)
    result = stats.ttest_ind(a, b, equal_var=False)
    lo, hi = result.confidence_interval(0.95)
    assert diff == pytest.approx(np.mean(a) - np.mean(b))
    assert half == pytest.approx((hi - lo) / 2)


def test_contrast_of_four_groups_by_hand():
    """(a - b) - (c - d) with variances s^2/n summed and Welch-Satterthwaite degrees of
    freedom, computed term by term."""
    groups = [[0.70, 0.74, 0.69], [0.60, 0.66, 0.58, 0.61], [0.50, 0.52, 0.57], [0.40, 0.49, 0.44]]
    signs = [1, -1, -1, 1]
    estimate, half = intervals.contrast(list(zip(signs, groups, strict=True)))
    means = [sum(g) / len(g) for g in groups]
    v = [stats.tvar(g) / len(g) for g in groups]
    dof = sum(v) ** 2 / sum(vi**2 / (len(g) - 1) for vi, g in zip(v, groups, strict=True))
    assert estimate == pytest.approx(means[0] - means[1] - means[2] + means[3])
    assert half == pytest.approx(stats.t.ppf(0.975, dof) * math.sqrt(sum(v)))
    assert math.isnan(intervals.contrast([(1, [0.5]), (-1, [0.4, 0.5])])[1])


ARMS = {
    "contrastive": "contrastive",
    "captioning": "captioning",
    "contrastive_init": "contrastive+tagging-init",
    "scratch_of_init": "contrastive",
}


def _scores(values):
    """values: {(arm, fraction): (probe means, zero-shot means)} with three seeds each,
    spread +-0.01 around the given means."""
    rows = []
    for (arm, fraction), (probe, zero) in values.items():
        for k, noise in enumerate((-0.01, 0.0, 0.01)):
            for metric, v in (("probe", probe), ("zero", zero)):
                rows.append(
                    {"run": f"{arm}{fraction}{k}", "arm": arm, "data_fraction": fraction,
                     "num_train_clips": int(1000 * fraction), "metric": metric,
                     "value": v + noise}
                )  # fmt: skip
    return pd.DataFrame(rows)


def test_findings_on_planted_tables():
    planted = {
        ("contrastive", 0.1): (0.60, 0.30),
        ("contrastive", 1.0): (0.70, 0.40),
        ("captioning", 0.1): (0.50, 0.20),
        ("captioning", 1.0): (0.66, 0.45),
        ("contrastive+tagging-init", 0.1): (0.68, 0.30),
        ("contrastive+tagging-init", 1.0): (0.71, 0.40),
    }
    shown = intervals.findings(_scores(planted), "probe", "zero", ARMS)
    assert [f.verdict for f in shown] == ["shown", "shown", "shown"]
    assert shown[0].estimate == pytest.approx(0.10)
    assert shown[1].estimate == pytest.approx(0.25 - 0.10)
    assert shown[2].estimate == pytest.approx(0.08 - 0.01)
    flipped = {**planted, ("captioning", 0.1): (0.70, 0.20)}
    assert intervals.findings(_scores(flipped), "probe", "zero", ARMS)[0].verdict == (
        "contradicted"
    )
    tied = {**planted, ("captioning", 0.1): (0.605, 0.20)}
    assert intervals.findings(_scores(tied), "probe", "zero", ARMS)[0].verdict == "unresolved"


def test_interval_table_cells():
    table = intervals.interval_table(
        _scores({("contrastive", 0.1): (0.6, 0.3), ("contrastive", 1.0): (0.7, 0.4)}),
        ["probe"],
    )
    half = stats.t.ppf(0.975, 2) * 0.01 / math.sqrt(3)
    assert table.loc[("probe", "contrastive"), "fraction 0.1"] == f"0.600 ± {half:.3f} (3)"
