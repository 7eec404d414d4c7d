"""Shared body of the raw ingest assets: run an ingest, report it as materializations."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import dagster as dg

from pipelines.ingest.report import IngestReport
from pipelines.ingest.ingest_sources import ingest
from pipelines.raw.readers import aggregate
from pipelines.sources.base import EventSource, RunSource
from pipelines.raw.layer import Warehouse


def run_ingest(
    context: dg.AssetExecutionContext,
    warehouse: Warehouse,
    lock_timeout_s: float,
    run_sources: Sequence[RunSource] = (),
    event_sources: Sequence[EventSource] = (),
) -> IngestReport:
    report = ingest(
        warehouse,
        run_sources,
        event_sources,
        progress=context.log.info,
        lock_timeout_s=lock_timeout_s,
    )
    for w in report.warnings:
        context.log.warning(w)
    return report


# A warning check on each raw multi-asset: what the readers had to decide or skip (a damaged
# file or segment, two segments of a resumed run that disagree on a step, a run seen twice).
INGEST_WARNINGS_CHECK = "read_without_warnings"
INGEST_WARNINGS_KEY = "ingest_warnings"
MAX_WARNINGS_SHOWN = 100


def warnings_check_spec(table: str) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(
        INGEST_WARNINGS_CHECK,
        asset=dg.AssetKey(["raw", table]),
        description="The last ingest read its sources without warnings; otherwise the warnings are listed.",
    )


def warnings_check(table: str, report: IngestReport) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        asset_key=dg.AssetKey(["raw", table]),
        check_name=INGEST_WARNINGS_CHECK,
        passed=not report.warnings,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "warnings": dg.MetadataValue.int(len(report.warnings)),
            INGEST_WARNINGS_KEY: dg.MetadataValue.json(report.warnings[:MAX_WARNINGS_SHOWN]),
        },
    )


def results(
    warehouse: Warehouse, report: IngestReport, rows: dict[str, tuple[int, float]]
) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    """One materialization per raw table (total rows, rows added, seconds taken), then the warnings check."""
    for table, (new_rows, seconds) in rows.items():
        yield dg.MaterializeResult(
            asset_key=dg.AssetKey(["raw", table]),
            metadata={
                "dagster/row_count": dg.MetadataValue.int(int(aggregate(warehouse, table))),
                "new_rows": dg.MetadataValue.int(new_rows),
                "seconds": dg.MetadataValue.float(round(seconds, 3)),
                "batch_id": dg.MetadataValue.text(report.batch_id or ""),
                "warnings": dg.MetadataValue.int(len(report.warnings)),
            },
        )
    yield warnings_check(next(iter(rows)), report)
