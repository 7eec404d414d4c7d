"""Where the warehouse lives; every asset reads its location from this one resource."""

from __future__ import annotations

from typing import Optional

import dagster as dg

from pipelines.settings import warehouse_root
from pipelines.warehouse import Warehouse


class WarehouseResource(dg.ConfigurableResource):
    """The warehouse directory; unset means $GRPO_WAREHOUSE, else ./warehouse."""

    root: Optional[str] = None
    # How long a build or ingest waits for another one holding the write lock.
    lock_timeout_s: float = 900.0

    def warehouse(self) -> Warehouse:
        return Warehouse(warehouse_root(self.root))
