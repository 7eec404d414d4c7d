"""How the tracker's markdown tables are written: one-line escaped cells, fixed-digit numbers and
percentages, the gap with its 95 % interval, the game gap, the stability counts, a sweep's config
values, and the table itself."""

from __future__ import annotations

import math
from typing import Any

# The gap's own 95 % interval, gap_final ± 1.96 · gap_final_se. Ties are fct_sweep_rankings' (all pairs, Bonferroni).
Z95 = 1.96
NOT_SET = "(not set)"
MISSING = "–"
MAX_VALUES_SHOWN = 6


def cell_text(v: Any) -> str:
    """A table cell: pipes escaped, one line."""
    if v is None:
        return MISSING
    return str(v).replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def finite(v: Any) -> float | None:
    if v is None or isinstance(v, bool):
        return None
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def fixed(v: Any, digits: int = 1) -> str:
    x = finite(v)
    if x is None:
        return MISSING
    out = f"{x:,.{digits}f}"
    return out[1:] if out.startswith("-") and float(out.replace(",", "")) == 0 else out  # no "-0.0"


def percent(v: Any) -> str:
    x = finite(v)
    return MISSING if x is None else fixed(100 * x) + " %"


def game_gap_cell(rk: dict[str, Any]) -> str:
    """`+212 [+180, +245]`: the newest checkpoint's lead over the anchor from the games, with its
    95 % bootstrap interval; MISSING without games."""
    g, lo, hi = finite(rk.get("game_gap")), finite(rk.get("game_gap_ci95_lo")), finite(rk.get("game_gap_ci95_hi"))
    if g is None:
        return MISSING
    return f"{g:+.0f}" + (f" [{lo:+.0f}, {hi:+.0f}]" if lo is not None and hi is not None else "")


def gap_cell(gap: Any, se: Any) -> str:
    """`205.0 [189.4, 220.6]`: the final gap and its 95 % interval; the gap alone without a standard error."""
    g, s = finite(gap), finite(se)
    if g is None:
        return MISSING
    if s is None:
        return fixed(g)
    return f"{fixed(g)} [{fixed(g - Z95 * s)}, {fixed(g + Z95 * s)}]"


def _count(v: Any) -> str:
    return MISSING if v is None else str(int(v))


def stability_cell(stab: dict[str, Any]) -> str:
    """`10 ⚠ / 4 ⚠`: KL spike steps / grad-norm steps at or over target, ⚠ where the mart flags the run."""
    kl = _count(stab.get("kl_spike_steps")) + (" ⚠" if stab.get("has_kl_spikes") else "")
    gn = _count(stab.get("grad_norm_over_steps")) + (" ⚠" if stab.get("has_grad_norm_over_target") else "")
    return f"{kl} / {gn}"


def _value_sort_key(text: str) -> tuple:
    x = finite(text) if text != NOT_SET else None
    return (0, x, text) if x is not None else (1, 0.0, text)


def values_text(values: set[str]) -> str:
    ordered = sorted(values, key=_value_sort_key)
    shown = ordered[:MAX_VALUES_SHOWN]
    more = len(ordered) - len(shown)
    return ", ".join(shown) + (f", … (+{more})" if more else "")


def markdown_table(header: list[str], body: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(cell_text(h) for h in header) + " |", "|" + "---|" * len(header)] + [
        "| " + " | ".join(row) + " |" for row in body
    ]
