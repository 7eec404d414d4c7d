"""The published snapshot: what the CLI, notebooks and BI tools read."""


import dagster as dg

from pipelines.defs.dbt.assets import grpo_dbt_models
from pipelines.defs.dbt.project import dbt_project
from pipelines.defs.warehouse.resources import WarehouseResource
from pipelines.snapshot import publish

SNAPSHOT_KEY = dg.AssetKey(["warehouse_snapshot"])


@dg.asset(
    key=SNAPSHOT_KEY,
    deps=[grpo_dbt_models],
    group_name="published",
    kinds={"duckdb"},
    description="Read-only snapshot of every mart (grpo.duckdb), swapped in atomically after each build.",
)
def warehouse_snapshot(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    wh = warehouse.warehouse()
    with wh.lock(timeout_s=warehouse.lock_timeout_s, purpose="publish snapshot"):
        rows = publish(wh, dbt_project.manifest_path)
    preview = "\n".join(f"| {name} | {n:,} |" for name, n in sorted(rows.items()))
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(wh.snapshot_db)),
            "tables": dg.MetadataValue.int(len(rows)),
            "table_rows": dg.MetadataValue.md("| table | rows |\n|---|---|\n" + preview),
        }
    )
