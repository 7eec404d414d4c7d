"""The Dagster code location: merges the areas under pipelines/defs/.

Import this only after the dbt manifest exists (`dagster dev` prepares it;
`grpo` calls pipelines.defs.dbt.project.ensure_manifest() first).
"""

from __future__ import annotations

import dagster as dg

from pipelines.defs.axiom.assets import events_raw
from pipelines.defs.axiom.resources import EventSourcesResource
from pipelines.defs.axiom.schedules import events_every_5_minutes
from pipelines.defs.checks.checks import target_checks
from pipelines.defs.checks.freshness import events_fresh, wandb_fresh
from pipelines.defs.dbt.assets import grpo_dbt_models
from pipelines.defs.dbt.project import dbt_project
from pipelines.defs.dbt.resources import GrpoDbtCliResource
from pipelines.defs.jobs import build_warehouse_job, sync_events_job, sync_wandb_job
from pipelines.defs.wandb.assets import wandb_raw
from pipelines.defs.wandb.resources import WandbSourcesResource
from pipelines.defs.wandb.sensors import wandb_runs_changed
from pipelines.defs.warehouse.assets import warehouse_snapshot
from pipelines.defs.warehouse.resources import WarehouseResource

def dbt_executable() -> str:
    """The dbt installed next to this Python, so a bare `.venv/bin/python` run (or a
    `dbtf` elsewhere on PATH) cannot change which dbt builds the warehouse; on the
    Spark engine (GRPO_ENGINE=spark) its wrapper, pipelines/engine.py."""
    from pipelines.engine import dbt_executable as for_engine

    return for_engine()


ALL_ASSETS = [wandb_raw, events_raw, grpo_dbt_models, warehouse_snapshot]


def build_definitions(
    warehouse: WarehouseResource | None = None,
    wandb_sources: WandbSourcesResource | None = None,
    event_sources: EventSourcesResource | None = None,
    loggers: dict[str, dg.LoggerDefinition] | None = None,
) -> dg.Definitions:
    return dg.Definitions(
        loggers=loggers,
        assets=ALL_ASSETS,
        asset_checks=[target_checks, events_fresh, wandb_fresh],
        jobs=[build_warehouse_job, sync_events_job, sync_wandb_job],
        schedules=[events_every_5_minutes],
        sensors=[wandb_runs_changed],
        resources={
            "warehouse": warehouse or WarehouseResource(),
            "wandb_sources": wandb_sources or WandbSourcesResource(),
            "event_sources": event_sources or EventSourcesResource(),
            "dbt": GrpoDbtCliResource(project_dir=dbt_project, dbt_executable=dbt_executable()),
        },
    )


defs = build_definitions()
