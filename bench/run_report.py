"""The benchmark's results beyond the raw timings: the machine and commit measured, the
pandas comparison, the targets met, and the printed table.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from importlib import metadata
from typing import Any

from bench.run_children import REPO

# Stages that are not the warehouse (the memory target does not apply to them).
NOT_OURS = ("baseline",)

# Targets at full scale (README "Targets").
TARGETS = {
    "query_max_s": 1.0,
    "incremental_ratio_max": 0.10,
    "events_hour_sync_s_max": 10.0,
    "ingest_history_points_per_s_min": 1_000_000,
    "ingest_events_per_s_min": 500_000,
    "peak_rss_mb_max": 4096,
    "baseline_ratio_min": 20.0,
    "seed_way_ratio_min": 20.0,
}


def machine_info() -> dict[str, Any]:
    mem_kb = 0
    with open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    cpu = platform.processor() or ""
    with open("/proc/cpuinfo") as fh:
        for line in fh:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break

    def version(pkg: str) -> str | None:
        try:
            return metadata.version(pkg)
        except metadata.PackageNotFoundError:
            return None

    return {
        "cores": os.cpu_count(),
        "ram_gb": round(mem_kb / 2**20, 1),
        "cpu_model": cpu,
        "platform": platform.platform(),
        "python": platform.python_version(),
        **{
            p.replace("-", "_"): version(p)
            for p in ("duckdb", "pyarrow", "pandas", "dagster", "dbt-core", "dbt-duckdb", "wandb")
        },
        "loadavg_start": [round(x, 2) for x in os.getloadavg()],
    }


def code_version() -> dict[str, Any]:
    """The commit measured and the files changed on top of it: the tree changes while others work in it."""

    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=30).stdout
        except (OSError, subprocess.SubprocessError):
            return ""

    changed = [line[3:] for line in git("status", "--porcelain", "--untracked-files=no").splitlines() if len(line) > 3]
    return {
        "commit": git("rev-parse", "--short", "HEAD").strip(),
        "commit_date": git("log", "-1", "--format=%cI").strip(),
        "modified_files": changed,
    }


def _agree(a: float | None, b: float | None, rel: float = 1e-9) -> bool | None:
    if a is None or b is None:
        return None
    return abs(a - b) <= rel * max(1.0, abs(a), abs(b))


def compare_baseline(base: dict[str, Any], queries: dict[str, Any]) -> tuple[dict[str, float], dict[str, Any]]:
    """baseline time / our time per question, and whether both got the same answer."""
    q = base["questions"]
    ours = {
        "rollout_p95_window": "rollout-timing",
        "error_rate_window": "errors",
        "elo_delta_one_run": "elo",
        "sweep_ranking": "sweep",
        "rollout_p95_window_pruned": "rollout-timing",
        "error_rate_window_pruned": "errors",
        "elo_delta_all_runs": "sql_elo_deltas",
    }
    ratios, details = {}, {}
    for question, cmd in ours.items():
        our_s = queries[cmd]["median_s"]
        base_s = q[question]["seconds"]
        ans, mine = q[question]["answer"], queries[cmd]["answer"]
        if question.startswith("rollout_p95"):
            agree = _agree(ans["p95_s"], mine["p95_s"])
        elif question.startswith("error_rate"):
            agree = _agree(ans["error_rate"], mine["error_rate"])
        elif question == "elo_delta_one_run":
            ref = next((r for r in mine["references"] if r["player"] == "base_model"), {})
            agree = _agree(ans["delta"], ref.get("delta"), 1e-6)
        elif question == "sweep_ranking":
            agree = [r["run"] for r in ans][:1] == [r["run"] for r in mine["runs"]][:1]
        else:
            rows = {r["run_name"]: r["delta"] for r in mine}
            agree = bool(rows) and all(_agree(v, rows.get(k), 1e-6) for k, v in q[question]["deltas"].items())
        ratios[question] = round(base_s / our_s, 2)
        details[question] = {
            "baseline_s": round(base_s, 4),
            "ours_s": round(our_s, 4),
            "our_command": cmd,
            "same_answer": agree,
        }
    return ratios, details


def _status(ok: bool | None) -> str:
    return "–" if ok is None else ("[green]met[/]" if ok else "[red]missed[/]")


def print_report(res: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    c = Console(width=max(shutil.get_terminal_size((140, 40)).columns, 120))
    if "history_points" not in res:
        c.print(f"[red]no figures[/]: {res.get('error')}")
        return
    t = Table(
        title=f"grpo-warehouse benchmark, scale {res['scale']} "
        f"({res['history_points']:,} history points, {res['events']:,} events)",
        title_justify="left",
    )
    for col in ("figure", "value", "target (full scale)", ""):
        t.add_column(col)
    tg = res.get("targets", {})

    def met(key: str) -> str:
        return _status(tg.get(key, {}).get("met"))

    if "ingest_history_points_per_s" in res:
        t.add_row(
            "ingest history",
            f"{res['ingest_history_points_per_s']:,.0f} points/s ({res['ingest_history_s']:.1f} s)",
            "≥ 1M points/s",
            met("ingest_history_points_per_s"),
        )
    if "ingest_events_per_s" in res:
        t.add_row(
            "ingest events",
            f"{res['ingest_events_per_s']:,.0f} events/s ({res['ingest_events_s']:.1f} s)",
            "≥ 500k events/s",
            met("ingest_events_per_s"),
        )
    if "full_build_s" in res:
        t.add_row("full build (Dagster job, no new data)", f"{res['full_build_s']:.1f} s", "", "")
    if "incremental_refresh_s" in res:
        t.add_row(
            "incremental refresh (+1 %)",
            f"{res['incremental_refresh_s']:.1f} s ({100 * res['incremental_ratio']:.0f} % of full build)",
            "< 10 % of full build",
            met("incremental_ratio"),
        )
    if "events_hour_sync_s" in res:
        t.add_row(
            f"events-only sync of one hour ({res['events_hour_sync']['added_events']:,} events)",
            f"{res['events_hour_sync_s']:.1f} s end to end (job {res['events_hour_sync']['job_s']:.1f} s)",
            "< 10 s",
            met("events_hour_sync_s"),
        )
    for name, s in res.get("query_wall_s", {}).items():
        t.add_row(
            f"grpo {name}", f"{s:.3f} s (median of {res['repeat']})", "< 1 s", _status(s < TARGETS["query_max_s"])
        )
    for stage, mb in res.get("peak_rss_mb", {}).items():
        ours = stage not in NOT_OURS
        t.add_row(
            f"peak RSS {stage}" + ("" if ours else " (pandas)"),
            f"{mb:,.0f} MB",
            "< 4 GB" if ours else "",
            _status(mb < TARGETS["peak_rss_mb_max"]) if ours else "",
        )
    comparisons = (
        ("baseline", "vs pandas", "baseline_s"),
        ("seed_way", "vs the seed's way", "theirs_s"),
    )
    for key, label, theirs in comparisons:
        for q, r in res.get(f"{key}_ratio", {}).items():
            d = res[f"{key}_detail"][q]
            t.add_row(
                f"{label}: {q}",
                f"{r:,.1f}x ({d[theirs]:.2f} s / {d['ours_s']:.3f} s)",
                "≥ 20x",
                _status(r >= TARGETS[f"{key}_ratio_min"]),
            )
    c.print(t)


def evaluate_targets(res: dict[str, Any]) -> dict[str, Any]:
    """Each target with the measured value and whether it is met (targets are set for full scale)."""
    out: dict[str, Any] = {}

    def add(name: str, value: float, target: float, met: bool, **extra) -> None:
        out[name] = {"value": value, "target": target, "met": met, **extra}

    if "ingest_history_points_per_s" in res:
        v = res["ingest_history_points_per_s"]
        add(
            "ingest_history_points_per_s",
            v,
            TARGETS["ingest_history_points_per_s_min"],
            v >= TARGETS["ingest_history_points_per_s_min"],
        )
    if "ingest_events_per_s" in res:
        v = res["ingest_events_per_s"]
        add("ingest_events_per_s", v, TARGETS["ingest_events_per_s_min"], v >= TARGETS["ingest_events_per_s_min"])
    if "query_wall_s" in res:
        nine = {k: v for k, v in res["query_wall_s"].items() if k != "sql_elo_deltas"}
        v = max(nine.values())
        add("query_max_s", v, TARGETS["query_max_s"], v < TARGETS["query_max_s"], slowest=max(nine, key=nine.get))
    if "incremental_ratio" in res:
        v = res["incremental_ratio"]
        add("incremental_ratio", v, TARGETS["incremental_ratio_max"], v < TARGETS["incremental_ratio_max"])
    if "events_hour_sync_s" in res:
        v = res["events_hour_sync_s"]
        add("events_hour_sync_s", v, TARGETS["events_hour_sync_s_max"], v < TARGETS["events_hour_sync_s_max"])
    ours = {k: v for k, v in res.get("peak_rss_mb", {}).items() if k not in NOT_OURS}
    if ours:
        v = max(ours.values())
        add(
            "peak_rss_mb",
            v,
            TARGETS["peak_rss_mb_max"],
            v < TARGETS["peak_rss_mb_max"],
            worst_stage=max(ours, key=ours.get),
        )
    if "baseline_ratio" in res:
        primary = ("rollout_p95_window", "error_rate_window", "elo_delta_one_run", "sweep_ranking")
        v = min(res["baseline_ratio"][q] for q in primary)
        add(
            "baseline_ratio",
            v,
            TARGETS["baseline_ratio_min"],
            v >= TARGETS["baseline_ratio_min"],
            over=list(primary),
            missed_by=[q for q in primary if res["baseline_ratio"][q] < TARGETS["baseline_ratio_min"]],
        )
    if res.get("seed_way_ratio"):
        ratios = res["seed_way_ratio"]
        v = min(ratios.values())
        add(
            "seed_way_ratio",
            v,
            TARGETS["seed_way_ratio_min"],
            v >= TARGETS["seed_way_ratio_min"],
            missed_by=[q for q, r in ratios.items() if r < TARGETS["seed_way_ratio_min"]],
        )
    return out
