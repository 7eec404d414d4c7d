"""Finding what a user named: a run by name or id, a sweep by id, name, group or prefix; and how fresh the data is."""

from __future__ import annotations

import difflib
from typing import TYPE_CHECKING, Any

from pipelines.answers.sql import LookupFailed, NoDataError, clean, one, rows

if TYPE_CHECKING:
    import duckdb


def freshness(con: duckdb.DuckDBPyConnection, run_id: str | None = None) -> dict[str, Any]:
    """How fresh the data behind an answer is: latest event, latest step, publish time.

    Computed at publish time (the `_snapshot` table), so stating it costs nothing.
    """
    snap = one(con, "select * from _snapshot") or {}
    out = {
        "latest_event_at": snap.get("latest_event_at"),
        "latest_step": snap.get("latest_step"),
        "latest_run_ingest": snap.get("latest_run_ingest"),
        "published_at": snap.get("published_at"),
    }
    if run_id is not None:
        st = one(
            con,
            "select last_step as latest_step, ingested_at as latest_run_ingest from stg_wandb__runs where run_id = ?",
            [run_id],
        )
        out.update(st or {"latest_step": None, "latest_run_ingest": None})
    return clean(out)


def resolve_run(con: duckdb.DuckDBPyConnection, text: str) -> dict[str, Any]:
    """A run by exact id or name, else by a unique prefix; otherwise LookupFailed with candidates."""
    runs = rows(con, "select run_id, run_name, sweep_key from dim_runs order by run_name, run_id")
    if not runs:
        raise NoDataError("the warehouse holds no W&B runs yet")
    exact = [r for r in runs if text in (r["run_id"], r["run_name"])]
    if len(exact) == 1:
        return exact[0]
    if len(exact) > 1:
        raise LookupFailed(f"run {text!r} is ambiguous", [_run_label(r) for r in exact])
    prefix = [r for r in runs if (r["run_name"] or "").startswith(text) or r["run_id"].startswith(text)]
    if len(prefix) == 1:
        return prefix[0]
    if prefix:
        raise LookupFailed(f"run {text!r} is ambiguous", [_run_label(r) for r in prefix])
    names = [r["run_name"] or r["run_id"] for r in runs]
    close = difflib.get_close_matches(text, names, n=5, cutoff=0.3) or names[:10]
    raise LookupFailed(f"no run named or with id {text!r}", close)


def _run_label(r: dict[str, Any]) -> str:
    return f"{r['run_name']} ({r['run_id']})"


def resolve_sweep(con: duckdb.DuckDBPyConnection, text: str) -> str:
    """The sweep key matching a sweep id or name, a group, or a run-name prefix."""
    keys = rows(
        con,
        "select distinct sweep_key from dim_runs "
        "where sweep_key = ? or sweep_id = ? or run_group = ? or starts_with(run_name, ?) "
        "order by sweep_key",
        [text, text, text, text],
    )
    found = [k["sweep_key"] for k in keys]
    if len(found) == 1:
        return found[0]
    if found:
        raise LookupFailed(f"sweep {text!r} matches several sweeps", found)
    all_keys = [k["sweep_key"] for k in rows(con, "select distinct sweep_key from dim_runs order by 1")]
    if not all_keys:
        raise NoDataError("the warehouse holds no W&B runs yet")
    raise LookupFailed(f"no sweep, group or run-name prefix matches {text!r}", all_keys)
