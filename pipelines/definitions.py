"""The Dagster code location: the areas under pipelines/defs/, each exporting its definitions, merged.

Import this only after the dbt manifest exists (`dagster dev` prepares it;
`grpo` calls pipelines.defs.dbt.project.ensure_manifest() first).
"""

from __future__ import annotations

import dagster as dg

from pipelines.defs.axiom import area as axiom
from pipelines.defs.axiom.resources import EventSourcesResource
from pipelines.defs.checks import area as checks
from pipelines.defs.dbt import area as dbt
from pipelines.defs.wandb import area as wandb
from pipelines.defs.wandb.resources import WandbSourcesResource
from pipelines.defs.warehouse import area as warehouse_area
from pipelines.defs.warehouse.resources import WarehouseResource

# One step at a time: only one process may write the DuckDB build file, so
# there is nothing to parallelise within a run (dagster.yaml queues runs).
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
    """The code location; resources given here replace the ones the environment names."""
    return dg.Definitions.merge(
        wandb.definitions(wandb_sources),
        axiom.definitions(event_sources),
        dbt.definitions(),
        warehouse_area.definitions(warehouse),
        checks.definitions(),
        dg.Definitions(jobs=[build_warehouse_job], loggers=loggers),
    )


defs = build_definitions()
