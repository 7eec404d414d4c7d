"""Incremental builds give the same marts as a full rebuild of the same raw data.

A warehouse ingests the demo league in two stages through `grpo ingest` (the
real Dagster job and dbt build): stage A (four runs, one of them cut mid-file
as a run in progress, half of the growing event file), then stage B (every run
whole, the whole event file, plus late events that land in hours stage A had
already built, a heartbeat older than any stored one, and events of a run that
only stage B brings, stored in stage A). The second build is incremental. Then the same raw folder is copied into a second warehouse and
built with `grpo ingest --full-refresh`; every mart and intermediate table the
incremental build maintains must equal the full rebuild's row for row.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
import shutil
import sys
from pathlib import Path

import duckdb
import pytest

from bench import crash
from bench.crash_inputs import GROWING_NAME
from tests.clock import DEMO_END

EVENT_LINES = 3000  # per event file, as in the crash-safety tests: every kind of event, fast builds

# Every model built incrementally (macros/incremental.sql), with the columns that identify a row.
INCREMENTAL = {
    "fct_rollout_timing_hourly": ["hour_at"],
    "fct_inference_hourly": ["hour_at", "engine"],
    "fct_extraction_hourly": ["hour_at"],
    "fct_error_events_hourly": ["hour_at", "component", "error_type"],
    "fct_rollout_errors_hourly": ["hour_at", "run_id"],
    "fct_rollout_timing_by_run": ["run_id"],
    "fct_rollout_errors_by_run": ["run_id"],
    "fct_extraction_by_run": ["run_id"],
    "fct_metric_summaries": ["run_id", "metric_key"],
    "int_metric_keys_resolved": ["run_id", "canonical_name"],
    "fct_training_stability": ["run_id"],
    "int_elo_ratings_classified": ["run_id", "player", "step"],
    "fct_elo_trajectory": ["run_id", "player", "step"],
    "fct_checkpoint_gaps": ["run_id", "step"],
    "fct_superseded_checkpoints": ["run_id", "player"],
    "fct_component_health": ["component", "host"],
    "int_event_label_counts": ["run_label"],
}
# Tables built from them, which must follow.
DOWNSTREAM = [
    "fct_event_run_labels",
    "fct_reference_trends",
    "fct_gap_trends",
    "fct_learning_verdicts",
    "fct_run_retrospective",
    "fct_check_outcomes",
]


def _parsed(lines: list[bytes]) -> list[dict]:
    out = []
    for raw in lines:
        try:
            ev = json.loads(raw)
        except ValueError:
            continue
        if isinstance(ev, dict) and isinstance(ev.get("_time"), str):
            out.append(ev)
    return out


def _late_events(inputs, n: int = 40) -> list[bytes]:
    """New events (other ids and values) timestamped in hours stage A already built, one heartbeat a day
    before its component's first one, and two of stage A's lines copied verbatim (new events at the same instants).

    The events are picked by kind from every line the demo wrote (not only the lines served), so each kind is
    there whatever hour the demo ended at; their times are spread over the events stage A served.
    """
    served_a = inputs.stage_lines("A")
    a_times = [ev["_time"] for ev in _parsed(served_a)]
    everything = _parsed(inputs.demo_lines)
    # late heartbeats of one component only: it is recomputed, the others merge their new heartbeats
    late_component = next(ev["component"] for ev in everything if ev.get("event") == "heartbeat")
    first_heartbeat = min(
        dt.datetime.fromisoformat(ev["_time"].replace("Z", "+00:00"))
        for ev in everything
        if ev.get("event") == "heartbeat" and ev.get("component") == late_component
    )
    picked, kinds = [], {}
    for ev in everything:
        kind = ev.get("event") or ev.get("level")
        if kind not in ("rollout", "inference", "extraction", "error", "heartbeat") or kinds.get(kind, 0) >= n // 5:
            continue
        if kind == "heartbeat" and ev.get("component") != late_component:
            continue
        kinds[kind] = kinds.get(kind, 0) + 1
        picked.append((kind, dict(ev)))
    out = []
    for i, (kind, ev) in enumerate(picked):
        ev["_time"] = a_times[i * len(a_times) // len(picked)]
        ev["late_copy"] = True  # another event (another ingest key), same hour
        for field, scale in (("duration_s", 7.0), ("latency_s", 3.0), ("queue_s", 5.0)):
            if isinstance(ev.get(field), (int, float)):
                ev[field] = ev[field] * scale + 1
        if "rollout_id" in ev:
            ev["rollout_id"] = f"{ev['rollout_id']}-late"
        if kind == "rollout":
            ev["status"] = "error"  # the old hour's error rate changes too
        if kind == "extraction" and isinstance(ev.get("orders_expected"), int):
            ev["orders_extracted"] = 0
        if kind == "heartbeat":
            ev["status"] = "degraded"
            if not kinds.get("early_heartbeat"):  # before the component's first heartbeat
                kinds["early_heartbeat"] = 1
                ev["_time"] = (first_heartbeat - dt.timedelta(days=1)).isoformat()
        out.append(json.dumps(ev).encode())
    assert set(kinds) == {"rollout", "inference", "extraction", "error", "heartbeat", "early_heartbeat"}, kinds
    out.append(served_a[0].rstrip(b"\n"))
    out.append(next(line for line in served_a if b'"heartbeat"' in line).rstrip(b"\n"))
    return [line + b"\n" for line in out]


# Columns that differ between any two builds by design.
BUILD_TIME_COLUMNS = {"fct_check_outcomes": "evaluated_at"}


def _events_before_their_run(inputs) -> tuple[str, bytes]:
    """Events of a run that only stage B brings and that logs no other events: stage A stores
    them without a run name, and stage B's new run version alone must name them.

    The run is the one of stage B's new runs with the fewest demo events; whatever events it has
    are taken out of the served files, so this holds whatever hour the demo ended at."""
    in_a = {p.stem.removeprefix("run-") for p in inputs.stage_a_runs}
    candidates = sorted({p.stem.removeprefix("run-") for p in inputs.runs} - in_a)
    run_id = min(candidates, key=lambda rid: sum(rid.encode() in line for line in inputs.all_lines))
    inputs.drop_events_of(run_id)
    t = "2026-01-01T12:{:02d}:00Z"
    events = [
        {
            "_time": t.format(1),
            "event": "rollout",
            "run_id": run_id,
            "rollout_id": "early-1",
            "duration_s": 12.5,
            "status": "ok",
        },
        {
            "_time": t.format(2),
            "event": "rollout",
            "run_id": run_id,
            "rollout_id": "early-2",
            "duration_s": 30.0,
            "status": "error",
        },
        {
            "_time": t.format(3),
            "level": "error",
            "run_id": run_id,
            "component": "trainer",
            "error_type": "OOM",
            "message": "early",
        },
        {"_time": t.format(4), "event": "extraction", "run_id": run_id, "orders_expected": 10, "orders_extracted": 9},
    ]
    return run_id, b"".join(json.dumps(e).encode() + b"\n" for e in events)


def _rows(db: Path, table: str, key: list[str]) -> tuple[list[str], list[tuple]]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        exclude = f" exclude ({BUILD_TIME_COLUMNS[table]})" if table in BUILD_TIME_COLUMNS else ""
        cur = con.execute(f"select *{exclude} from {table} order by {', '.join(key)}")
        cols = [d[0] for d in cur.description]
        return cols, cur.fetchall()
    finally:
        con.close()


def _same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


def _differences(inc_db: Path, full_db: Path, table: str, key: list[str]) -> list[str]:
    cols, inc = _rows(inc_db, table, key)
    full_cols, full = _rows(full_db, table, key)
    assert cols == full_cols, f"{table}: columns differ"
    out = []
    if len(inc) != len(full):
        out.append(f"{table}: {len(inc)} rows incremental vs {len(full)} full refresh")
    for r_inc, r_full in zip(inc, full):
        bad = [c for c, x, y in zip(cols, r_inc, r_full) if not _same(x, y)]
        if bad:
            out.append(
                f"{table} {dict(zip(cols, r_full))}: {[(c, r_inc[cols.index(c)], r_full[cols.index(c)]) for c in bad]}"
            )
    return out[:5]


@pytest.fixture(scope="module")
def staged_warehouses(tmp_path_factory, dbt_manifest):
    tmp = tmp_path_factory.mktemp("incremental")
    demo = crash.generate_sources(tmp / "demo", now=DEMO_END)
    inputs = crash.Inputs(demo, tmp / "inputs", EVENT_LINES, cut_run=True)
    inc, full = tmp / "incremental", tmp / "full"

    early_run, early = _events_before_their_run(inputs)
    inputs.stage("A")
    (inputs.events / "early.ndjson").write_bytes(early)
    code, summary_a, err = crash.grpo_ingest(inc, inputs, tmp / "target-inc")
    assert code == 0, err[-3000:]
    con = duckdb.connect(str(inc / "grpo.duckdb"), read_only=True)
    hours_a = {h for (h,) in con.execute("select hour_at from fct_rollout_timing_hourly").fetchall()}
    counts_a = dict(con.execute("select hour_at, n_rollouts from fct_rollout_timing_hourly").fetchall())
    points_a = dict(con.execute("select run_id, sum(n_values) from fct_metric_summaries group by run_id").fetchall())
    con.close()

    # Stage B arrives in two syncs, each a batch of one source only, so each build leaves out the
    # models the other source feeds: first the events (the run files stay as stage A left them) ...
    late = b"".join(_late_events(inputs))
    (inputs.events / GROWING_NAME).write_bytes(b"".join(inputs.stage_lines("B")[len(inputs.archive_lines) :]))
    (inputs.events / "late.ndjson").write_bytes(late)
    code, summary_events, err = crash.grpo_ingest(inc, inputs, tmp / "target-inc")
    assert code == 0, err[-3000:]
    ran_events = _models_run(inc)
    # ... then the runs (the event files again, unchanged: nothing new in them).
    inputs.stage("B")
    (inputs.events / "early.ndjson").write_bytes(early)
    (inputs.events / "late.ndjson").write_bytes(late)
    code, summary_b, err = crash.grpo_ingest(inc, inputs, tmp / "target-inc")
    assert code == 0, err[-3000:]
    ran_wandb = _models_run(inc)

    full.mkdir()
    shutil.copytree(inc / "raw", full / "raw")
    proc = crash.subprocess.run(
        [crash.grpo_exe(), "ingest", "--full-refresh", "--json"],
        capture_output=True,
        text=True,
        env=crash.grpo_env(full, tmp / "target-full"),
        timeout=900,
        cwd=str(tmp),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {
        "inc": inc / "grpo.duckdb",
        "full": full / "grpo.duckdb",
        "hours_a": hours_a,
        "counts_a": counts_a,
        "early_run": early_run,
        "points_a": points_a,
        "summary_a": summary_a,
        "summary_events": summary_events,
        "summary_b": summary_b,
        "ran_events": ran_events,
        "ran_wandb": ran_wandb,
    }


def _models_run(warehouse: Path) -> set[str]:
    """The models the last `grpo ingest` built, from dbt's log of it."""
    log = (warehouse / "build" / "last_build.log").read_text(encoding="utf-8", errors="replace")
    return set(re.findall(r"OK created \w+ \w+ model [\w\"]+\.\"?(\w+)", log))


