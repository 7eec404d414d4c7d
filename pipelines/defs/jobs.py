"""Jobs: everything at once, or one source and what depends on it."""

import dagster as dg

from pipelines.defs.axiom.assets import events_raw
from pipelines.defs.wandb.assets import wandb_raw

# One step at a time: only one process may write the DuckDB build file, so
# there is nothing to parallelise within a run (dagster.yaml queues runs).
build_warehouse_job = dg.define_asset_job(
    "build_warehouse",
    selection=dg.AssetSelection.all(),
    description="Ingest every configured source, build all dbt models and tests, publish the snapshot, run the target checks.",
    executor_def=dg.in_process_executor,
)

sync_events_job = dg.define_asset_job(
    "sync_events",
    selection=dg.AssetSelection.assets(events_raw).downstream(),
    description="Fetch new events (NDJSON files, Axiom datasets), rebuild what depends on them, publish, check.",
    executor_def=dg.in_process_executor,
)

sync_wandb_job = dg.define_asset_job(
    "sync_wandb",
    selection=dg.AssetSelection.assets(wandb_raw).downstream(),
    description="Fetch new and changed W&B runs, rebuild what depends on them, publish, check.",
    executor_def=dg.in_process_executor,
)
