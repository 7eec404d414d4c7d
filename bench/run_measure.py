"""What one benchmark run measures, in order: data generation and read-back, both ingests,
the full build, the query commands, the pandas baseline and the incremental refresh,
each checked against what was generated.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

from bench.generate import DataSet, generate, validate_against_reader
from bench.generate_events import COMPONENTS, ERRORS
from bench.generate_plan import SCALES
from bench.hour_events import write_next_hour
from bench.run_children import child_env, peak_mb, run_queries, run_stage
from bench.run_report import compare_baseline, evaluate_targets


def query_commands(data: DataSet) -> dict[str, list[str]]:
    """The everyday questions, each a `grpo … --json` command line (name -> argv after `grpo`)."""
    mid = data.runs[len(data.runs) // 2]
    run, sweep = mid["name"], mid["name"].rsplit("-", 1)[0]
    until = data.t_end_iso
    return {
        "elo": ["elo", run, "--json"],
        "sweep": ["sweep", "--sweep", sweep, "--json"],
        "metrics": ["metrics", "-r", run, "--json"],
        "rollout-timing": ["rollout-timing", "--last", "6h", "--until", until, "--json"],
        "errors": ["errors", "--last", "1h", "--until", until, "--json"],
        "extraction-stats": ["extraction-stats", "--last", "24h", "--until", until, "--json"],
        "health": ["health", "--last", "1h", "--until", until, "--json"],
        "check": ["check", "--json"],
        "sql": ["sql", "select count(*) from raw_wandb_history", "--json"],
        # not one of the nine: the per-run table the all-runs Elo baseline is compared with
        "sql_elo_deltas": [
            "sql",
            "select run_name, delta from fct_reference_trends where player = 'base_model' order by run_name",
            "--json",
        ],
    }


def measure(a, res: dict[str, Any], workdir: Path, warehouse: Path, stage_dir: Path, save, say) -> None:
    """Every stage in order; `res` gains each stage's figures as soon as it has them, and is saved."""
    t0 = time.perf_counter()
    data = generate(workdir / f"data-{a.scale}", a.scale, seed=a.seed, say=say)
    gen_s = time.perf_counter() - t0
    n_validate = a.validate_runs if a.validate_runs is not None else (len(data.runs) if a.scale == "tiny" else 2)
    t0 = time.perf_counter()
    validation = validate_against_reader(data, n_validate) if n_validate else {"runs_checked": 0}
    say(
        f"data: {data.history_points:,} history points in {len(data.runs)} runs, {data.events:,} events; "
        f"reader check {validation}"
    )
    res["data"] = {
        "runs": len(data.runs),
        "steps": SCALES[a.scale].steps,
        "history_points": data.history_points,
        "events": data.events,
        "events_by_kind": data.events_by_kind,
        "wandb_gb": round(data.wandb_bytes / 1e9, 3),
        "events_gb": round(data.events_bytes / 1e9, 3),
        "reused": data.reused,
        "generate_s": round(gen_s, 2),
        "generate_detail_s": data.seconds,
        "t_end": data.t_end_iso,
        "reader_validation": validation,
        "reader_validation_s": round(time.perf_counter() - t0, 2),
        "increment": {
            "runs": len(data.increment_runs),
            "history_points": data.increment_history_points,
            "events": data.increment_events,
        },
    }
    res["history_points"], res["events"] = data.history_points, data.events
    res["stage_seconds"], res["peak_rss_mb"] = {}, {}
    save()

    if warehouse.exists():
        shutil.rmtree(warehouse)
    env = child_env(warehouse)

    def stage(key: str, name: str, args: dict[str, Any], sub: str = "") -> dict[str, Any]:
        out = run_stage(name, args, stage_dir / sub if sub else stage_dir, env, say)
        res["stage_seconds"][key] = round(out["process"]["wall_s"], 3)
        res["peak_rss_mb"][key] = peak_mb(out)
        res.setdefault("peak_rss_detail", {})[key] = {
            "largest_process_mb": round(out["process"]["maxrss_mb"], 1),
            "process_tree_sampled_mb": round(out["process"].get("tree_peak_mb", 0.0), 1),
        }
        return out

    ih = stage("ingest_history", "ingest_history", {"warehouse": str(warehouse), "wandb_dir": str(data.wandb_dir)})
    rep = ih["report"]
    if rep["new_history_rows"] != data.history_points or rep["new_runs"] != len(data.runs):
        raise RuntimeError(
            f"history ingest stored {rep['new_history_rows']:,} points of {rep['new_runs']} runs; "
            f"wrote {data.history_points:,} of {len(data.runs)}"
        )
    res["ingest_history_s"] = round(ih["seconds"], 3)
    res["ingest_history_points_per_s"] = round(data.history_points / ih["seconds"])
    res["ingest_detail"] = {
        "history": {k: rep[k] for k in ("new_runs", "new_history_rows", "wandb_seconds", "warnings")}
    }
    save()

    ie = stage("ingest_events", "ingest_events", {"warehouse": str(warehouse), "events_dir": str(data.events_dir)})
    rep = ie["report"]
    if rep["new_events"] != data.events or rep["new_rejects"]:
        raise RuntimeError(
            f"event ingest stored {rep['new_events']:,} events ({rep['new_rejects']} rejects); wrote {data.events:,}"
        )
    res["ingest_events_s"] = round(ie["seconds"], 3)
    res["ingest_events_per_s"] = round(data.events / ie["seconds"])
    res["ingest_detail"]["events"] = {k: rep[k] for k in ("new_events", "new_rejects", "events_seconds", "warnings")}
    save()

    full = stage("full_build", "build", {"warehouse": str(warehouse)}, "full")
    if not full["success"]:
        raise RuntimeError(f"full build failed: {full['errors']}")
    res["full_build_s"] = round(full["seconds"], 3)
    res["full_build"] = {
        k: full[k]
        for k in (
            "step_seconds",
            "dbt_command_s",
            "dbt_execution_s",
            "dbt_nodes",
            "dbt_node_seconds_sum",
            "dbt_slowest",
            "checks",
            "checks_failed",
        )
    }
    save()

    say("query commands …")
    queries = run_queries(query_commands(data), env, a.repeat, say)
    counted = queries["sql"]["answer"][0]["count_star()"]
    if counted != data.history_points:
        raise RuntimeError(f"`grpo sql` counts {counted:,} history rows; {data.history_points:,} were written")
    res["query_wall_s"] = {k: round(v["median_s"], 4) for k, v in queries.items()}
    res["peak_rss_mb"]["queries"] = round(max(v["peak_rss_mb"] for v in queries.values()), 1)
    res["queries"] = {k: {kk: vv for kk, vv in v.items() if kk != "answer"} for k, v in queries.items()}
    save()

    if "baseline" not in a.skip:
        cats = {
            "event": ["rollout", "inference", "extraction", "heartbeat"],
            "level": ["error"],
            "status": ["ok", "error"],
            "component": sorted({c for c, _, _ in COMPONENTS} | {e[0] for e in ERRORS}),
            "error_type": sorted({e[1] for e in ERRORS}),
            "run_id": [r["run_id"] for r in data.runs],
        }
        mid = data.runs[len(data.runs) // 2]["name"]
        b = stage(
            "baseline",
            "baseline",
            {
                "events_dir": str(data.events_dir),
                "exports_dir": str(data.exports_dir),
                "until": data.t_end_iso,
                "run": mid,
                "sweep": mid.rsplit("-", 1)[0],
                "categories": cats,
            },
        )
        res["baseline_ratio"], res["baseline_detail"] = compare_baseline(b, queries)
        res["baseline"] = {
            "method": "pandas.read_json(lines=True, engine='pyarrow') over every daily NDJSON file; "
            "pandas.read_csv of the W&B CSV history exports",
            "events_load_s": round(b["events_load_s"], 3),
            "events_loaded": b["events_loaded"],
            "events_frame_mb": round(b["events_frame_mb"], 1),
            "reader_mb_per_s": {k: round(v, 1) for k, v in b["reader_mb_per_s"].items()},
            "answers": {k: v["answer"] for k, v in b["questions"].items()},
        }
        save()

    if "seed_way" not in a.skip:
        from bench.seed_way import measure_seed_way

        t0 = time.perf_counter()
        res.update(measure_seed_way(data, queries, min(a.repeat, 3), say))  # a cold script takes seconds
        res["stage_seconds"]["seed_way"] = round(time.perf_counter() - t0, 3)
        save()

    if "incremental" not in a.skip:
        inc = stage(
            "incremental_refresh",
            "build",
            {
                "warehouse": str(warehouse),
                "wandb_dirs": [str(data.wandb_dir), str(data.increment_wandb_dir)],
                "event_paths": [str(data.events_dir), str(data.increment_events_dir)],
            },
            "incremental",
        )
        added_h = inc["after"]["history_rows"] - inc["before"]["history_rows"]
        added_e = inc["after"]["events"] - inc["before"]["events"]
        if not inc["success"] or added_h != data.increment_history_points or added_e != data.increment_events:
            raise RuntimeError(
                f"incremental refresh: success={inc['success']} added {added_h} points / {added_e} events; "
                f"expected {data.increment_history_points} / {data.increment_events}; {inc['errors']}"
            )
        res["incremental_refresh_s"] = round(inc["seconds"], 3)
        res["incremental_ratio"] = round(inc["seconds"] / full["seconds"], 3)
        res["incremental"] = {
            "added_history_points": added_h,
            "added_events": added_e,
            **{
                k: inc[k]
                for k in ("step_seconds", "dbt_command_s", "dbt_execution_s", "dbt_node_seconds_sum", "dbt_slowest")
            },
        }
        save()
        hour = write_next_hour(data, workdir / f"next-hour-{a.scale}")
        sync = stage(
            "events_hour_sync",
            "build",
            {
                "warehouse": str(warehouse),
                "event_paths": [str(data.events_dir), str(data.increment_events_dir), str(Path(hour["path"]).parent)],
            },
            "events-hour",
        )
        added_e = sync["after"]["events"] - sync["before"]["events"]
        if (
            not sync["success"]
            or added_e != hour["events"]
            or sync["after"]["history_rows"] != inc["after"]["history_rows"]
        ):
            raise RuntimeError(
                f"events-only sync: success={sync['success']} added {added_e} of {hour['events']} events"
            )
        # end to end: the whole process (start-up and imports included), as a scheduled run pays it
        res["events_hour_sync_s"] = res["stage_seconds"]["events_hour_sync"]
        res["events_hour_sync"] = {
            "added_events": added_e,
            "job_s": round(sync["seconds"], 3),
            **{k: sync[k] for k in ("step_seconds", "dbt_command_s", "dbt_execution_s", "dbt_nodes", "dbt_slowest")},
        }
        save()
    res["targets"] = evaluate_targets(res)