def _models_fed_only_by(source: str) -> set[str]:
    """Models all of whose raw inputs are tables of one dbt source ('wandb' or 'axiom'), from the manifest."""
    from pipelines.defs.dbt.project import dbt_project

    manifest = json.loads(dbt_project.manifest_path.read_text(encoding="utf-8"))
    parents = manifest["parent_map"]

    def sources_of(uid: str, seen: set[str]) -> set[str]:
        if uid in seen:
            return set()
        seen.add(uid)
        if uid.startswith("source."):
            return {manifest["sources"][uid]["source_name"]}
        return set().union(*(sources_of(p, seen) for p in parents.get(uid, [])))

    return {
        n["name"]
        for uid, n in manifest["nodes"].items()
        if n["resource_type"] == "model" and sources_of(uid, set()) == {source}
    }


def test_a_build_after_a_batch_of_one_source_runs_none_of_the_models_only_the_other_source_feeds(
    staged_warehouses,
):
    s = staged_warehouses
    assert s["summary_events"]["new_events"] > 0
    assert s["summary_events"]["new_history_rows"] == 0 and s["summary_events"]["new_runs"] == 0
    assert s["summary_b"]["new_events"] == 0 and s["summary_b"]["new_history_rows"] > 0
    wandb_only, events_only = _models_fed_only_by("wandb"), _models_fed_only_by("axiom")
    assert {"fct_metric_summaries", "fct_training_stability"} <= wandb_only
    assert {"fct_rollout_timing_hourly", "fct_component_health"} <= events_only
    # events only: the event marts ran, no W&B-only model did
    assert "fct_rollout_timing_hourly" in s["ran_events"] and "fct_check_outcomes" in s["ran_events"]
    assert s["ran_events"] & wandb_only == set()
    # runs only: the W&B marts and the event marts that name runs ran, no events-only model did
    assert "fct_metric_summaries" in s["ran_wandb"] and "fct_rollout_timing_by_run" in s["ran_wandb"]
    assert s["ran_wandb"] & events_only == set()
    # and the marts of both builds equal a full rebuild's (the comparisons below)


