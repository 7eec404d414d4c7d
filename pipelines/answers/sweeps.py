"""Which run of the sweep won? Rank a sweep's runs by their final checkpoint gap, ties kept as ties."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pipelines.answers.lookups import freshness, resolve_sweep
from pipelines.answers.sql import clean, json_value, one, rows

if TYPE_CHECKING:
    import duckdb


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
            config.setdefault(r["run_id"], {})[r["config_key"]] = json_value(r["value_json"])
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
        best_note = (
            f"the top-ranked run {top['run_name']} is {top['verdict']}: its gap is not a learning result to pick"
        )
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
                    "config": json_value(c["cell_config"]),
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
