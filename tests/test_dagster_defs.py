"""The Dagster code location: lineage, checks with values, the sensor and the schedule."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import numpy as np
import pytest

from tests.wandb_fixtures import write_runs

# 30 rollouts: enough for a p95 verdict (var min_rollouts_for_p95, 20)
DURATIONS = [30.0, 45.0, 60.0, 200.0, 250.0, 40.0, 35.0, 300.0, 50.0, 55.0] * 3


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    """One real W&B offline run with Elo, KL and grad norm, and a small NDJSON file."""
    root = tmp_path_factory.mktemp("sources")
    rng = np.random.default_rng(3)
    steps = []
    for step in range(1, 61):
        row = {"train/kl": 0.02 + 0.001 * rng.standard_normal(), "train/grad_norm": 3.0 + rng.random()}
        if step % 10 == 0:
            row.update(
                {
                    "elo/base_model": 1000 - 2.0 * step,
                    "elo/chaos_bot": 800 - 1.0 * step,
                    f"elo/ckpt_{step}": 1000 + step,
                }
            )
        steps.append({"step": step, "data": row})
    write_runs(
        [
            {
                "dir": str(root / "runs"),
                "init": {"id": "dgtest01", "name": "dg-run-1", "project": "p", "group": "g"},
                "steps": steps,
            }
        ],
        root,
    )
    events = root / "events.ndjson"
    lines = [
        json.dumps(
            {
                "_time": f"2026-11-26T05:{i:02d}:00Z",
                "event": "rollout",
                "run_id": "dgtest01",
                "rollout_id": str(i),
                "duration_s": d,
                "status": "ok",
                "engine": "e",
                "worker": "w",
            }
        )
        for i, d in enumerate(DURATIONS)
    ]
    events.write_text("\n".join(lines) + "\n")
    return root / "runs", events


@pytest.fixture(scope="module")
def defs(dbt_manifest):
    from pipelines.definitions import defs

    return defs


def test_raw_assets_feed_the_staging_models_so_the_lineage_connects(defs):
    graph = defs.resolve_asset_graph()
    parents = graph.get(dg.AssetKey(["stg_wandb__history"])).parent_keys
    assert dg.AssetKey(["raw", "wandb_history"]) in parents
    parents = graph.get(dg.AssetKey(["stg_axiom__events"])).parent_keys
    assert dg.AssetKey(["raw", "axiom_events"]) in parents
    assert dg.AssetKey(["warehouse_snapshot"]) in graph.get_all_asset_keys()


def test_every_target_and_every_dbt_test_is_an_asset_check(defs):
    from pipelines.answers.target_checks import CHECKS

    keys = {k.name for k in defs.resolve_asset_graph().asset_check_keys}
    assert {c.name for c in CHECKS} <= keys
    assert {"events_fresh", "wandb_fresh"} <= keys
    assert any(name.startswith("unique_") for name in keys)  # dbt tests came along


def test_the_build_job_records_check_results_with_value_and_threshold(sources, tmp_path, dbt_manifest):
    from pipelines.definitions import build_definitions
    from pipelines.defs.axiom.resources import EventSourcesResource
    from pipelines.defs.wandb.resources import WandbSourcesResource
    from pipelines.defs.warehouse.resources import WarehouseResource

    runs_dir, events = sources
    defs = build_definitions(
        warehouse=WarehouseResource(root=str(tmp_path / "wh")),
        wandb_sources=WandbSourcesResource(run_dirs=[str(runs_dir)]),
        event_sources=EventSourcesResource(paths=[str(events)]),
    )
    result = defs.resolve_job_def("build_warehouse").execute_in_process(instance=dg.DagsterInstance.ephemeral())
    assert result.success
    evals = {e.check_name: e for e in result.get_asset_check_evaluations()}
    p95 = evals["rollout_p95_per_run"]
    assert p95.passed is False
    md = p95.metadata
    assert md["threshold"].value == 120.0
    assert md["worst_value"].value == pytest.approx(np.percentile(DURATIONS, 95))
    assert "dg-run-1" in md["offending"].value
    assert evals["kl_no_spikes"].passed is True
    assert evals["base_model_elo_declining"].passed is True
    assert evals["base_model_elo_declining"].severity == dg.AssetCheckSeverity.WARN
    assert evals["events_fresh"].passed is False  # events from the past are stale now
    # the readers' decisions (damaged files, disagreeing segments) are a warning check on each raw asset
    readers = [e for e in result.get_asset_check_evaluations() if e.check_name == "read_without_warnings"]
    assert {e.asset_key.to_user_string() for e in readers} == {"raw/wandb_runs", "raw/axiom_events"}
    assert all(e.passed and e.severity == dg.AssetCheckSeverity.WARN for e in readers)
    mats = {m.asset_key.to_user_string(): m for m in result.get_asset_materialization_events()}
    hist = mats["raw/wandb_history"].materialization.metadata
    assert hist["dagster/row_count"].value == 60 * 2 + 6 * 3  # kl + grad_norm every step, 3 Elo keys on 6 evals
    snap = mats["warehouse_snapshot"].materialization.metadata
    assert "dg-run-1" in snap["latest_verdicts"].value
    assert snap["latest_gaps_plot"].value.startswith("![checkpoint gap](data:image/png;base64,")


def test_the_wandb_sensor_syncs_new_or_grown_runs_and_skips_unchanged_ones(sources, defs, tmp_path):
    import shutil

    from pipelines.defs.wandb.resources import WandbSourcesResource
    from pipelines.defs.wandb.sensors import wandb_runs_changed

    runs_dir, _ = sources
    copy = tmp_path / "runs"
    shutil.copytree(runs_dir, copy, symlinks=True)
    res = {"wandb_sources": WandbSourcesResource(run_dirs=[str(copy)])}
    ctx = dg.build_sensor_context(instance=dg.DagsterInstance.ephemeral(), resources=res)
    first = wandb_runs_changed(ctx)
    assert isinstance(first, dg.RunRequest)
    ctx = dg.build_sensor_context(instance=dg.DagsterInstance.ephemeral(), resources=res, cursor=ctx.cursor)
    assert isinstance(wandb_runs_changed(ctx), dg.SkipReason)
    wandb_file = next(Path(copy).rglob("run-*.wandb"))
    with open(wandb_file, "ab") as fh:
        fh.write(b"\0" * 16)  # the run grew
    ctx = dg.build_sensor_context(instance=dg.DagsterInstance.ephemeral(), resources=res, cursor=ctx.cursor)
    assert isinstance(wandb_runs_changed(ctx), dg.RunRequest)


def test_the_event_schedule_skips_when_no_event_source_is_configured(defs, monkeypatch):
    from pipelines.defs.axiom.resources import EventSourcesResource
    from pipelines.defs.axiom.schedules import events_every_5_minutes

    monkeypatch.delenv("GRPO_EVENT_PATHS", raising=False)
    monkeypatch.delenv("GRPO_AXIOM_DATASETS", raising=False)
    ctx = dg.build_schedule_context(resources={"event_sources": EventSourcesResource()})
    assert isinstance(events_every_5_minutes(ctx), dg.SkipReason)
    ctx = dg.build_schedule_context(resources={"event_sources": EventSourcesResource(paths=["/x.ndjson"])})
    assert isinstance(events_every_5_minutes(ctx), dg.RunRequest)


def test_dbt_and_publishing_share_one_memory_limit_default():
    """profiles.yml cannot import Python: its default for the build's DuckDB limit is kept equal here."""
    import re

    from pipelines.settings import BUILD_MEMORY_LIMIT_ENV, DEFAULT_BUILD_MEMORY_LIMIT, PROJECT_ROOT

    text = (PROJECT_ROOT / "profiles.yml").read_text(encoding="utf-8")
    (default,) = re.findall(r"memory_limit: \"\{\{ env_var\('(\w+)', '([^']+)'\) \}\}\"", text)
    assert default == (BUILD_MEMORY_LIMIT_ENV, DEFAULT_BUILD_MEMORY_LIMIT)


