"""Asset checks encoding the targets of dbt_project.yml on the marts they concern."""

from collections.abc import Iterator

import dagster as dg
import duckdb

from pipelines.answers.target_checks import CHECKS, outcomes_for
from pipelines.defs.warehouse.assets import SNAPSHOT_KEY
from pipelines.defs.warehouse.resources import WarehouseResource
from pipelines.settings import target_actions

SEVERITY = {"error": dg.AssetCheckSeverity.ERROR, "warn": dg.AssetCheckSeverity.WARN}
MAX_LISTED = 20


def _description(check) -> str:
    """The check's sentence, and what to do when it misses (target_actions in dbt_project.yml)."""
    action = target_actions().get(check.target) if check.target else None
    return (
        f"{check.description} When it misses: {action.action} Next: `{action.next}`." if action else check.description
    )


@dg.multi_asset_check(
    specs=[
        dg.AssetCheckSpec(
            c.name,
            asset=dg.AssetKey([c.asset]),
            description=_description(c),
            # Evaluated on the published snapshot, so never blocked by (or blocking) a build.
            additional_deps=[SNAPSHOT_KEY],
        )
        for c in CHECKS
    ],
    name="target_checks",
    can_subset=True,
)
def target_checks(
    context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource
) -> Iterator[dg.AssetCheckResult]:
    wh = warehouse.warehouse()
    con = duckdb.connect(str(wh.snapshot_db), read_only=True)
    try:
        for check in CHECKS:
            key = dg.AssetCheckKey(dg.AssetKey([check.asset]), check.name)
            if key not in context.selected_asset_check_keys:
                continue
            rows = outcomes_for(con, check)
            failing = [r for r in rows if r["outcome"] == "fail"]
            # too few observations, or an interval straddling the target: neither a pass nor a failure
            inconclusive = [r for r in rows if r["outcome"] == "inconclusive"]
            worst = failing[0] if failing else (rows[0] if rows else None)
            yield dg.AssetCheckResult(
                asset_key=key.asset_key,
                check_name=check.name,
                passed=not failing,
                severity=SEVERITY[check.severity],
                description=(
                    f"{len(failing)} of {len(rows)} {check.subject_type}s miss the target"
                    if failing
                    else (
                        (
                            f"{len(rows) - len(inconclusive)} of {len(rows)} {check.subject_type}s meet the target, "
                            f"{len(inconclusive)} inconclusive"
                            if inconclusive
                            else f"all {len(rows)} {check.subject_type}s meet the target"
                        )
                        if rows
                        else "no data to check"
                    )
                ),
                metadata={
                    "subjects": len(rows),
                    "failing": len(failing),
                    "inconclusive": len(inconclusive),
                    "threshold": float(worst["threshold"]) if worst and worst["threshold"] is not None else None,
                    "comparison": worst["comparison"] if worst else None,
                    "worst_value": float(worst["value"]) if worst and worst["value"] is not None else None,
                    "offending": dg.MetadataValue.md(
                        "\n".join(f"- {r['subject_label'] or r['subject']}: {r['value']}" for r in failing[:MAX_LISTED])
                        or "none"
                    ),
                },
            )
    finally:
        con.close()
