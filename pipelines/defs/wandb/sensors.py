"""Keep W&B runs current: sync when a run appears or changes (new steps, new state)."""

import hashlib

import dagster as dg

from pipelines.defs.wandb.assets import wandb_raw
from pipelines.defs.wandb.resources import WandbSourcesResource
from pipelines.sources.base import change_token

sync_wandb_job = dg.define_asset_job(
    "sync_wandb",
    selection=dg.AssetSelection.assets(wandb_raw).downstream(),
    description="Fetch new and changed W&B runs, rebuild what depends on them, publish, check.",
    executor_def=dg.in_process_executor,  # one writer of the build database at a time (see definitions.py)
)


@dg.sensor(
    job=sync_wandb_job,
    minimum_interval_seconds=300,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Every 5 minutes: list the configured W&B runs (files or API) and sync if any run is new or changed.",
)
def wandb_runs_changed(context: dg.SensorEvaluationContext, wandb_sources: WandbSourcesResource):
    sources = wandb_sources.sources()
    if not sources:
        return dg.SkipReason("no W&B source configured (GRPO_WANDB_DIRS / GRPO_WANDB_PROJECTS)")
    digest = hashlib.sha256()
    n = 0
    for source in sources:
        try:
            for ref in source.runs():
                digest.update(f"{ref.run_id}:{change_token(ref)}".encode())
                n += 1
        finally:
            source.close()
    token = digest.hexdigest()
    if token == context.cursor:
        return dg.SkipReason(f"none of {n} runs changed")
    context.update_cursor(token)
    return dg.RunRequest(run_key=token, tags={"trigger": "wandb_runs_changed", "runs": str(n)})
