"""The Dagster code location: merges the areas under pipelines/defs/.

Import this only after the dbt manifest exists (`dagster dev` prepares it;
`grpo` calls pipelines.defs.dbt.project.ensure_manifest() first).
"""

from __future__ import annotations

import dagster as dg
from dagster_dbt import DbtCliResource

from pipelines.defs.axiom.assets import events_raw
from pipelines.defs.axiom.resources import EventSourcesResource
from pipelines.defs.checks.checks import target_checks
from pipelines.defs.dbt.assets import grpo_dbt_models
from pipelines.defs.dbt.project import dbt_project
from pipelines.defs.wandb.assets import wandb_raw
from pipelines.defs.wandb.resources import WandbSourcesResource
from pipelines.defs.warehouse.assets import warehouse_snapshot
from pipelines.defs.warehouse.resources import WarehouseResource

ALL_ASSETS = [wandb_raw, events_raw, grpo_dbt_models, warehouse_snapshot]

# Sources -> raw -> dbt -> snapshot -> checks, one step at a time: only one
# process may write the DuckDB build file, so there is nothing to parallelise.
build_warehouse_job = dg.define_asset_job(
    "build_warehouse",
    selection=dg.AssetSelection.all(),
    description="Ingest every configured source, build all dbt models and tests, publish the snapshot, run the target checks.",
    executor_def=dg.in_process_executor,
)


def build_definitions(
    warehouse: WarehouseResource | None = None,
    wandb_sources: WandbSourcesResource | None = None,
    event_sources: EventSourcesResource | None = None,
    loggers: dict[str, dg.LoggerDefinition] | None = None,
) -> dg.Definitions:
    return dg.Definitions(
        loggers=loggers,
        assets=ALL_ASSETS,
        asset_checks=[target_checks],
        jobs=[build_warehouse_job],
        resources={
            "warehouse": warehouse or WarehouseResource(),
            "wandb_sources": wandb_sources or WandbSourcesResource(),
            "event_sources": event_sources or EventSourcesResource(),
            "dbt": DbtCliResource(project_dir=dbt_project),
        },
    )


defs = build_definitions()
