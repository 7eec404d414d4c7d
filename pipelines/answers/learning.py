"""Is the model learning? A run's Elo analysis (fixed references, checkpoints, the gap, game ratings),
its training metrics, and every run's retrospective."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pipelines.answers.lookups import freshness, resolve_run
from pipelines.answers.sql import clean, has_table, one, rows
from pipelines.answers.target_checks import action

if TYPE_CHECKING:
    import duckdb

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
    superseded = rows(con, "select * from fct_superseded_checkpoints where run_id = ? order by checkpoint_step", [rid])
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


def game_ratings(con: duckdb.DuckDBPyConnection, rid: str, evidence: str | None = None) -> dict[str, Any] | None:
    """Ratings from the run's league games (fct_game_ratings / fct_game_learning), next to the
    last logged Elo of each player; None when the run has no valid games (or the warehouse
    was published before the game marts existed)."""
    if not (has_table(con, "fct_game_ratings") and has_table(con, "fct_game_learning")):
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
        "select * from fct_game_ratings where run_id = ? and scope = 'run' order by rating desc nulls last, player",
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


CANONICAL_METRICS = ("kl", "grad_norm", "reward", "loss", "entropy", "clip_ratio", "response_length")


def metric_path(key: str) -> str:
    """A metric key as a path: `train.kl` (a nested `run.log` dict) and `train/kl` are one name (as in dbt)."""
    return key.replace(".", "/")


def _elo_player(key: str) -> str | None:
    """The player of an Elo metric key (var elo_metric_prefix, matched as a path), else None."""
    from pipelines.settings import dbt_vars

    prefix = metric_path(str(dbt_vars().get("elo_metric_prefix", "elo/")))
    return key[len(prefix) :] if metric_path(key).startswith(prefix) else None


def metrics(
    con: duckdb.DuckDBPyConnection, run_text: str, all_metrics: bool, aliases: dict[str, list[str]]
) -> dict[str, Any]:
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
    verdict = (
        one(
            con,
            "select verdict, reason, stability as status, stability_evidence from fct_learning_verdicts where run_id = ?",
            [rid],
        )
        or {}
    )
    stability = one(con, "select * from fct_training_stability where run_id = ?", [rid]) or {}
    actions = []
    if stability.get("has_grad_norm_over_target"):
        actions.append({"target": "grad_norm", **(action("grad_norm") or {})})
    if stability.get("has_kl_spikes") or stability.get("is_kl_stable") is False:
        actions.append({"target": "kl", **(action("kl") or {})})
    if stability.get("has_entropy_collapse"):
        actions.append({"target": "entropy", **(action("entropy") or {})})
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


def retrospective(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    return clean(rows(con, "select * from fct_run_retrospective order by sweep_key, run_name"))
