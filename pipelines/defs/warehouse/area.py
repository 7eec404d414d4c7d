"""The warehouse: where it lives (resource) and the published snapshot (asset)."""

from __future__ import annotations

import dagster as dg

from pipelines.defs.warehouse.assets import warehouse_snapshot
from pipelines.defs.warehouse.resources import WarehouseResource


def definitions(warehouse: WarehouseResource | None = None) -> dg.Definitions:
    return dg.Definitions(
        assets=[warehouse_snapshot],
        resources={"warehouse": warehouse or WarehouseResource.from_environment()},
    )
