"""Raw W&B assets: runs (config, summary, state) and full metric history."""

from collections.abc import Iterator

import dagster as dg

from pipelines.defs.wandb.resources import WandbSourcesResource
from pipelines.defs.warehouse.ingest_materializations import results, run_ingest, warnings_check_spec
from pipelines.defs.warehouse.resources import WarehouseResource
from pipelines.raw.schemas import HISTORY, HISTORY_OTHER, RESTATED, RUNS


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            ["raw", RUNS],
            description="W&B runs: name, group, sweep, config, final summary and state, one row per version.",
            group_name="raw",
            kinds={"parquet", "wandb"},
        ),
        dg.AssetSpec(
            ["raw", HISTORY],
            description="Every logged numeric W&B metric value, one row per run, step and key.",
            group_name="raw",
            kinds={"parquet", "wandb"},
        ),
        dg.AssetSpec(
            ["raw", HISTORY_OTHER],
            description="Non-numeric W&B history values (text, booleans, media references) as JSON.",
            group_name="raw",
            kinds={"parquet", "wandb"},
        ),
        dg.AssetSpec(
            ["raw", RESTATED],
            description="Steps of resumed runs that a newer segment logged again: its values replace the stored ones.",
            group_name="raw",
            kinds={"parquet", "wandb"},
        ),
    ],
    check_specs=[warnings_check_spec(RUNS)],
    name="wandb_raw",
)
def wandb_raw(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, wandb_sources: WandbSourcesResource
) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    wh = warehouse.warehouse()
    report = run_ingest(context, wh, warehouse.lock_timeout_s, run_sources=wandb_sources.sources())
    yield from results(
        wh,
        report,
        {
            RUNS: (report.new_runs + report.updated_runs, report.wandb_seconds),
            HISTORY: (report.new_history_rows, report.wandb_seconds),
            HISTORY_OTHER: (report.new_history_other_rows, report.wandb_seconds),
            RESTATED: (report.restated_steps, report.wandb_seconds),
        },
    )
