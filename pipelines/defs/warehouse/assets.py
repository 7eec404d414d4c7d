"""The published snapshot: what the CLI, notebooks and BI tools read."""


import dagster as dg

from pipelines.defs.dbt.assets import grpo_dbt_models
from pipelines.defs.dbt.project import dbt_project
from pipelines.defs.warehouse.resources import WarehouseResource
from pipelines.publish import publish

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
    with wh.lock(timeout_s=warehouse.lock_timeout_s, purpose="publish snapshot", on_wait=context.log.info):
        rows = publish(wh, dbt_project.manifest_path)
    preview = "\n".join(f"| {name} | {n:,} |" for name, n in sorted(rows.items()))
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(wh.snapshot_db)),
            "tables": dg.MetadataValue.int(len(rows)),
            "table_rows": dg.MetadataValue.md("| table | rows |\n|---|---|\n" + preview),
            **snapshot_preview(wh.snapshot_db),
        }
    )


def snapshot_preview(path) -> dict:
    """Verdicts of the latest runs as a table and their checkpoint gaps as a plot."""
    import base64

    import duckdb

    from pipelines.answers.plots import latest_runs_gap_png

    con = duckdb.connect(str(path), read_only=True)
    try:
        latest = con.execute(
            "select v.run_name, v.verdict, v.gap_final, v.base_model_delta, d.started_at "
            "from fct_learning_verdicts v join dim_runs d using (run_id) "
            "order by d.started_at desc nulls last, v.run_name limit 8"
        ).fetchall()
        names = [r[0] for r in latest]
        series = con.execute(
            "select d.run_name, g.step, g.gap from fct_checkpoint_gaps g join dim_runs d using (run_id) "
            "where list_contains(?, d.run_name) order by d.run_name, g.step",
            [names],
        ).fetchall()
    except duckdb.Error:
        return {}
    finally:
        con.close()
    table = "| run | verdict | final gap | base_model Δ |\n|---|---|---|---|\n" + "\n".join(
        f"| {n} | {v} | {'' if g is None else f'{g:.1f}'} | {'' if b is None else f'{b:.1f}'} |"
        for n, v, g, b, _ in latest
    )
    png = latest_runs_gap_png(
        [{"run_name": r[0], "step": r[1], "gap": r[2]} for r in series], "Checkpoint gap of the latest runs"
    )
    image = f"![checkpoint gap](data:image/png;base64,{base64.b64encode(png).decode()})"
    return {
        "latest_verdicts": dg.MetadataValue.md(table),
        "latest_gaps_plot": dg.MetadataValue.md(image),
    }
