"""How an answer judges a value against its target: the very SQL `fct_check_outcomes` judges with.

The rule has one home, the macros in `macros/judging.sql`: dbt expands them in
`fct_check_outcomes`, and this module renders the same macros (plain Jinja, no
dbt functions) into DuckDB expressions for the CLI's arbitrary time windows.

A rate (failed rollouts, extracted orders) is judged on its Wilson 95 % interval:
it passes only when the whole interval meets the target and fails only when
the whole interval misses it; an interval that straddles the target, or fewer
observations than the target's minimum, is `inconclusive` (0 failures in 50
rollouts does not prove an error rate under 1 %). A p95 is judged on its value
once enough rollouts are behind it.
"""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipelines.settings import PROJECT_ROOT, Thresholds, thresholds

if TYPE_CHECKING:
    import duckdb

JUDGING_MACROS = PROJECT_ROOT / "macros" / "judging.sql"
# The macros rendered into this module's queries, with what they were rendered from (the macros'
# sha256; the ok statuses of component_status): an answer reads them while both still match, and
# renders with Jinja otherwise, so a stale file costs time, never a different answer. Importing
# Jinja and compiling the macros would cost each CLI answer ~30 ms. Written by
# `python -m pipelines.answers.judging`; tests/test_judging_rendered.py fails while it is stale.
RENDERED = Path(__file__).with_name("judging_rendered.json")


@functools.cache
def _macros() -> Any:
    import jinja2

    return (
        jinja2.Environment(undefined=jinja2.StrictUndefined)
        .from_string(JUDGING_MACROS.read_text(encoding="utf-8"))
        .module
    )


def _macros_sha256() -> str:
    return hashlib.sha256(JUDGING_MACROS.read_bytes()).hexdigest()


