"""dbt models as Dagster assets: staging -> intermediate -> marts, tests as asset checks."""

import json
import logging
import os
from collections.abc import Iterator, Mapping
from graphlib import TopologicalSorter
from pathlib import Path
from typing import Any, Optional

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings, DbtCliResource, dbt_assets

from pipelines.defs.dbt.project import dbt_project
from pipelines.defs.dbt.selection import build_exclusions, project_fingerprint
from pipelines.defs.warehouse.resources import WarehouseResource
from pipelines.raw.atomic_files import write_json_atomic
from pipelines.raw.layer import Warehouse


class GrpoDbtTranslator(DagsterDbtTranslator):
    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> Optional[str]:
        # models/<layer>/... -> the layer (staging, intermediate, marts) groups the UI graph
        fqn = dbt_resource_props.get("fqn") or []
        if dbt_resource_props.get("resource_type") == "model" and len(fqn) > 2:
            return fqn[1]
        if dbt_resource_props.get("resource_type") == "seed":
            return "reference"  # fixed lookup tables (t critical values)
        return super().get_group_name(dbt_resource_props)


class _SkippedTestsFilter(logging.Filter):
    """Drops Dagster's warning that a dbt test left out of a build (its model had no new
    raw batch) emitted no result: expected, one line per test, and its last outcome stands."""

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        return not (msg.startswith("Blocking asset check") and "emitted no result" in msg)


logging.getLogger("dagster._core.execution.plan.active").addFilter(_SkippedTestsFilter())

translator = GrpoDbtTranslator(settings=DagsterDbtTranslatorSettings(enable_asset_checks=True))


class DbtBuildConfig(dg.Config):
    """`full_refresh` rebuilds incremental models from the raw layer (needed after
    changing `event_fields`) and runs every data test over every row."""

    full_refresh: bool = False


@dbt_assets(
    manifest=dbt_project.manifest_path, project=dbt_project, dagster_dbt_translator=translator, name="grpo_dbt_models"
)
def grpo_dbt_models(
    context: dg.AssetExecutionContext, config: DbtBuildConfig, dbt: DbtCliResource, warehouse: WarehouseResource
):
    wh = warehouse.warehouse().ensure()
    # dbt runs as a subprocess and finds the warehouse through this variable (profiles.yml, sources).
    os.environ["GRPO_WAREHOUSE"] = str(wh.root)
    with wh.lock(timeout_s=warehouse.lock_timeout_s, purpose="dbt build", on_wait=context.log.info):
        newest = newest_batch(wh)
        since = "" if config.full_refresh else built_through(wh)
        fingerprint = project_fingerprint()
        # Nodes no new raw batch reaches are left out (pipelines/defs/dbt/selection.py).
        excluded, changed = build_exclusions(wh, dbt_project.manifest_path, since, built_with(wh), fingerprint)
        # Unit tests check the SQL, not the data: they run in the test suite
        # (tests/test_dbt_unit_tests.py), not on every build.
        args = ["build", "--exclude-resource-type", "unit_test"]
        if config.full_refresh:
            args.append("--full-refresh")
        if excluded:
            context.log.info(
                f"raw tables with new batches since {since}: {', '.join(sorted(changed)) or 'none'}; "
                f"{len(excluded)} dbt nodes they do not reach are left out"
            )
            args += ["--exclude", " ".join(excluded)]
        # Row-level tests of the big tables check only rows added since the last build.
        set_tests_since(wh, since)
        # The snapshot and checks downstream run only when every selected model
        # reported: the ones left out report first that they are unchanged (no
        # node dbt runs is upstream of one left out, so the order stays topological).
        yield from unchanged_results(context, set(excluded), since)
        if changed or not excluded:  # with no new batch at all, dbt would have nothing to do
            invocation = dbt.cli(args, context=context)
            yield from invocation.stream()
            keep_partial_parse(invocation.target_path)
        if set(context.selected_asset_keys) >= set(context.assets_def.keys):
            # Only a build of every model covered every table; after a partial one
            # (sync_events) the next full build still tests the others' new rows.
            mark_built(wh, newest, fingerprint)
    prune_invocation_dirs(dbt_project.project_dir / dbt_project.target_path)


def set_tests_since(wh: Warehouse, since: str) -> None:
    """Tell the row-level tests where new rows start (see tests_since_batch in macros/grain_tests.sql)."""
    from pipelines.engine import is_spark

    if is_spark():  # the Spark build's on-run-start writes it (macros/engine/run_start.sql)
        os.environ["GRPO_TESTS_SINCE"] = since
        return
    import duckdb

    con = duckdb.connect(str(wh.build_db))
    try:
        con.execute("create or replace table _grpo_tests_since as select ?::varchar as batch_id", [since])
    finally:
        con.close()


def keep_partial_parse(invocation_target: Path) -> None:
    """Make this build's parse the one the next build starts from.

    dagster-dbt copies target/partial_parse.msgpack into each build's own target
    folder; that file comes from `dbt parse` under another warehouse path, so
    dbt would parse the whole project again (~5 s) on every build.
    """
    import shutil

    made = invocation_target / "partial_parse.msgpack"
    if not made.exists():
        return
    shared = dbt_project.project_dir / dbt_project.target_path / "partial_parse.msgpack"
    tmp = shared.with_name(f".{shared.name}.{os.getpid()}.tmp")
    shutil.copyfile(made, tmp)
    os.replace(tmp, shared)


def prune_invocation_dirs(target: Path, keep: int = 3) -> None:
    """dagster-dbt leaves one target folder per build (manifest, logs): keep the newest few."""
    import shutil

    dirs = sorted((p for p in target.glob("grpo_dbt_models-*") if p.is_dir()), key=lambda p: p.stat().st_mtime)
    for old in dirs[:-keep]:
        shutil.rmtree(old, ignore_errors=True)


def newest_batch(wh: Warehouse) -> str:
    """The newest committed raw batch: everything up to it is in this build."""
    ids = [p.stem for p in wh.batches_dir.glob("*.json")] if wh.batches_dir.exists() else []
    return max(ids, default="")


def _marker(wh: Warehouse) -> Path:
    return wh.build_db.parent / "built_through.json"


def unchanged_results(
    context: dg.AssetExecutionContext, excluded: set[str], since: str
) -> Iterator[dg.MaterializeResult]:
    """A result for each selected model or seed dbt leaves out, upstream ones first."""
    keys = {k for k in context.selected_asset_keys if k.path[-1] in excluded}
    deps = context.assets_def.asset_deps
    for key in TopologicalSorter({k: deps.get(k, set()) & keys for k in keys}).static_order():
        yield dg.MaterializeResult(
            asset_key=key,
            metadata={"rebuilt": False, "unchanged_since_batch": since, "reason": "no new raw batch reaches it"},
        )


def _read_marker(wh: Warehouse) -> dict[str, Any]:
    marker = _marker(wh)
    from pipelines.engine import build_exists

    if not (marker.exists() and build_exists(wh)):
        return {}
    return json.loads(marker.read_text(encoding="utf-8"))


def built_through(wh: Warehouse) -> str:
    """The newest raw batch the last successful build covered ('' if none or the build DB is gone)."""
    return _read_marker(wh).get("batch_id", "")


def built_with(wh: Warehouse) -> str | None:
    """The project fingerprint of the last complete build (None if unknown: everything runs)."""
    return _read_marker(wh).get("project")


def mark_built(wh: Warehouse, batch_id: str, fingerprint: str | None = None) -> None:
    write_json_atomic({"batch_id": batch_id, "project": fingerprint}, _marker(wh))
