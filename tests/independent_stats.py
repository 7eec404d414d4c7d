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


def pairwise_rows(games: list[list[tuple[str, float]]], higher_is_better: bool = True) -> list[tuple[str, str, float]]:
    """FastChat-style battle rows from multi-player games: one row per pair of seats, outcome
    1 (first won), 0.5 (draw), 0 (second won); plain Python, no code of ours."""
    import itertools

    rows = []
    for seats in games:
        for (pa, va), (pb, vb) in itertools.combinations(seats, 2):
            if not higher_is_better:
                va, vb = -va, -vb
            rows.append((pa, pb, 1.0 if va > vb else 0.5 if va == vb else 0.0))
    return rows


def logistic_bt_elo(rows: list[tuple[str, str, float]], anchor: str, anchor_rating: float = 1000.0) -> dict[str, float]:
    """Bradley–Terry ratings on the Elo scale by logistic regression over pairwise rows, as
    FastChat's compute_mle_elo does it (no intercept, no penalty; ties are half a win), solved
    with scipy.optimize (trust-exact on the rows' own gradient and Hessian, then three Newton
    steps with them), then anchored."""
    from scipy.optimize import minimize
    from scipy.special import expit

    names = sorted({r[0] for r in rows} | {r[1] for r in rows})
    ix = {n: i for i, n in enumerate(names)}
    a = np.array([ix[r[0]] for r in rows])
    b = np.array([ix[r[1]] for r in rows])
    y = np.array([r[2] for r in rows])
    k = len(names)
    x = np.zeros((len(rows), k))
    x[np.arange(len(rows)), a] = 1.0
    x[np.arange(len(rows)), b] = -1.0
    x = np.delete(x, ix[anchor], axis=1)  # the anchor's strength is 0: identifiability
    alpha = math.log(10.0) / 400.0

    def f(beta):
        z = alpha * (x @ beta)
        return float(np.sum(np.logaddexp(0.0, z) - y * z))

    def g(beta):
        return alpha * x.T @ (expit(alpha * (x @ beta)) - y)

    def h(beta):
        q = expit(alpha * (x @ beta))
        return alpha**2 * (x * (q * (1 - q))[:, None]).T @ x

    res = minimize(f, np.zeros(k - 1), jac=g, hess=h, method="trust-exact", options={"gtol": 1e-12, "maxiter": 1000})
    beta = res.x
    for _ in range(3):  # trust-exact stops early at gtol; Newton steps on the same rows finish the job
        beta = beta - np.linalg.solve(h(beta), g(beta))
    beta = np.insert(beta, ix[anchor], 0.0)
    return {n: anchor_rating + float(beta[i]) for n, i in ix.items()}