def test_stage_b_brings_new_runs_new_steps_of_a_running_run_late_events_and_names_runs_seen_in_events_first(
    staged_warehouses,
):
    s = staged_warehouses
    assert s["summary_b"]["runs"] > s["summary_a"]["runs"]
    # stage B's events came in the sync before its runs
    assert s["summary_b"]["new_history_rows"] > 0 and s["summary_events"]["new_events"] > 0
    con = duckdb.connect(str(s["inc"]), read_only=True)
    counts_b = dict(con.execute("select hour_at, n_rollouts from fct_rollout_timing_hourly").fetchall())
    points_b = dict(con.execute("select run_id, sum(n_values) from fct_metric_summaries group by run_id").fetchall())
    named = con.execute("select run_name from fct_rollout_timing_by_run where run_id = ?", [s["early_run"]]).fetchall()
    con.close()
    # the run cut mid-file in stage A got its remaining steps
    assert any(points_b[r] > n for r, n in s["points_a"].items())
    # the late rollouts changed hours the first build had already aggregated
    assert any(counts_b[h] > s["counts_a"][h] for h in s["hours_a"])
    # events stored before their run: named once stage B brought the run, with no new events of its own
    assert named and named[0][0], named


@pytest.mark.parametrize("table", list(INCREMENTAL) + DOWNSTREAM)
def test_an_incremental_build_equals_a_full_refresh_of_the_same_raw_data(staged_warehouses, table):
    key = INCREMENTAL.get(table)
    if key is None:
        cols, _ = _rows(staged_warehouses["full"], table, ["1"])
        key = cols
    assert _rows(staged_warehouses["full"], table, key)[1], f"{table} is empty: the comparison would prove nothing"
    assert _differences(staged_warehouses["inc"], staged_warehouses["full"], table, key) == []