@functools.cache
def _stored() -> dict[str, Any]:
    """The stored rendering when it was rendered from the macros as they are now, else {}."""
    try:
        stored = json.loads(RENDERED.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return stored if isinstance(stored, dict) and stored.get("macros_sha256") == _macros_sha256() else {}


def _render_judge_sql(with_interval: bool) -> str:
    m = _macros()
    if with_interval:
        lo, hi = str(m.wilson_bound("$k", "$n", -1)), str(m.wilson_bound("$k", "$n", 1))
    else:
        lo = hi = "cast(null as double)"
    outcome = m.judge_outcome("$value", "$threshold", "$comparison", "$n", "$min_n", "ci95_lo", "ci95_hi")
    return f"select {outcome} as outcome, ci95_lo, ci95_hi from (select {lo} as ci95_lo, {hi} as ci95_hi)"


def _render_component_status_sql(ok_statuses: tuple[str, ...]) -> str:
    status = _macros().component_status(
        "$silent_s", "$last_status", "$down_after_s", "$stale_after_s", list(ok_statuses)
    )
    return f"select {status}"


@functools.cache
def _judge_sql(with_interval: bool) -> str:
    """One query judging the bound parameters $value, $threshold, $comparison, $n, $min_n (and, for a rate,
    the interval of $k out of $n): it returns (outcome, ci95_lo, ci95_hi)."""
    stored = _stored().get("judge_rate" if with_interval else "judge_value")
    return stored if isinstance(stored, str) else _render_judge_sql(with_interval)


@functools.cache
def _component_status_sql(ok_statuses: tuple[str, ...]) -> str:
    stored = _stored().get("component_status") or {}
    if stored.get("ok_statuses") == list(ok_statuses) and isinstance(stored.get("sql"), str):
        return stored["sql"]
    return _render_component_status_sql(ok_statuses)


def rendered(ok_statuses: tuple[str, ...]) -> dict[str, Any]:
    """The stored rendering's content, rendered afresh with Jinja (component_status for `ok_statuses`)."""
    return {
        "macros_sha256": _macros_sha256(),
        "judge_rate": _render_judge_sql(True),
        "judge_value": _render_judge_sql(False),
        "component_status": {
            "ok_statuses": list(ok_statuses),
            "sql": _render_component_status_sql(ok_statuses),
        },
    }


def write_rendered() -> None:
    """Store the rendering for the project's own ok statuses (var heartbeat_ok_statuses)."""
    text = json.dumps(rendered(tuple(thresholds().heartbeat_ok_statuses)), indent=2, ensure_ascii=False)
    RENDERED.write_text(text + "\n", encoding="utf-8")


@functools.cache
def _own_con() -> duckdb.DuckDBPyConnection:
    from pipelines.answers.sql import duckdb as engine

    return engine.connect()  # in memory: judging reads no table


def _con(con: duckdb.DuckDBPyConnection | None) -> duckdb.DuckDBPyConnection:
    """The caller's connection (an answer's snapshot: judging reads no table, and opening a
    database of its own costs a CLI answer ~20 ms), else one of judging's own."""
    return con if con is not None else _own_con()


def _judge(
    params: dict[str, Any], with_interval: bool, con: duckdb.DuckDBPyConnection | None
) -> tuple[str | None, float | None, float | None]:
    return _con(con).execute(_judge_sql(with_interval), params).fetchone()  # type: ignore[return-value]


def wilson(k: int, n: int, con: duckdb.DuckDBPyConnection | None = None) -> tuple[float, float] | None:
    """The Wilson score 95 % interval of the share k / n; None for n = 0."""
    if n <= 0:
        return None
    _, lo, hi = _judge(
        {"k": k, "n": n, "value": k / n, "threshold": 0.0, "comparison": "<", "min_n": None},
        with_interval=True,
        con=con,
    )
    return lo, hi


def judge_rate(
    k: int, n: int, target: float, below: bool, min_n: float, con: duckdb.DuckDBPyConnection | None = None
) -> tuple[str | None, tuple[float, float] | None]:
    """(pass | fail | inconclusive, or None without data; the interval) for a rate that must stay below
    (`below`) or above `target`."""
    if n <= 0:
        return None, None
    outcome, lo, hi = _judge(
        {"k": k, "n": n, "value": k / n, "threshold": target, "comparison": "<" if below else ">", "min_n": min_n},
        with_interval=True,
        con=con,
    )
    return outcome, (lo, hi)


def judge_p95(
    p95: float | None, n: int, target: float, min_n: float, con: duckdb.DuckDBPyConnection | None = None
) -> str | None:
    """pass | fail | inconclusive for a p95 that must stay below `target`; None without data."""
    if p95 is None or n == 0:
        return None
    outcome, _, _ = _judge(
        {"value": p95, "threshold": target, "comparison": "<", "n": n, "min_n": min_n}, with_interval=False, con=con
    )
    return outcome


def judge_value(
    value: float | None, target: float, comparison: str, con: duckdb.DuckDBPyConnection | None = None
) -> str | None:
    """pass | fail for a value that must relate to `target` by `comparison` ('<', '<=', '>', '>='); None without it."""
    if value is None:
        return None
    outcome, _, _ = _judge(
        {"value": value, "threshold": target, "comparison": comparison, "n": None, "min_n": None},
        with_interval=False,
        con=con,
    )
    return outcome


def component_status(
    silent_s: float, last_status: str | None, t: Thresholds, con: duckdb.DuckDBPyConnection | None = None
) -> str:
    """down | stale | degraded | ok: the rule fct_component_health applies, with the same vars."""
    params = {
        "silent_s": silent_s,
        "last_status": last_status,
        "down_after_s": t.heartbeat_down_after_s,
        "stale_after_s": t.heartbeat_stale_after_s,
    }
    return _con(con).execute(_component_status_sql(tuple(t.heartbeat_ok_statuses)), params).fetchone()[0]


def passed(outcome: str | None) -> bool | None:
    """True for pass, False for fail, None for inconclusive or no data."""
    return {"pass": True, "fail": False}.get(outcome or "")


if __name__ == "__main__":  # pragma: no cover
    write_rendered()
