"""Events (NDJSON files, Axiom datasets): the raw asset, the 5-minute schedule (and its job), the sources resource."""

from __future__ import annotations

import dagster as dg

from pipelines.defs.axiom.assets import events_raw
from pipelines.defs.axiom.resources import EventSourcesResource
from pipelines.defs.axiom.schedules import events_every_5_minutes, sync_events_job


def definitions(event_sources: EventSourcesResource | None = None) -> dg.Definitions:
    return dg.Definitions(
        assets=[events_raw],
        jobs=[sync_events_job],
        schedules=[events_every_5_minutes],
        resources={"event_sources": event_sources or EventSourcesResource.from_environment()},
    )
