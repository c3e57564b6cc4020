"""Power-law fits of error against data size: the saturating law
`err(D) = E_inf + A * D^(-alpha)` when a curve has at least four data sizes, a plain power
law `err(D) = A * D^(-alpha)` otherwise, with standard errors from the covariance and a note
saying why a figure is NaN where a fit cannot identify it."""

import dataclasses
import math
import warnings

import numpy as np
from scipy.optimize import OptimizeWarning, curve_fit

MIN_SATURATING_POINTS = 4
_ALPHA_MAX = 10.0


@dataclasses.dataclass(frozen=True)
class PowerLawFit:
    """err(D) = e_inf + a * D^(-alpha), in the units of the data (D as given, not rescaled);
    `form` is "saturating", "power" (e_inf fixed at 0, its standard error NaN) or "none";
    `note` lists why any figure is NaN or unreliable."""

    form: str
    n_points: int
    alpha: float
    alpha_se: float
    a: float
    a_se: float
    e_inf: float
    e_inf_se: float
    note: str = ""

    def predict(self, D: np.ndarray) -> np.ndarray:
        return self.e_inf + self.a * np.asarray(D, np.float64) ** (-self.alpha)


def _saturating(x, e_inf, a, alpha):
    return e_inf + a * x ** (-alpha)


def _power(x, a, alpha):
    return a * x ** (-alpha)


def _loglog_guess(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(a, alpha) of a line through log y against log x, a starting point for the fit."""
    y = np.maximum(y, 1e-12)
    slope, intercept = np.polyfit(np.log(x), np.log(y), 1)
    return float(np.exp(intercept)), float(np.clip(-slope, -_ALPHA_MAX, _ALPHA_MAX))


def _bound_hit(value: float, lo: float, hi: float) -> float | None:
    """The bound `value` sits on (the optimiser stops a hair inside it), else None."""
    for bound in (lo, hi):
        if np.isfinite(bound) and abs(value - bound) <= 1e-6 * (1.0 + abs(bound)):
            return bound
    return None


def _none(n: int, note: str) -> PowerLawFit:
    nan = math.nan
    return PowerLawFit("none", n, nan, nan, nan, nan, nan, nan, note)


def fit_power_law(
    D: np.ndarray, err: np.ndarray, min_saturating_points: int = MIN_SATURATING_POINTS
) -> PowerLawFit:
    """Least-squares fit of `err` against data sizes `D` (repeated sizes allowed: seeds)."""
    D = np.asarray(D, np.float64)
    err = np.asarray(err, np.float64)
    keep = np.isfinite(D) & np.isfinite(err) & (D > 0)
    D, err = D[keep], err[keep]
    n = len(np.unique(D))
    if n < 2:
        return _none(n, f"{n} data size(s): a power law needs at least 2")
    # Fitting in D / D0 (geometric mean) keeps A of order err, so the problem is well scaled.
    D0 = float(np.exp(np.log(D).mean()))
    x = D / D0
    saturating = n >= min_saturating_points
    if saturating:
        e0 = 0.5 * float(err.min())
        a0, alpha0 = _loglog_guess(x, err - e0)
        fn, p0 = _saturating, [e0, a0, max(alpha0, 0.0)]
        upper_e = max(float(err.max()), 1e-12)
        bounds = ([0.0, 0.0, 0.0], [upper_e, np.inf, _ALPHA_MAX])
    else:
        a0, alpha0 = _loglog_guess(x, err)
        fn, p0 = _power, [a0, alpha0]
        bounds = ([0.0, -_ALPHA_MAX], [np.inf, _ALPHA_MAX])
    form = "saturating" if saturating else "power"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OptimizeWarning)
        try:
            params, cov = curve_fit(fn, x, err, p0=p0, bounds=bounds, maxfev=20000)
        except (RuntimeError, ValueError) as failure:
            return _none(n, f"{form} fit failed: {failure}")
    notes = []
    dof = len(D) - len(params)
    if dof <= 0:
        cov = np.full_like(cov, np.nan)
        notes.append(f"no residual degrees of freedom ({len(D)} points, {len(params)} parameters)")
    elif not np.isfinite(cov).all():
        cov = np.full_like(cov, np.nan)
        notes.append("covariance not finite: parameters not identifiable")
    names = ("E_inf", "A", "alpha") if saturating else ("A", "alpha")
    for i, name in enumerate(names):
        bound = _bound_hit(params[i], bounds[0][i], bounds[1][i])
        if bound is None:
            continue
        why = ": error does not fall with data" if (name, bound) == ("alpha", 0.0) else ""
        notes.append(f"{name} at its bound {bound:g}{why}")
        if name == "E_inf":
            cov[0, :] = cov[:, 0] = np.nan
        else:  # a flat or runaway curve: no parameter is identifiable
            cov[:] = np.nan
    e_inf, e_var = (params[0], cov[0, 0]) if saturating else (0.0, math.nan)
    a, alpha = params[-2], params[-1]
    # A in the units of D: A = a * D0^alpha; its variance by the delta method.
    scale = D0**alpha
    grad = np.array([scale, a * scale * math.log(D0)])
    a_var = float(grad @ cov[-2:, -2:] @ grad)
    return PowerLawFit(
        form=form,
        n_points=n,
        alpha=float(alpha),
        alpha_se=float(np.sqrt(cov[-1, -1])),
        a=float(a * scale),
        a_se=float(np.sqrt(a_var)) if a_var >= 0 else math.nan,
        e_inf=float(e_inf),
        e_inf_se=float(np.sqrt(e_var)),
        note="; ".join(notes),
    )
