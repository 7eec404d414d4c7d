"""How an answer judges a value against its target: the rules `fct_check_outcomes` applies in SQL.

A rate (failed rollouts, extracted orders) is judged on its Wilson 95 % interval:
it passes only when the whole interval meets the target and fails only when
the whole interval misses it; an interval that straddles the target, or fewer
observations than the target's minimum, is `inconclusive` (0 failures in 50
rollouts does not prove an error rate under 1 %). A p95 is judged on its value
once enough rollouts are behind it.
"""

from __future__ import annotations

import math

Z95 = 1.959964


def wilson(k: int, n: int) -> tuple[float, float] | None:
    """The Wilson score 95 % interval of the share k / n; None for n = 0."""
    if n <= 0:
        return None
    p = k / n
    centre = (p + Z95 * Z95 / (2 * n)) / (1 + Z95 * Z95 / n)
    half = Z95 * math.sqrt(p * (1 - p) / n + Z95 * Z95 / (4 * n * n)) / (1 + Z95 * Z95 / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def judge_rate(
    k: int, n: int, target: float, below: bool, min_n: float
) -> tuple[str | None, tuple[float, float] | None]:
    """(pass | fail | inconclusive, or None without data; the interval) for a rate that must stay below
    (`below`) or above `target`."""
    ci = wilson(k, n)
    if ci is None:
        return None, None
    lo, hi = ci
    if n < min_n:
        return "inconclusive", ci
    if below:
        return ("pass" if hi < target else "fail" if lo >= target else "inconclusive"), ci
    return ("pass" if lo > target else "fail" if hi <= target else "inconclusive"), ci


def judge_p95(p95: float | None, n: int, target: float, min_n: float) -> str | None:
    """pass | fail | inconclusive for a p95 that must stay below `target`; None without data."""
    if p95 is None or n == 0:
        return None
    if n < min_n:
        return "inconclusive"
    return "pass" if p95 < target else "fail"


def passed(outcome: str | None) -> bool | None:
    """True for pass, False for fail, None for inconclusive or no data."""
    return {"pass": True, "fail": False}.get(outcome or "")
