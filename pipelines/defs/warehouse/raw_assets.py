"""Shared body of the raw ingest assets: run an ingest, report it as materializations."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import dagster as dg

from pipelines.ingest import IngestReport, aggregate, ingest
from pipelines.sources.base import EventSource, RunSource
from pipelines.warehouse import Warehouse


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


def results(
    warehouse: Warehouse, report: IngestReport, rows: dict[str, tuple[int, float]]
) -> Iterator[dg.MaterializeResult]:
    """One materialization per raw table: total rows, rows added, seconds taken."""
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
