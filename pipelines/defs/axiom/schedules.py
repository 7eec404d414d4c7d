"""Keep events current: a sync every few minutes while any event source is configured."""

import dagster as dg

from pipelines.defs.axiom.assets import events_raw
from pipelines.defs.axiom.resources import EventSourcesResource

sync_events_job = dg.define_asset_job(
    "sync_events",
    selection=dg.AssetSelection.assets(events_raw).downstream(),
    description="Fetch new events (NDJSON files, Axiom datasets), rebuild what depends on them, publish, check.",
    executor_def=dg.in_process_executor,  # one writer of the build database at a time (see definitions.py)
)


@dg.schedule(
    job=sync_events_job,
    cron_schedule="*/5 * * * *",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Every 5 minutes: fetch new events incrementally (files from where they stopped, Axiom from its time cursor).",
)
def events_every_5_minutes(context: dg.ScheduleEvaluationContext, event_sources: EventSourcesResource):
    if not (event_sources.resolved_paths() or event_sources.resolved_datasets()):
        return dg.SkipReason("no event source configured (GRPO_EVENT_PATHS / GRPO_AXIOM_DATASETS)")
    return dg.RunRequest(run_key=None, tags={"trigger": "events_every_5_minutes"})