def test_the_dbt_resource_knows_the_dbt_version_without_running_dbt_and_keeps_dagster_dbts_hooks():
    """GrpoDbtCliResource replaces two private dagster-dbt hooks: they must still exist in the
    pinned dagster-dbt, and the version it reports must be what `dbt --version` says."""
    import re
    import subprocess

    from dagster_dbt import DbtCliResource

    from pipelines.defs.dbt.area import dbt_executable
    from pipelines.defs.dbt.project import dbt_project
    from pipelines.defs.dbt.resources import GrpoDbtCliResource

    assert hasattr(DbtCliResource, "_cli_version") and hasattr(DbtCliResource, "_initialize_dbt_core_adapter")
    out = subprocess.run([dbt_executable(), "--version"], capture_output=True, text=True, check=True).stdout
    core = re.search(r"installed:\s*(\d+\.\d+\.\d+)", out).group(1)

    resource = GrpoDbtCliResource(project_dir=dbt_project, dbt_executable=dbt_executable())

    assert str(resource._cli_version) == core
    assert resource._initialize_dbt_core_adapter(["build"]) is None


def test_a_damaged_run_file_fails_the_readers_warning_check_and_names_the_file(sources, tmp_path, dbt_manifest):
    import shutil

    from pipelines.definitions import build_definitions
    from pipelines.defs.axiom.resources import EventSourcesResource
    from pipelines.defs.wandb.resources import WandbSourcesResource
    from pipelines.defs.warehouse.ingest_materializations import INGEST_WARNINGS_KEY
    from pipelines.defs.warehouse.resources import WarehouseResource

    runs_dir, events = sources
    copy = tmp_path / "runs"
    shutil.copytree(runs_dir, copy, symlinks=True)
    damaged = next(p for p in copy.rglob("run-*.wandb") if not p.is_symlink())
    data = bytearray(damaged.read_bytes())
    data[len(data) // 2] ^= 0xFF  # a bad checksum mid-file: the reader skips that block and says so
    damaged.write_bytes(bytes(data))
    defs = build_definitions(
        warehouse=WarehouseResource(root=str(tmp_path / "wh")),
        wandb_sources=WandbSourcesResource(run_dirs=[str(copy)]),
        event_sources=EventSourcesResource(paths=[str(events)]),
    )
    result = defs.resolve_job_def("build_warehouse").execute_in_process(instance=dg.DagsterInstance.ephemeral())
    (check,) = [
        e for e in result.get_asset_check_evaluations()
        if e.check_name == "read_without_warnings" and e.asset_key.to_user_string() == "raw/wandb_runs"
    ]  # fmt: skip
    assert check.passed is False and check.severity == dg.AssetCheckSeverity.WARN
    listed = check.metadata[INGEST_WARNINGS_KEY].value
    assert any(str(damaged) in w and "checksum" in w for w in listed), listed
