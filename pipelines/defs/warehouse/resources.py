"""Where the warehouse lives; every asset reads its location from this one resource."""

from __future__ import annotations

from typing import Optional

import dagster as dg

from pipelines.defs.environment import env_var
from pipelines.settings import WAREHOUSE_ENV, warehouse_root
from pipelines.raw.layer import Warehouse


class WarehouseResource(dg.ConfigurableResource):
    """The warehouse directory; unset means ./warehouse (the code location binds it to $GRPO_WAREHOUSE)."""

    root: Optional[str] = None
    # How long a build or ingest waits for another one holding the write lock.
    lock_timeout_s: float = 900.0

    def warehouse(self) -> Warehouse:
        return Warehouse(warehouse_root(self.root))

    @classmethod
    def from_environment(cls) -> WarehouseResource:
        """The warehouse $GRPO_WAREHOUSE names, bound through dg.EnvVar."""
        return cls(root=env_var(WAREHOUSE_ENV))
