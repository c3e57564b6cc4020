"""Power-law fits against known curves: exponents recovered from noisy saturating data within
their standard errors, exact plain power laws on three points, and NaN with a reason where a
fit cannot identify its parameters."""

import math

import numpy as np
import pytest
from scipy.optimize import curve_fit

from audiolm_pt.analysis.scaling_fit import fit_power_law


def test_recovers_a_saturating_law_from_noisy_data():
    rng = np.random.default_rng(0)
    D = np.repeat(np.geomspace(100, 100_000, 8), 2)  # two seeds per data size
    err = 0.2 + 3.0 * D**-0.5
    fit = fit_power_law(D, err + rng.normal(0, 0.002, len(D)))
    assert fit.form == "saturating"
    assert fit.n_points == 8
    assert fit.note == ""
    assert 0 < fit.alpha_se < 0.05
    assert abs(fit.alpha - 0.5) < min(4 * fit.alpha_se, 0.03)
    assert abs(fit.e_inf - 0.2) < min(4 * fit.e_inf_se, 0.01)
    assert abs(fit.a - 3.0) < min(4 * fit.a_se, 0.3)
    np.testing.assert_allclose(fit.predict(D), err, atol=0.005)


def test_standard_errors_are_calibrated():
    """Over many noise draws, about 95% of exponents lie within two standard errors."""
    D = np.geomspace(100, 100_000, 8)
    err = 0.2 + 3.0 * D**-0.5
    z = []
    for seed in range(200):
        noisy = err + np.random.default_rng(seed).normal(0, 0.002, len(D))
        fit = fit_power_law(D, noisy)
        z.append((fit.alpha - 0.5) / fit.alpha_se)
    # 5 residual degrees of freedom: a t distribution puts 89.8% within 2 (and a curved
    # model a little less); errors ignoring the noise or double-counting it land far away
    assert 0.8 < np.mean(np.abs(z) < 2) < 0.97


def test_exact_power_law_on_three_points():
    D = np.array([100.0, 300.0, 1000.0])
    fit = fit_power_law(D, 2.0 * D**-0.4)
    assert fit.form == "power"
    assert fit.alpha == pytest.approx(0.4, abs=1e-9)
    assert fit.a == pytest.approx(2.0, rel=1e-9)
    assert fit.e_inf == 0.0
    assert math.isnan(fit.e_inf_se)
    assert fit.alpha_se == pytest.approx(0.0, abs=1e-9)


def test_standard_error_of_amplitude_in_data_units():
    """The delta-method error of A (fitted on rescaled D) equals a direct fit's in D units."""
    rng = np.random.default_rng(1)
    D = np.geomspace(50, 5000, 3)
    err = 1.5 * D**-0.3 * (1 + rng.normal(0, 0.02, len(D)))
    fit = fit_power_law(D, err)
    params, cov = curve_fit(lambda d, a, alpha: a * d**-alpha, D, err, p0=[1.0, 0.3])
    assert fit.a == pytest.approx(params[0], rel=1e-5)
    assert fit.alpha == pytest.approx(params[1], rel=1e-5)
    assert fit.a_se == pytest.approx(np.sqrt(cov[0, 0]), rel=1e-3)
    assert fit.alpha_se == pytest.approx(np.sqrt(cov[1, 1]), rel=1e-3)


def test_too_few_points():
    one = fit_power_law([100, 100, np.nan], [0.3, 0.31, 0.2])
    assert one.form == "none"
    assert math.isnan(one.alpha)
    assert "at least 2" in one.note
    two = fit_power_law([100, 400], [0.4, 0.2])
    assert two.form == "power"
    assert two.alpha == pytest.approx(0.5)  # log2(0.4/0.2) / log2(4)
    assert math.isnan(two.alpha_se)
    assert "degrees of freedom" in two.note


def test_flat_curve_is_not_identifiable():
    fit = fit_power_law([100, 300, 1000, 3000], [0.3, 0.3, 0.3, 0.3])
    assert fit.form == "saturating"
    assert fit.alpha == pytest.approx(0.0, abs=1e-6)
    assert math.isnan(fit.alpha_se)
    assert math.isnan(fit.e_inf_se)
    assert "alpha at its bound 0: error does not fall with data" in fit.note


def test_non_finite_points_are_left_out():
    D = np.array([100.0, 200.0, 400.0, 800.0, 1600.0])
    err = 0.05 + 1.0 * D**-0.6
    clean = fit_power_law(D, err)
    dirty = fit_power_law(np.append(D, [np.nan, 0.0]), np.append(err, [0.1, 0.1]))
    assert dirty == clean
    assert clean.alpha == pytest.approx(0.6, abs=1e-6)
