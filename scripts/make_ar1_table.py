"""Write seeds/ar1_trend_factors.csv: how AR(1) noise widens a least-squares slope's interval.

Elo ratings logged during training are online ratings: each update starts from
the previous rating, so the noise of a fixed-strength player's rating is
autocorrelated (roughly AR(1), lag-1 correlation phi). Ordinary least squares
then still estimates the slope without bias, but its textbook standard error
is too small, by a factor that grows with phi: a flat series looks like a
trend far more often than 5 % of the time.

For n equally spaced points and AR(1) noise with correlation phi (covariance
sigma^2 R, R_ij = phi^|i-j|), with x the centred positions, Sxx = x'x and M the
residual-maker of the fit (I - H, H the hat matrix of [1, x]):

* Var(slope) = sigma^2 x'Rx / Sxx^2: `variance_factor` = x'Rx / Sxx (1 with phi = 0);
* E[SSE] = sigma^2 tr(MR): `residual_trace` replaces n - 2 in s^2 = SSE / tr(MR);
* `df`: Satterthwaite's degrees of freedom of s^2, tr(MR)^2 / tr(MRMR) (n - 2 with phi = 0).

The slope's standard error is then sqrt(SSE / residual_trace * variance_factor
/ Sxx) and its 95 % interval uses t(0.975, df). This is the exact small-sample
correction for a known phi (generalised-least-squares theory, applied to the
OLS estimator; see e.g. Hamilton, Time Series Analysis, ch. 8, and
Satterthwaite 1946 for the degrees of freedom); the marts take phi from the
residuals' lag-1 autocorrelation, bias-corrected, and never below a floor set
in dbt_project.yml. phi is listed in steps of 0.05 (the marts round up to the
next step, which can only widen an interval) from 0 to 0.95, n from 3 to 400
(longer series use the n = 400 row's factors, with the trace and df scaled by
n / 400).

Usage:

    uv run python scripts/make_ar1_table.py
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

SEED = Path(__file__).resolve().parent.parent / "seeds" / "ar1_trend_factors.csv"
PHIS = [round(0.05 * k, 2) for k in range(20)]  # 0.00 .. 0.95
N_MAX = 400


def factors(n: int, phi: float) -> tuple[float, float, float]:
    """(variance_factor, residual_trace, df) for n equally spaced points and AR(1) correlation phi."""
    i = np.arange(n, dtype=float)
    x = i - i.mean()
    sxx = float(x @ x)
    r = phi ** np.abs(i[:, None] - i[None, :])
    z = np.column_stack([np.ones(n), i])
    m = np.eye(n) - z @ np.linalg.pinv(z)
    mr = m @ r
    trace = float(np.trace(mr))
    return float(x @ r @ x / sxx), trace, trace * trace / float(np.trace(mr @ mr))


def main() -> None:
    SEED.parent.mkdir(parents=True, exist_ok=True)
    with SEED.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["phi", "n_points", "variance_factor", "residual_trace", "df"])
        for phi in PHIS:
            for n in range(3, N_MAX + 1):
                vf, tr, df = factors(n, phi)
                writer.writerow([f"{phi:.2f}", n, f"{vf:.10g}", f"{tr:.10g}", f"{df:.10g}"])
    print(f"wrote {SEED}")


if __name__ == "__main__":
    main()
