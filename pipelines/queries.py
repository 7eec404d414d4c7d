"""The analyst's questions, answered from the published snapshot.

Each function takes an open read-only connection (see `open_snapshot`) and
returns plain dicts in the documented `--json` shape; the CLI only formats
them. Every value a user typed is bound as a parameter, never spliced into SQL.
Nothing here imports Dagster or dbt: this is the CLI's fast path.
"""

from __future__ import annotations

import datetime as dt
import difflib
import json
import math
from pathlib import Path
from typing import Any

import duckdb

from pipelines.judging import judge_p95, judge_rate, passed
from pipelines.settings import Thresholds, component_status, target_actions
from pipelines.timewin import Window, iso


class NoDataError(RuntimeError):
    """The warehouse holds nothing to answer with (exit code 2)."""


class LookupFailed(RuntimeError):
    """A run or sweep did not match exactly one thing (exit code 2)."""

    def __init__(self, message: str, candidates: list[str]) -> None:
        super().__init__(message)
        self.candidates = candidates


class ReadOnlyViolation(RuntimeError):
    """`grpo sql` was asked to change something."""


def open_snapshot(root: Path) -> duckdb.DuckDBPyConnection:
    """A read-only connection to the published snapshot; it can read only the warehouse's own parquet."""
    path = root / "grpo.duckdb"
    if not path.exists():
        raise NoDataError(f"no warehouse at {root} yet: run `grpo demo` or `grpo ingest ...` first")
    readable = [str(root / "raw") + "/", str(root / "published") + "/"]
    con = duckdb.connect(str(path), read_only=True)
    # User SQL may read the warehouse's raw parquet and nothing else on disk.
    con.execute("set TimeZone = 'UTC'")
    con.execute("set allowed_directories = [" + ", ".join(_sql_literal(d) for d in readable) + "]")
    con.execute("set enable_external_access = false")
    con.execute("set lock_configuration = true")
    return con


def _sql_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def rows(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None) -> list[dict[str, Any]]:
    cur = con.execute(sql, params or [])
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r)) for r in cur.fetchall()]


def one(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None) -> dict[str, Any] | None:
    r = rows(con, sql, params)
    return r[0] if r else None


