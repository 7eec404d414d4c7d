"""Write seeds/t_critical_95.csv and seeds/t_critical_bonferroni.csv: Student-t critical values.

The learning marts build 95 % confidence intervals for least-squares slopes as
slope ± t(0.975, n - 2) · SE. DuckDB has no Student-t quantile function, so the
values come from this seed. Degrees of freedom 1-1000 are listed one by one; a
sparse tail follows. The marts take the row with the largest df not above the
needed one, so a df between two tail rows gets the slightly larger t of the
smaller df: the interval is never narrower than the exact one.

The sweep ranking compares every pair of a sweep's runs at once; with m pairs
the two-sided test of each is made at 5 % / m (Bonferroni), so the chance that
any tie is wrongly broken stays under 5 %. t_critical_bonferroni.csv holds
t(1 - 0.025 / m, df) on a grid of m and df; a lookup takes the smallest listed
m not below the real one and the largest listed df not above it, so the
threshold is never lower than the exact one.

Usage (scipy is a dev dependency):

    uv run python scripts/make_t_table.py
"""

from __future__ import annotations

import csv
from pathlib import Path

from scipy import stats

SEED = Path(__file__).resolve().parent.parent / "seeds" / "t_critical_95.csv"
BONFERRONI_SEED = SEED.with_name("t_critical_bonferroni.csv")
COMPARISONS = (*range(1, 46), *range(50, 201, 10), 250, 300, 400, 500, 750, 1000, 2000, 5000, 10_000, 100_000)
BONFERRONI_DFS = (*range(1, 101), 120, 150, 200, 300, 500, 1000, 10_000, 1_000_000)
DENSE_MAX_DF = 1000
SPARSE_TAIL = (1200, 1500, 2000, 3000, 5000, 10_000, 20_000, 50_000, 100_000, 1_000_000)


def t_table() -> list[tuple[int, float]]:
    """(df, t) rows: every df up to DENSE_MAX_DF, then the sparse tail."""
    dfs = [*range(1, DENSE_MAX_DF + 1), *SPARSE_TAIL]
    return [(df, float(stats.t.ppf(0.975, df))) for df in dfs]


def bonferroni_table() -> list[tuple[int, int, float]]:
    """(comparisons, df, t) rows: two-sided 5 % family-wise over `comparisons` tests."""
    return [(m, df, float(stats.t.ppf(1 - 0.025 / m, df))) for m in COMPARISONS for df in BONFERRONI_DFS]


def main() -> None:
    SEED.parent.mkdir(parents=True, exist_ok=True)
    with SEED.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["df", "t_critical"])
        for df, t in t_table():
            writer.writerow([df, f"{t:.10f}"])
    print(f"wrote {SEED}")
    with BONFERRONI_SEED.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["comparisons", "df", "t_critical"])
        for m, df, t in bonferroni_table():
            writer.writerow([m, df, f"{t:.10f}"])
    print(f"wrote {BONFERRONI_SEED}")


if __name__ == "__main__":
    main()
