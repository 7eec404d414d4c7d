"""Source freshness: the newest stored data, not the last run, says whether a source is stale."""

import datetime as dt

import dagster as dg

from pipelines.defs.warehouse.resources import WarehouseResource
from pipelines.raw.layer import Warehouse
from pipelines.raw.readers import aggregate
from pipelines.raw.schemas import EVENTS, RUNS
from pipelines.settings import thresholds


def newest(wh: Warehouse, table: str, column: str) -> dt.datetime | None:
    return aggregate(wh, table, f"max({column})")


def _result(latest: dt.datetime | None, limit_s: float, what: str) -> dg.AssetCheckResult:
    now = dt.datetime.now(dt.UTC)
    if latest is None:
        return dg.AssetCheckResult(
            passed=False,
            severity=dg.AssetCheckSeverity.WARN,
            description=f"no {what} stored yet",
            metadata={"stale_after_s": limit_s},
        )
    age = (now - latest).total_seconds()
    return dg.AssetCheckResult(
        passed=age <= limit_s,
        severity=dg.AssetCheckSeverity.WARN,
        description=f"newest {what} is {age / 60:.0f} min old (stale after {limit_s / 60:.0f} min)",
        metadata={"newest": latest.isoformat(), "age_s": round(age, 1), "stale_after_s": limit_s},
    )


@dg.asset_check(
    asset=dg.AssetKey(["raw", EVENTS]), description="The newest stored event is recent: events are flowing."
)
def events_fresh(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    return _result(newest(warehouse.warehouse(), EVENTS, "time"), thresholds().events_stale_after_s, "event")


@dg.asset_check(
    asset=dg.AssetKey(["raw", RUNS]), description="Some W&B run was updated recently: training data is flowing."
)
def wandb_fresh(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    return _result(newest(warehouse.warehouse(), RUNS, "ingested_at"), thresholds().wandb_stale_after_s, "run update")
