"""Statistics the marts compute, computed again here from their definitions (scipy and numpy), for tests."""

from __future__ import annotations

import math

import numpy as np
from scipy import stats


def ar1_trend_fit(x: np.ndarray, y: np.ndarray, phi_floor: float) -> dict[str, float]:
    """Slope per 100 steps with its 95 % CI allowing for AR(1) noise, from scipy and numpy.

    The slope is scipy's; phi is the residuals' lag-1 autocorrelation, bias-corrected by
    (1 + 4 r1) / n, floored, capped at 0.95 and rounded up to 0.05; the slope's variance
    x'Rx / Sxx², the residual variance SSE / tr(MR) and Satterthwaite's df tr(MR)² / tr(MRMR)
    come from the AR(1) correlation matrix R of n equally spaced points (GLS theory for the OLS
    estimator); t is scipy's at the whole df below (the marts' table never narrows an interval).
    """
    n = len(x)
    res = stats.linregress(x, y)
    resid = y - (res.intercept + res.slope * x)
    r1 = float(np.sum(resid[1:] * resid[:-1]) / np.sum(resid**2))
    phi = min(0.95, max(phi_floor, r1 + (1 + 4 * r1) / n))
    phi = math.ceil(20 * phi - 1e-9) / 20
    i = np.arange(n, dtype=float)
    c = i - i.mean()
    r = phi ** np.abs(i[:, None] - i[None, :])
    z = np.column_stack([np.ones(n), i])
    mr = (np.eye(n) - z @ np.linalg.pinv(z)) @ r
    trace, variance_factor = np.trace(mr), c @ r @ c / (c @ c)
    df = trace**2 / np.trace(mr @ mr)
    sxx = float(np.sum((x - x.mean()) ** 2))
    se = math.sqrt(float(np.sum(resid**2)) / trace * variance_factor / sxx)
    t = stats.t.ppf(0.975, max(math.floor(df + 1e-9), 1))
    return {
        "slope": 100 * res.slope,
        "lo": 100 * (res.slope - t * se),
        "hi": 100 * (res.slope + t * se),
        "fitted": res.slope * (x.max() - x.min()),
        "phi": phi,
        "noise_sd": math.sqrt(float(np.sum(resid**2)) / trace),
        "df": df,
    }


def ar1_mean_variance_factor(phi: float, n: int) -> float:
    """Var(mean of n consecutive AR(1) points) / sigma^2, summed term by term from the correlations phi^|i-j|."""
    i = np.arange(n)
    return float(np.sum(phi ** np.abs(i[:, None] - i[None, :]))) / n**2