def clean(value: Any) -> Any:
    """JSON-safe values: NaN/±Inf become null, timestamps ISO-8601 UTC, decimals floats."""
    if isinstance(value, float):
        return None if not math.isfinite(value) else value
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return iso(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    if hasattr(value, "__float__") and not isinstance(value, (int, bool)):
        return clean(float(value))
    return value


# --- freshness ---------------------------------------------------------------


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


# --- lookups -------------------------------------------------------------------


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


# --- learning --------------------------------------------------------------------


UNCLASSIFIED_NOTE = (
    "these Elo players match neither var fixed_reference_patterns nor var checkpoint_patterns "
    "(dbt_project.yml), so they count in no trend and no gap: add a pattern for them "
    "(checkpoint_patterns: group 1 = the training step), then rebuild (grpo ingest)"
)


def base_reference_player() -> str:
    from pipelines.settings import dbt_vars

    return str(dbt_vars().get("base_reference_player", "base_model"))


def elo(con: duckdb.DuckDBPyConnection, run_text: str) -> dict[str, Any]:
    run = resolve_run(con, run_text)
    rid = run["run_id"]
    verdict = one(con, "select * from fct_learning_verdicts where run_id = ?", [rid]) or {}
    refs = rows(con, "select * from fct_reference_trends where run_id = ? order by player", [rid])
    gap = one(con, "select * from fct_gap_trends where run_id = ?", [rid]) or {}
    stability = one(con, "select * from fct_training_stability where run_id = ?", [rid]) or {}
    superseded = rows(
        con, "select * from fct_superseded_checkpoints where run_id = ? order by checkpoint_step", [rid]
    )
    unclassified = rows(
        con,
        "select player, count(*) as n_points from fct_elo_trajectory "
        "where run_id = ? and player_kind = 'unclassified' group by player order by player",
        [rid],
    )
    n_checkpoints = one(
        con,
        "select count(distinct player) as n from fct_elo_trajectory where run_id = ? and player_kind = 'checkpoint'",
        [rid],
    )["n"]
    gap_missing = None
    if not gap.get("n_points"):
        gap_missing = (
            "no Elo player was classified as a checkpoint" + (" (see unclassified_players)" if unclassified else "")
            if n_checkpoints == 0
            else f"no evaluation step rates both a checkpoint and {base_reference_player()}"
        )
    return clean(
        {
            "run": run["run_name"],
            "run_id": rid,
            "sweep": run["sweep_key"],
            "verdict": verdict.get("verdict", "insufficient_data"),
            "reason": verdict.get("reason"),
            "n_eval_points": verdict.get("n_eval_points"),
            "references": [
                {
                    "player": r["player"],
                    "n_points": r["n_points"],
                    "first": r["first_elo"],
                    "last": r["last_elo"],
                    "delta": r["delta"],
                    "slope_per_100_steps": r["slope_per_100_steps"],
                    "ci95": [r["slope_ci95_lo"], r["slope_ci95_hi"]],
                    "noise_phi": r.get("noise_phi"),
                    "trend": r["trend"],
                }
                for r in refs
            ],
            "gap": {
                "first": gap.get("gap_first"),
                "last": gap.get("gap_last"),
                "delta": gap.get("gap_delta"),
                "final": gap.get("gap_final"),
                "slope_per_100_steps": gap.get("slope_per_100_steps"),
                "ci95": [gap.get("slope_ci95_lo"), gap.get("slope_ci95_hi")],
                "noise_phi": gap.get("noise_phi"),
                "trend": gap.get("trend", "insufficient_data"),
                "missing_reason": gap_missing,
            },
            "n_checkpoint_players": n_checkpoints,
            "unclassified_players": [{"player": u["player"], "n_points": u["n_points"]} for u in unclassified],
            "unclassified_note": UNCLASSIFIED_NOTE if unclassified else None,
            "stability": {
                "status": verdict.get("stability", "unknown"),
                "evidence": verdict.get("stability_evidence"),
                "non_finite_values": verdict.get("non_finite_stability_values"),
                "kl_p95": stability.get("kl_p95"),
                "kl_max": stability.get("kl_max"),
                "kl_spike_steps": stability.get("kl_spike_steps"),
                "grad_norm_max": stability.get("grad_norm_max"),
                "grad_norm_over_steps": stability.get("grad_norm_over_steps"),
            },
            "superseded_checkpoints": [
                {
                    "player": s["player"],
                    "checkpoint_step": s["checkpoint_step"],
                    "superseded_at_step": s["superseded_at_step"],
                    "elo_change_after_superseded": s["elo_change_after_superseded"],
                    "note": "no later ratings" if s["elo_change_after_superseded"] is None else None,
                }
                for s in superseded
            ],
            "game_ratings": game_ratings(con, rid, verdict.get("evidence")),
            "freshness": freshness(con, rid),
        }
    )


def _has_table(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    return one(con, "select count(*) as n from duckdb_tables() where table_name = ?", [name])["n"] > 0


def game_ratings(con: duckdb.DuckDBPyConnection, rid: str, evidence: str | None = None) -> dict[str, Any] | None:
    """Ratings from the run's league games (fct_game_ratings / fct_game_learning), next to the
    last logged Elo of each player; None when the run has no valid games (or the warehouse
    was published before the game marts existed)."""
    if not (_has_table(con, "fct_game_ratings") and _has_table(con, "fct_game_learning")):
        return None
    learning = one(con, "select * from fct_game_learning where run_id = ?", [rid])
    if not learning:
        return None
    logged = {
        r["player"]: r["last_elo"]
        for r in rows(
            con,
            "select player, arg_max(elo, step) as last_elo from fct_elo_trajectory "
            "where run_id = ? and isfinite(elo) group by player",
            [rid],
        )
    }
    players = rows(
        con,
        "select * from fct_game_ratings where run_id = ? and scope = 'run' "
        "order by rating desc nulls last, player",
        [rid],
    )
    return {
        "evidence": evidence,
        "anchor": learning["anchor"],
        "n_games": learning["n_games"],
        "bootstrap_rounds": learning["bootstrap_rounds"],
        "players": [
            {
                "player": r["player"],
                "kind": r["player_kind"],
                "n_games": r["n_games"],
                "rating": r["rating"],
                "ci95": [r["ci95_lo"], r["ci95_hi"]],
                "vs_anchor": r["vs_anchor"],
                "vs_anchor_ci95": [r["vs_anchor_ci95_lo"], r["vs_anchor_ci95_hi"]],
                "superiority_vs_anchor": r["superiority_vs_anchor"],
                "logged_elo": logged.get(r["player"]),
            }
            for r in players
        ],
        "best_checkpoint": {
            "player": learning["best_checkpoint"],
            "vs_anchor": learning["best_vs_anchor"],
            "ci95": [learning["best_vs_anchor_ci95_lo"], learning["best_vs_anchor_ci95_hi"]],
            "superiority": learning["best_superiority"],
            "games_needed": learning["games_needed"],
            "more_games_needed": learning["more_games_needed"],
            "target_half_width": learning["target_half_width"],
        },
        "newest_checkpoint": {
            "player": learning["newest_checkpoint"],
            "vs_anchor": learning["newest_vs_anchor"],
            "ci95": [learning["newest_vs_anchor_ci95_lo"], learning["newest_vs_anchor_ci95_hi"]],
            "superiority": learning["newest_superiority"],
        },
        "checkpoint_trend": {
            "slope_per_100_steps": learning["trend_per_100_steps"],
            "ci95": [learning["trend_ci95_lo"], learning["trend_ci95_hi"]],
            "trend": learning["checkpoint_trend"],
        },
        "harness_stable": learning["harness_stable"],
        "harness_evidence": learning["harness_evidence"],
        "intransitive_cycles": learning["intransitive_cycles"],
        "signal": learning["games_signal"],
    }


def elo_series(con: duckdb.DuckDBPyConnection, run_id: str) -> dict[str, Any]:
    """Trajectories for the plot: players by kind, and the gap."""
    traj = rows(
        con,
        "select player, player_kind, step, elo from fct_elo_trajectory where run_id = ? and isfinite(elo) order by player, step",
        [run_id],
    )
    gaps = rows(con, "select step, gap from fct_checkpoint_gaps where run_id = ? order by step", [run_id])
    return {"trajectory": traj, "gaps": gaps}


def sweep(con: duckdb.DuckDBPyConnection, text: str) -> dict[str, Any]:
    key = resolve_sweep(con, text)
    ranking = rows(con, "select * from fct_sweep_rankings where sweep_key = ? order by rank, run_name", [key])
    varying = rows(
        con, "select config_key from fct_sweep_config_variation where sweep_key = ? order by config_key", [key]
    )
    varying_keys = [v["config_key"] for v in varying]
    config: dict[str, dict[str, Any]] = {}
    if varying_keys:
        for r in rows(
            con,
            "select c.run_id, c.config_key, c.value_json from dim_run_config c "
            "join dim_runs d on d.run_id = c.run_id "
            "where d.sweep_key = ? and list_contains(?, c.config_key)",
            [key, varying_keys],
        ):
            config.setdefault(r["run_id"], {})[r["config_key"]] = _json_value(r["value_json"])
    latest = one(con, "select max(last_step) as s from dim_runs where sweep_key = ?", [key])
    fresh = freshness(con)
    fresh["latest_step"] = latest["s"] if latest else None
    # a warehouse published before fct_sweep_cells existed has none until its next build
    has_cells = one(con, "select count(*) as n from duckdb_tables() where table_name = 'fct_sweep_cells'")["n"]
    cells = rows(con, "select * from fct_sweep_cells where sweep_key = ? order by rank", [key]) if has_cells else []
    names = {c["cell_id"]: f"cell {c['rank']}" for c in cells}
    top = ranking[0] if ranking else None
    best_note = None
    if top is not None and top["verdict"] in ("unstable", "insufficient_data"):
        best_note = f"the top-ranked run {top['run_name']} is {top['verdict']}: its gap is not a learning result to pick"
    return clean(
        {
            "sweep": key,
            "ranked_by": ranking[0].get("ranked_by", "logged_elo") if ranking else None,
            "varying_config_keys": varying_keys,
            "best_note": best_note,
            "cells": [
                {
                    "rank": c["rank"],
                    "cell_id": c["cell_id"],
                    "config": _json_value(c["cell_config"]),
                    "runs": list(c["run_names"]),
                    "n_seeds": c["n_seeds"],
                    "single_seed": c["is_single_seed"],
                    "gap_final_iqm": c["gap_final_iqm"],
                    "gap_final_mean": c["gap_final_mean"],
                    "ci95": [c["gap_final_ci95_lo"], c["gap_final_ci95_hi"]],
                    "n_learning": c["n_learning"],
                    "n_unstable": c["n_unstable"],
                    "n_insufficient_data": c["n_insufficient_data"],
                    "is_tie": c["is_tie"],
                    "tied_with": [names.get(t, t) for t in (c["tied_with"] or [])],
                }
                for c in cells
            ],
            "runs": [
                {
                    "rank": r["rank"],
                    "run": r["run_name"],
                    "run_id": r["run_id"],
                    "verdict": r["verdict"],
                    "gap_last": r["gap_last"],
                    "gap_final": r["gap_final"],
                    "gap_final_se": r["gap_final_se"],
                    "base_model_delta": r["base_model_delta"],
                    "ranked_by": r.get("ranked_by", "logged_elo"),
                    "game_gap": r.get("game_gap"),
                    "game_gap_ci95": [r.get("game_gap_ci95_lo"), r.get("game_gap_ci95_hi")],
                    "is_tie": r["is_tie"],
                    "tied_with": list(r["tied_with"] or []),
                    "config": config.get(r["run_id"], {}),
                }
                for r in ranking
            ],
            "freshness": fresh,
        }
    )


def sweep_gap_series(con: duckdb.DuckDBPyConnection, sweep_key: str) -> list[dict[str, Any]]:
    return rows(
        con,
        "select g.run_id, d.run_name, g.step, g.gap from fct_checkpoint_gaps g "
        "join dim_runs d on d.run_id = g.run_id where d.sweep_key = ? order by d.run_name, g.step",
        [sweep_key],
    )


def _json_value(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


CANONICAL_METRICS = ("kl", "grad_norm", "reward", "loss", "entropy", "clip_ratio", "response_length")


def metric_path(key: str) -> str:
    """A metric key as a path: `train.kl` (a nested `run.log` dict) and `train/kl` are one name (as in dbt)."""
    return key.replace(".", "/")


def _elo_player(key: str) -> str | None:
    """The player of an Elo metric key (var elo_metric_prefix, matched as a path), else None."""
    from pipelines.settings import dbt_vars

    prefix = metric_path(str(dbt_vars().get("elo_metric_prefix", "elo/")))
    return key[len(prefix):] if metric_path(key).startswith(prefix) else None


def metrics(con: duckdb.DuckDBPyConnection, run_text: str, all_metrics: bool, aliases: dict[str, list[str]]) -> dict[str, Any]:
    run = resolve_run(con, run_text)
    rid = run["run_id"]
    summaries = rows(con, "select * from fct_metric_summaries where run_id = ? order by metric_key", [rid])
    if not all_metrics:
        wanted: list[str] = []
        by_path: dict[str, str] = {}
        for s in summaries:
            by_path.setdefault(metric_path(s["metric_key"]), s["metric_key"])
        for name in CANONICAL_METRICS:
            hit = next((by_path[metric_path(a)] for a in aliases.get(name, []) if metric_path(a) in by_path), None)
            if hit and hit not in wanted:
                wanted.append(hit)
        players = {r["player"] for r in rows(con, "select player from fct_reference_trends where run_id = ?", [rid])}
        references = sorted(k for k in by_path.values() if _elo_player(k) in players)
        wanted += [k for k in references if k not in wanted]
        summaries = [s for s in summaries if s["metric_key"] in wanted]
        summaries.sort(key=lambda s: wanted.index(s["metric_key"]))
    verdict = one(con, "select verdict, reason, stability as status, stability_evidence from fct_learning_verdicts where run_id = ?", [rid]) or {}
    stability = one(con, "select * from fct_training_stability where run_id = ?", [rid]) or {}
    actions = []
    if stability.get("has_grad_norm_over_target"):
        actions.append({"target": "grad_norm", **(_action("grad_norm") or {})})
    if stability.get("has_kl_spikes") or stability.get("is_kl_stable") is False:
        actions.append({"target": "kl", **(_action("kl") or {})})
    if stability.get("has_entropy_collapse"):
        actions.append({"target": "entropy", **(_action("entropy") or {})})
    for a in actions:
        a["next"] = a.get("next", "").replace("RUN", run["run_name"] or rid)
    return clean(
        {
            "run": run["run_name"],
            "run_id": rid,
            "verdict": verdict.get("verdict"),
            "reason": verdict.get("reason"),
            "stability": {
                "status": verdict.get("status", "unknown"),
                "evidence": verdict.get("stability_evidence"),
                **{k: v for k, v in stability.items() if k not in ("run_id", "run_name")},
            },
            "metrics": [
                {
                    "key": s["metric_key"],
                    "count": s["n_values"],
                    "first": s["first_value"],
                    "last": s["last_value"],
                    "min": s["min_value"],
                    "max": s["max_value"],
                    "mean": s["mean_value"],
                    "non_finite": s["non_finite"],
                }
                for s in summaries
            ],
            "actions": actions,
            "freshness": freshness(con, rid),
        }
    )


# --- pipeline health -----------------------------------------------------------------

_WINDOW = "event_at >= ? and event_at < ?"


def _action(target: str) -> dict[str, str] | None:
    """The playbook's action for a missed target (target_actions in dbt_project.yml), as {action, next}."""
    found = target_actions().get(target)
    return {"action": found.action, "next": found.next} if found else None


def _judged(outcome: str | None) -> dict[str, Any]:
    """`passed` (true, false, or null when inconclusive or without data) and `outcome`."""
    return {"passed": passed(outcome), "outcome": outcome}


def _rate_judged(k: int, n: int, target: float, below: bool, min_n: float) -> dict[str, Any]:
    outcome, ci = judge_rate(int(k), int(n), target, below, min_n)
    return {**_judged(outcome), "ci95": list(ci) if ci else None}


def _window_params(w: Window) -> list[Any]:
    return [w.since, w.until]


# Events join their run by run id, else by a unique run display name (fct_event_run_labels);
# a label that joins no run keeps its own row (joined = false) and is named in `unjoined_events`.
_RUN_KEY = "coalesce(l.run_key, e.run_id)"
_JOINED = "coalesce(bool_and(l.is_joined), false)"


def _has_table(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    return bool(one(con, "select count(*) as n from duckdb_tables() where table_name = ?", [name])["n"])


def _event_runs(con: duckdb.DuckDBPyConnection) -> str:
    """Joins from events `e` to their label's run `l` and that run `r` (a snapshot published before
    fct_event_run_labels existed joins by run id alone until its next build)."""
    if _has_table(con, "fct_event_run_labels"):
        return (
            "left join fct_event_run_labels l on l.run_label = e.run_id "
            "left join dim_runs r on r.run_id = coalesce(l.run_key, e.run_id)"
        )
    return (
        "left join (select run_id as run_label, run_id as run_key, true as is_joined from dim_runs) l "
        "on l.run_label = e.run_id left join dim_runs r on r.run_id = e.run_id"
    )


def unjoined_events(con: duckdb.DuckDBPyConnection, w: Window, *kinds: str) -> dict[str, Any]:
    """Events of `kinds` in the window whose run label joins no W&B run: how many, and which labels."""
    found = rows(
        con,
        f"""select e.run_id as run_label, count(*) as events
            from stg_axiom__events e {_event_runs(con)}
            where e.run_id is not null and not coalesce(l.is_joined, false)
              and list_contains(?, e.event_kind) and {_WINDOW.replace('event_at', 'e.event_at')}
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
            from stg_axiom__events e {_event_runs(con)}
            where e.event_kind = 'rollout' and e.duration_s is not null and {_WINDOW.replace('event_at', 'e.event_at')}
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
    outcome = judge_p95(p95, overall["count"] if overall else 0, t.rollout_p95_max_s, t.min_rollouts_for_p95)
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
            "by_run": [{**r, **_judged(judge_p95(r["p95_s"], r["count"], t.rollout_p95_max_s, t.min_rollouts_for_p95))} for r in by_run],
            "by_hour": [{**h, **_judged(judge_p95(h["p95_s"], h["count"], t.rollout_p95_max_s, t.min_rollouts_for_p95))} for h in by_hour],
            "action": _action("rollout_p95") if outcome == "fail" else None,
            "unjoined_events": unjoined_events(con, w, "rollout"),
            "freshness": freshness(con),
        }
    )


def errors(con: duckdb.DuckDBPyConnection, w: Window, t: Thresholds) -> dict[str, Any]:
    tot = one(
        con,
        f"""select count(*) filter (where event_kind = 'rollout') as rollouts,
                   count(*) filter (where event_kind = 'rollout' and is_failed) as failed_rollouts,
                   count(*) filter (where event_kind = 'error') as error_events
            from stg_axiom__events where {_WINDOW}""",
        _window_params(w),
    ) or {"rollouts": 0, "failed_rollouts": 0, "error_events": 0}
    rate = tot["failed_rollouts"] / tot["rollouts"] if tot["rollouts"] else None
    outcome, ci = judge_rate(tot["failed_rollouts"], tot["rollouts"], t.error_rate_max, True, t.min_rollouts_for_rate)
    by_component = rows(
        con,
        f"""select coalesce(e.component, '(none)') as component, count(*) as events,
                   count(distinct {_RUN_KEY}) as runs, max(e.event_at) as last_at
            from stg_axiom__events e {_event_runs(con)}
            where e.event_kind = 'error' and {_WINDOW.replace('event_at', 'e.event_at')}
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
            from stg_axiom__events e {_event_runs(con)}
            where e.event_kind = 'rollout' and {_WINDOW.replace('event_at', 'e.event_at')}
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
            "by_run": [{**r, **_rate_judged(r["failed_rollouts"], r["rollouts"], t.error_rate_max, True, t.min_rollouts_for_rate)} for r in by_run],
            "by_component": by_component,
            "by_type": by_type,
            "action": _action("error_rate") if outcome == "fail" else None,
            "unjoined_events": unjoined_events(con, w, "rollout", "error"),
            "freshness": freshness(con),
        }
    )


def extraction(con: duckdb.DuckDBPyConnection, w: Window, t: Thresholds) -> dict[str, Any]:
    tot = one(
        con,
        f"""select count(*) as events, sum(orders_expected) as orders_expected, sum(orders_extracted) as orders_extracted
            from stg_axiom__events where event_kind = 'extraction' and {_WINDOW}""",
        _window_params(w),
    )
    expected = (tot or {}).get("orders_expected") or 0
    extracted = (tot or {}).get("orders_extracted") or 0
    rate = extracted / expected if expected else None
    outcome, ci = judge_rate(extracted, expected, t.extraction_rate_min, False, t.min_orders_for_rate)
    by_run = rows(
        con,
        f"""select {_RUN_KEY} as run_id, any_value(coalesce(r.run_name, {_RUN_KEY})) as run, {_JOINED} as joined,
                   sum(e.orders_expected) as orders_expected, sum(e.orders_extracted) as orders_extracted,
                   sum(e.orders_extracted) / nullif(sum(e.orders_expected), 0) as extraction_rate
            from stg_axiom__events e {_event_runs(con)}
            where e.event_kind = 'extraction' and {_WINDOW.replace('event_at', 'e.event_at')}
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
                {**r, **_rate_judged(r["orders_extracted"] or 0, r["orders_expected"] or 0, t.extraction_rate_min, False, t.min_orders_for_rate)}
                for r in by_run
            ],
            "action": _action("extraction_rate") if outcome == "fail" else None,
            "unjoined_events": unjoined_events(con, w, "extraction"),
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
        out.append({**c, "silent_s": silent, "status": component_status(silent, c["last_status"], t)})
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
            "action": _action("heartbeat") if not_ok else None,
            "freshness": fresh,
        }
    )


def check(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    from pipelines.checks import CHECKS

    names = {(c.check_name, c.subject_type): c.name for c in CHECKS}
    targets = {(c.check_name, c.subject_type): c.target for c in CHECKS}
    actions = target_actions()
    out = rows(
        con,
        "select check_name, subject_type, subject, subject_label, value, threshold, comparison, passed, outcome, severity, "
        "observed_label, expected_label, n_observations, ci95_lo, ci95_hi "
        "from fct_check_outcomes order by outcome = 'pass', outcome = 'inconclusive', severity, check_name, subject",
    )
    return clean(
        {
            "checks": [
                {
                    "name": names.get((r["check_name"], r["subject_type"]), r["check_name"]),
                    "metric": r["check_name"],
                    "subject_type": r["subject_type"],
                    "subject": r["subject_label"] or r["subject"],
                    "subject_id": r["subject"],
                    "passed": r["passed"],
                    "outcome": r["outcome"],
                    "n": r["n_observations"],
                    "ci95": [r["ci95_lo"], r["ci95_hi"]] if r["ci95_lo"] is not None else None,
                    "severity": r["severity"],
                    "value": r["value"],
                    "threshold": r["threshold"],
                    "comparison": r["comparison"],
                    "observed": r["observed_label"],
                    "expected": r["expected_label"],
                    "action": _check_action(actions, targets.get((r["check_name"], r["subject_type"])), r),
                }
                for r in out
            ],
            "freshness": freshness(con),
        }
    )


def _check_action(actions: dict, target: str | None, r: dict[str, Any]) -> dict[str, str] | None:
    """The playbook's action for a failing check, its next command naming the run where it needs one."""
    found = actions.get(target) if target and r["outcome"] == "fail" else None
    if found is None:
        return None
    subject = r["subject_label"] or r["subject"]
    return {"action": found.action, "next": found.next.replace("RUN", subject) if r["subject_type"] == "run" else found.next}


# --- SQL and catalog -------------------------------------------------------------------

# Only SELECT: even EXPLAIN ANALYZE would run (and so could write) its statement.
ALLOWED_STATEMENTS = {"SELECT"}


def sql(con: duckdb.DuckDBPyConnection, query: str) -> tuple[list[str], list[tuple]]:
    """Run a read-only query; anything but SELECT is refused before it runs."""
    try:
        statements = con.extract_statements(query)
    except duckdb.Error as exc:
        raise ValueError(f"cannot parse the query: {exc}") from None
    if not statements:
        raise ValueError("the query is empty")
    for st in statements:
        kind = st.type.name
        if kind not in ALLOWED_STATEMENTS:
            raise ReadOnlyViolation(
                f"grpo sql is read-only: {kind} statements are refused (only SELECT queries run here)"
            )
    cur = None
    for st in statements:
        cur = con.execute(st)
    assert cur is not None
    names = [d[0] for d in cur.description] if cur.description else []
    return names, cur.fetchall()


def tables(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    return rows(con, "select table_name, description, row_count from _tables order by table_name")


def retrospective(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    return clean(rows(con, "select * from fct_run_retrospective order by sweep_key, run_name"))