# Vars the incremental models' rows depend on; a changed value must reach every stored row.
CHANGED_VARS = {"kl_spike_min": 0.05, "kl_spike_steps_allowed": 1000, "fixed_reference_patterns": ["^base_model$"]}
VAR_DEPENDENT = [
    "int_elo_ratings_classified",
    "fct_superseded_checkpoints",
    "fct_elo_trajectory",
    "fct_checkpoint_gaps",
    "int_metric_keys_resolved",
    "fct_training_stability",
]


def _dbt_run(warehouse: Path, target: Path, *args: str) -> None:
    from pipelines.settings import PROJECT_ROOT

    env = {**crash.grpo_env(warehouse, target)}
    proc = crash.subprocess.run(
        [
            str(Path(sys.executable).with_name("dbt")),
            "run",
            "--project-dir",
            str(PROJECT_ROOT),
            "--profiles-dir",
            str(PROJECT_ROOT),
            "--select",
            *VAR_DEPENDENT,
            "--vars",
            json.dumps(CHANGED_VARS),
            *args,
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        cwd=str(warehouse),
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]


def test_after_a_var_change_an_incremental_run_recomputes_every_stored_row(staged_warehouses):
    """Runs last: it rebuilds the two build databases (not the published snapshots) with other vars."""
    inc, full = staged_warehouses["inc"].parent, staged_warehouses["full"].parent
    _dbt_run(inc, inc.parent / "target-inc")  # no new data: only the changed vars can change rows
    _dbt_run(full, full.parent / "target-full", "--full-refresh")
    inc_db, full_db = inc / "build" / "warehouse.duckdb", full / "build" / "warehouse.duckdb"
    con = duckdb.connect(str(full_db), read_only=True)
    kinds = dict(
        con.execute("select player, any_value(player_kind) from int_elo_ratings_classified group by all").fetchall()
    )
    con.close()
    assert kinds.get("chaos_bot") == "unclassified"  # the new patterns did change the full rebuild
    for table in VAR_DEPENDENT:
        key = INCREMENTAL[table]
        assert _rows(full_db, table, key)[1], table
        assert _differences(inc_db, full_db, table, key) == []


def test_every_var_in_dbt_project_yml_is_part_of_the_settings_the_incremental_models_are_valid_for():
    """A var missing from macros/incremental.sql would leave rows built with its old value after a change."""
    import re

    import yaml

    from pipelines.settings import PROJECT_ROOT

    project_vars = set(yaml.safe_load((PROJECT_ROOT / "dbt_project.yml").read_text(encoding="utf-8"))["vars"])
    macro = (PROJECT_ROOT / "macros" / "incremental.sql").read_text(encoding="utf-8")
    listed = re.search(r"macro incremental_settings_vars\(\).*?return\(\[(.*?)\]\)", macro, re.S).group(1)
    assert set(re.findall(r"'([^']+)'", listed)) == project_vars
