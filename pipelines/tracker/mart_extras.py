"""The figures the tracker needs beyond the retrospective rows: `tracker_extras` reads them from the
marts (ranks, standard errors, ties, stability flags, varying config keys, run configs, unjoined
event labels); `extras_from_runs` is the fallback built from the rows' config_json alone."""

from __future__ import annotations

import json
from typing import Any


def tracker_extras(con: Any) -> dict[str, Any]:
    """What the tracker shows beyond `learning.retrospective(con)`, as JSON-safe rows.

    Keys: `rankings` (fct_sweep_rankings: run_id, sweep_key, rank, gap_final,
    gap_final_se, is_tie, tied_with, and when built with games ranked_by, game_gap
    and its interval), `stability` (fct_training_stability:
    run_id, kl_spike_steps, has_kl_spikes, grad_norm_over_steps,
    has_grad_norm_over_target, grad_norm_max), `varying_config_keys`
    (fct_sweep_config_variation: sweep_key, config_key) and `run_config`
    (dim_run_config joined to dim_runs: run_id, sweep_key, config_key, value_text)
    and `unjoined_event_labels` (fct_event_run_labels: run labels events carry that join
    no W&B run, with their event counts). No query takes user input.
    """
    from pipelines.answers.sql import clean, rows

    return clean(
        {
            "rankings": rows(
                con,
                # every column: a snapshot published before the game columns existed still reads
                "select * from fct_sweep_rankings order by sweep_key, rank",
            ),
            "stability": rows(
                con,
                "select run_id, kl_spike_steps, has_kl_spikes, grad_norm_over_steps, "
                "has_grad_norm_over_target, grad_norm_max from fct_training_stability order by run_id",
            ),
            "varying_config_keys": rows(
                con, "select sweep_key, config_key from fct_sweep_config_variation order by sweep_key, config_key"
            ),
            "run_config": rows(
                con,
                "select c.run_id, r.sweep_key, c.config_key, c.value_text "
                "from dim_run_config c inner join dim_runs r on c.run_id = r.run_id "
                "order by r.sweep_key, c.run_id, c.config_key",
            ),
            "unjoined_event_labels": rows(
                con,
                "select run_label, n_events, n_rollouts, n_extractions, n_error_events from fct_event_run_labels "
                "where not is_joined order by n_events desc, run_label",
            )
            if _has_table(con, "fct_event_run_labels")
            else [],
        }
    )


def _has_table(con: Any, name: str) -> bool:
    return bool(con.execute("select count(*) from duckdb_tables() where table_name = ?", [name]).fetchone()[0])


def _flatten(prefix: str, value: Any, out: dict[str, str]) -> None:
    if isinstance(value, dict) and value:
        for k, v in value.items():
            if prefix == "" and k == "_wandb":
                continue
            _flatten(f"{prefix}.{k}" if prefix else str(k), v, out)
    elif prefix:
        out[prefix] = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


def extras_from_runs(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Config rows flattened from config_json, for callers that pass no `tracker_extras` (no ranks, no SEs)."""
    run_config = []
    for r in runs:
        try:
            cfg = json.loads(r.get("config_json") or "{}")
        except ValueError:
            continue
        flat: dict[str, str] = {}
        if isinstance(cfg, dict):
            _flatten("", cfg, flat)
        run_config += [
            {"run_id": r.get("run_id"), "sweep_key": r.get("sweep_key"), "config_key": k, "value_text": v}
            for k, v in flat.items()
        ]
    sizes: dict[Any, int] = {}
    for r in runs:
        sizes[r.get("sweep_key")] = sizes.get(r.get("sweep_key"), 0) + 1
    seen: dict[tuple, list[str]] = {}
    for c in run_config:
        seen.setdefault((c["sweep_key"], c["config_key"]), []).append(c["value_text"])
    varying = [
        {"sweep_key": s, "config_key": k}
        for (s, k), vals in sorted(seen.items(), key=lambda kv: (str(kv[0][0]), kv[0][1]))
        if len(set(vals)) > 1 or len(vals) < sizes.get(s, 0)
    ]
    return {"rankings": [], "stability": [], "varying_config_keys": varying, "run_config": run_config}
