"""Asset checks: the targets on the marts they concern, and source freshness."""

from __future__ import annotations

import dagster as dg

from pipelines.defs.checks.asset_checks import target_checks
from pipelines.defs.checks.freshness import events_fresh, wandb_fresh


def definitions() -> dg.Definitions:
    return dg.Definitions(asset_checks=[target_checks, events_fresh, wandb_fresh])
