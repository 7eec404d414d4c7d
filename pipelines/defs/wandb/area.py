"""W&B runs: the raw asset, the sensor that syncs changed runs (and its job), the sources resource."""

from __future__ import annotations

import dagster as dg

from pipelines.defs.wandb.assets import wandb_raw
from pipelines.defs.wandb.resources import WandbSourcesResource
from pipelines.defs.wandb.sensors import sync_wandb_job, wandb_runs_changed


def definitions(wandb_sources: WandbSourcesResource | None = None) -> dg.Definitions:
    return dg.Definitions(
        assets=[wandb_raw],
        jobs=[sync_wandb_job],
        sensors=[wandb_runs_changed],
        resources={"wandb_sources": wandb_sources or WandbSourcesResource.from_environment()},
    )
