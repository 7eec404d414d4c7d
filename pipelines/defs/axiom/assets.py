"""Raw event assets: pipeline log events and the lines that could not be loaded."""

from collections.abc import Iterator

import dagster as dg

from pipelines.defs.axiom.resources import EventSourcesResource
from pipelines.defs.warehouse.ingest_materializations import results, run_ingest, warnings_check_spec
from pipelines.defs.warehouse.resources import WarehouseResource
from pipelines.raw.schemas import EVENTS, REJECTS


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            ["raw", EVENTS],
            description="Pipeline log events (rollouts, inference, extraction, errors, heartbeats) with all original fields.",
            group_name="raw",
            kinds={"parquet", "axiom"},
        ),
        dg.AssetSpec(
            ["raw", REJECTS],
            description="Event lines that could not be loaded, with file, line number and reason.",
            group_name="raw",
            kinds={"parquet", "axiom"},
        ),
    ],
    check_specs=[warnings_check_spec(EVENTS)],
    name="events_raw",
)
def events_raw(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, event_sources: EventSourcesResource
) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    wh = warehouse.warehouse()
    report = run_ingest(context, wh, warehouse.lock_timeout_s, event_sources=event_sources.sources())
    yield from results(
        wh,
        report,
        {EVENTS: (report.new_events, report.events_seconds), REJECTS: (report.new_rejects, report.events_seconds)},
    )
