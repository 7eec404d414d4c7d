"""Is the rollout pipeline healthy? Rollout timing, errors, extraction, inference and component health
in any time window, each judged against its target."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from pipelines.answers.judging import component_status, judge_p95, judge_rate, passed
from pipelines.answers.lookups import freshness
from pipelines.answers.sql import clean, has_table, one, rows
from pipelines.answers.target_checks import action
from pipelines.answers.windows import Window
from pipelines.settings import Thresholds

if TYPE_CHECKING:
    import duckdb

_WINDOW = "event_at >= ? and event_at < ?"


def _judged(outcome: str | None) -> dict[str, Any]:
    """`passed` (true, false, or null when inconclusive or without data) and `outcome`."""
    return {"passed": passed(outcome), "outcome": outcome}


def _rate_judged(
    con: duckdb.DuckDBPyConnection, k: int, n: int, target: float, below: bool, min_n: float
) -> dict[str, Any]:
    outcome, ci = judge_rate(int(k), int(n), target, below, min_n, con=con)
    return {**_judged(outcome), "ci95": list(ci) if ci else None}


def _window_params(w: Window) -> list[Any]:
    return [w.since, w.until]


# Events join their run by run id, else by a unique run display name (fct_event_run_labels);
# a label that joins no run keeps its own row (joined = false) and is named in `unjoined_events`.
_RUN_KEY = "coalesce(l.run_key, e.run_id)"


_JOINED = "coalesce(bool_and(l.is_joined), false)"


def _event_runs(con: duckdb.DuckDBPyConnection) -> str:
    """Joins from events `e` to their label's run `l` and that run `r` (a snapshot published before
    fct_event_run_labels existed joins by run id alone until its next build)."""
    if has_table(con, "fct_event_run_labels"):
        return (
            "left join fct_event_run_labels l on l.run_label = e.run_id "
            "left join dim_runs r on r.run_id = coalesce(l.run_key, e.run_id)"
        )
    return (
        "left join (select run_id as run_label, run_id as run_key, true as is_joined from dim_runs) l "
        "on l.run_label = e.run_id left join dim_runs r on r.run_id = e.run_id"
    )


def unjoined_events(con: duckdb.DuckDBPyConnection, w: Window, *kinds: str, joins: str | None = None) -> dict[str, Any]:
    """Events of `kinds` in the window whose run label joins no W&B run: how many, and which labels
    (`joins`: the answer's `_event_runs`, when it has them already)."""
    found = rows(
        con,
        f"""select e.run_id as run_label, count(*) as events
            from stg_axiom__events e {joins or _event_runs(con)}
            where e.run_id is not null and not coalesce(l.is_joined, false)
              and list_contains(?, e.event_kind) and {_WINDOW.replace("event_at", "e.event_at")}
            group by 1 order by events desc, run_label""",
        [list(kinds), *_window_params(w)],
    )
    total = sum(r["events"] for r in found)
    return {
        "count": total,
        "run_labels": found,
        "note": (
            f"{total} event(s) name a run that no W&B run has as id or (unique) display name: "
            + ", ".join(f"{r['run_label']} ({r['events']})" for r in found)
            + "; they count in the totals but in no run's row"
        )
        if found
        else None,
    }


def rollout_timing(con: duckdb.DuckDBPyConnection, w: Window, t: Thresholds) -> dict[str, Any]:
    joins = _event_runs(con)
    overall = one(
        con,
        f"""select count(*) as count,
                   quantile_cont(duration_s, 0.5) as p50_s, quantile_cont(duration_s, 0.95) as p95_s,
                   quantile_cont(duration_s, 0.99) as p99_s, max(duration_s) as max_s
            from stg_axiom__events where event_kind = 'rollout' and duration_s is not null and {_WINDOW}""",
        _window_params(w),
    )
    by_run = rows(
        con,
        f"""select {_RUN_KEY} as run_id, any_value(coalesce(r.run_name, {_RUN_KEY})) as run, {_JOINED} as joined, count(*) as count,
                   quantile_cont(e.duration_s, 0.5) as p50_s, quantile_cont(e.duration_s, 0.95) as p95_s,
                   max(e.duration_s) as max_s
            from stg_axiom__events e {joins}
            where e.event_kind = 'rollout' and e.duration_s is not null and {_WINDOW.replace("event_at", "e.event_at")}
            group by 1 order by p95_s desc nulls last, run, 1""",
        _window_params(w),
    )
    by_hour = rows(
        con,
        f"""select date_trunc('hour', event_at) as hour, count(*) as count,
                   quantile_cont(duration_s, 0.95) as p95_s
            from stg_axiom__events where event_kind = 'rollout' and duration_s is not null and {_WINDOW}
            group by 1 order by 1""",
        _window_params(w),
    )
    p95 = overall["p95_s"] if overall else None
    outcome = judge_p95(p95, overall["count"] if overall else 0, t.rollout_p95_max_s, t.min_rollouts_for_p95, con=con)
    return clean(
        {
            **w.as_dict(),
            "count": overall["count"] if overall else 0,
            "p50_s": overall["p50_s"] if overall else None,
            "p95_s": p95,
            "p99_s": overall["p99_s"] if overall else None,
            "max_s": overall["max_s"] if overall else None,
            "target_p95_s": t.rollout_p95_max_s,
            "min_count": t.min_rollouts_for_p95,
            **_judged(outcome),
            "by_run": [
                {
                    **r,
                    **_judged(judge_p95(r["p95_s"], r["count"], t.rollout_p95_max_s, t.min_rollouts_for_p95, con=con)),
                }
                for r in by_run
            ],
            "by_hour": [
                {
                    **h,
                    **_judged(judge_p95(h["p95_s"], h["count"], t.rollout_p95_max_s, t.min_rollouts_for_p95, con=con)),
                }
                for h in by_hour
            ],
            "action": action("rollout_p95") if outcome == "fail" else None,
            "unjoined_events": unjoined_events(con, w, "rollout", joins=joins),
            "freshness": freshness(con),
        }
    )


def errors(con: duckdb.DuckDBPyConnection, w: Window, t: Thresholds) -> dict[str, Any]:
    joins = _event_runs(con)
    tot = one(
        con,
        f"""select count(*) filter (where event_kind = 'rollout') as rollouts,
                   count(*) filter (where event_kind = 'rollout' and is_failed) as failed_rollouts,
                   count(*) filter (where event_kind = 'error') as error_events
            from stg_axiom__events where {_WINDOW}""",
        _window_params(w),
    ) or {"rollouts": 0, "failed_rollouts": 0, "error_events": 0}
    rate = tot["failed_rollouts"] / tot["rollouts"] if tot["rollouts"] else None
    outcome, ci = judge_rate(
        tot["failed_rollouts"], tot["rollouts"], t.error_rate_max, True, t.min_rollouts_for_rate, con=con
    )
    by_component = rows(
        con,
        f"""select coalesce(e.component, '(none)') as component, count(*) as events,
                   count(distinct {_RUN_KEY}) as runs, max(e.event_at) as last_at
            from stg_axiom__events e {joins}
            where e.event_kind = 'error' and {_WINDOW.replace("event_at", "e.event_at")}
            group by 1 order by events desc, component""",
        _window_params(w),
    )
    by_type = rows(
        con,
        f"""select coalesce(component, '(none)') as component, coalesce(error_type, '(none)') as error_type,
                   count(*) as events, arg_max(message, event_at) as last_message
            from stg_axiom__events where event_kind = 'error' and {_WINDOW}
            group by 1, 2 order by events desc, 1, 2""",
        _window_params(w),
    )
    by_run = rows(
        con,
        f"""select {_RUN_KEY} as run_id, any_value(coalesce(r.run_name, {_RUN_KEY})) as run, {_JOINED} as joined,
                   count(*) as rollouts, count(*) filter (where e.is_failed) as failed_rollouts,
                   count(*) filter (where e.is_failed) / count(*) as error_rate
            from stg_axiom__events e {joins}
            where e.event_kind = 'rollout' and {_WINDOW.replace("event_at", "e.event_at")}
            group by 1 order by error_rate desc, run, 1""",
        _window_params(w),
    )
    return clean(
        {
            **w.as_dict(),
            "rollouts": tot["rollouts"],
            "failed_rollouts": tot["failed_rollouts"],
            "error_rate": rate,
            "error_events": tot["error_events"],
            "target_error_rate": t.error_rate_max,
            "ci95": list(ci) if ci else None,
            "min_rollouts": t.min_rollouts_for_rate,
            **_judged(outcome),
            "by_run": [
                {
                    **r,
                    **_rate_judged(
                        con, r["failed_rollouts"], r["rollouts"], t.error_rate_max, True, t.min_rollouts_for_rate
                    ),
                }
                for r in by_run
            ],
            "by_component": by_component,
            "by_type": by_type,
            "action": action("error_rate") if outcome == "fail" else None,
            "unjoined_events": unjoined_events(con, w, "rollout", "error", joins=joins),
            "freshness": freshness(con),
        }
    )


def extraction(con: duckdb.DuckDBPyConnection, w: Window, t: Thresholds) -> dict[str, Any]:
    joins = _event_runs(con)
    tot = one(
        con,
        f"""select count(*) as events, sum(orders_expected) as orders_expected, sum(orders_extracted) as orders_extracted
            from stg_axiom__events where event_kind = 'extraction' and {_WINDOW}""",
        _window_params(w),
    )
    expected = (tot or {}).get("orders_expected") or 0
    extracted = (tot or {}).get("orders_extracted") or 0
    rate = extracted / expected if expected else None
    outcome, ci = judge_rate(extracted, expected, t.extraction_rate_min, False, t.min_orders_for_rate, con=con)
    by_run = rows(
        con,
        f"""select {_RUN_KEY} as run_id, any_value(coalesce(r.run_name, {_RUN_KEY})) as run, {_JOINED} as joined,
                   sum(e.orders_expected) as orders_expected, sum(e.orders_extracted) as orders_extracted,
                   sum(e.orders_extracted) / nullif(sum(e.orders_expected), 0) as extraction_rate
            from stg_axiom__events e {joins}
            where e.event_kind = 'extraction' and {_WINDOW.replace("event_at", "e.event_at")}
            group by 1 order by extraction_rate asc nulls last, run, 1""",
        _window_params(w),
    )
    return clean(
        {
            **w.as_dict(),
            "events": (tot or {}).get("events") or 0,
            "orders_expected": expected,
            "orders_extracted": extracted,
            "extraction_rate": rate,
            "target": t.extraction_rate_min,
            "ci95": list(ci) if ci else None,
            "min_orders": t.min_orders_for_rate,
            **_judged(outcome),
            "by_run": [
                {
                    **r,
                    **_rate_judged(
                        con,
                        r["orders_extracted"] or 0,
                        r["orders_expected"] or 0,
                        t.extraction_rate_min,
                        False,
                        t.min_orders_for_rate,
                    ),
                }
                for r in by_run
            ],
            "action": action("extraction_rate") if outcome == "fail" else None,
            "unjoined_events": unjoined_events(con, w, "extraction", joins=joins),
            "freshness": freshness(con),
        }
    )


_INFERENCE_STATS = """count(*) as requests,
                   quantile_cont(latency_s, [0.5, 0.95, 0.99]) as latency_q,
                   avg(tokens_per_s) as tokens_per_s_mean, quantile_cont(tokens_per_s, 0.5) as tokens_per_s_p50,
                   avg(queue_s) as queue_s_mean, quantile_cont(queue_s, 0.95) as queue_s_p95,
                   avg(batch_size) as batch_size_mean"""


def _inference_row(r: dict[str, Any]) -> dict[str, Any]:
    q = r.pop("latency_q") or [None, None, None]
    return {**r, "latency_p50_s": q[0], "latency_p95_s": q[1], "latency_p99_s": q[2]}


def inference(con: duckdb.DuckDBPyConnection, w: Window) -> dict[str, Any]:
    """Inference engine performance in a window: per engine (and host where events name one), and per hour."""
    where = f"event_kind = 'inference' and {_WINDOW}"
    total = one(con, f"select {_INFERENCE_STATS} from stg_axiom__events where {where}", _window_params(w))
    by_engine = rows(
        con,
        f"""select coalesce(engine, '(unknown)') as engine, coalesce(host, '') as host, {_INFERENCE_STATS}
            from stg_axiom__events where {where} group by 1, 2 order by 1, 2""",
        _window_params(w),
    )
    by_hour = rows(
        con,
        f"""select date_trunc('hour', event_at) as hour, coalesce(engine, '(unknown)') as engine, {_INFERENCE_STATS}
            from stg_axiom__events where {where} group by 1, 2 order by 1, 2""",
        _window_params(w),
    )
    total = _inference_row(total) if total else {"requests": 0}
    return clean(
        {
            **w.as_dict(),
            **total,
            "by_engine": [_inference_row(r) for r in by_engine],
            "by_hour": [_inference_row(r) for r in by_hour],
            "freshness": freshness(con),
        }
    )


def health(con: duckdb.DuckDBPyConnection, w: Window, t: Thresholds) -> dict[str, Any]:
    """Every component seen within the lookback before the window's end, judged at that end.

    A component that went silent before the window is listed (stale or down, with when it was
    last seen), not left out: silence is what a health question exists to catch.
    """
    fresh = freshness(con)
    # Staleness is judged at the window's end, but never past the newest
    # ingested event: a lagging ingest is reported as freshness, not as every
    # component being down.
    latest = one(con, "select latest_event_at as t from _snapshot")
    ref = w.until
    if latest and latest["t"] is not None and latest["t"] < ref:
        ref = latest["t"]
    lookback_start = w.until - dt.timedelta(seconds=t.health_lookback_s)
    comps = rows(
        con,
        """select component, coalesce(host, '') as host, max(event_at) as last_seen,
                  count(*) filter (where event_at >= ?) as heartbeats,
                  arg_max(status, event_at) as last_status, arg_max(gpu_util, event_at) as gpu_util
           from stg_axiom__events
           where event_kind = 'heartbeat' and event_at >= ? and event_at < ?
           group by component, host order by component, host""",
        [w.since, lookback_start, w.until],
    )
    out = []
    for c in comps:
        silent = max((ref - c["last_seen"]).total_seconds(), 0.0)
        out.append({**c, "silent_s": silent, "status": component_status(silent, c["last_status"], t, con=con)})
    not_ok = [c for c in out if c["status"] != "ok"]
    return clean(
        {
            **w.as_dict(),
            "as_of": ref,
            "stale_after_s": t.heartbeat_stale_after_s,
            "down_after_s": t.heartbeat_down_after_s,
            "lookback_s": t.health_lookback_s,
            "not_ok": len(not_ok),
            "components": out,
            "action": action("heartbeat") if not_ok else None,
            "freshness": fresh,
        }
    )
