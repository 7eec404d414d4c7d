"""Store the runs a source has that the warehouse lacks: run versions, history rows, restated steps."""

from __future__ import annotations

import contextlib

import pyarrow as pa

from pipelines.ingest.report import IngestReport, Progress
from pipelines.ingest.run_reads import reads
from pipelines.raw.batches import RawBatch
from pipelines.raw.schemas import HISTORY, HISTORY_OTHER, RESTATED, RUNS, SCHEMAS
from pipelines.sources.base import RunSource

RUN_COLUMNS = pa.schema([f for f in SCHEMAS[RUNS] if f.name not in ("batch_id", "ingested_at")])


RESTATED_COLUMNS = pa.schema([f for f in SCHEMAS[RESTATED] if f.name != "batch_id"])


# Flush buffered history to a file once this many rows are waiting: large
# enough for good parquet row groups, small enough to bound memory.
FLUSH_ROWS = 4_000_000


class _HistoryBuffer:
    def __init__(self, batch: RawBatch, table: str) -> None:
        self.batch, self.table = batch, table
        self.parts: list[pa.Table] = []
        self.rows = 0

    def add(self, data: pa.Table) -> None:
        if data.num_rows:
            self.parts.append(data)
            self.rows += data.num_rows
            if self.rows >= FLUSH_ROWS:
                self.flush()

    def flush(self) -> None:
        if self.parts:
            self.batch.write(self.table, pa.concat_tables(self.parts))
            self.parts, self.rows = [], 0


def ingest_runs(
    source: RunSource, state, batch: RawBatch, report: IngestReport, say: Progress, workers: int = 1
) -> None:
    history = _HistoryBuffer(batch, HISTORY)
    other = _HistoryBuffer(batch, HISTORY_OTHER)
    meta_rows: list[dict] = []
    restated: dict[str, list[int]] = {}
    with contextlib.closing(reads(source, state, batch, report, workers)) as planned:
        for ref, stored, after, token, read in planned:
            report.warnings.extend(read.warnings)
            report.runs_seen += 1
            history.add(read.history)
            other.add(read.other)
            report.new_history_rows += read.history.num_rows
            report.new_history_other_rows += read.other.num_rows
            if read.restated_steps:
                restated[ref.run_id] = sorted(set(read.restated_steps))
                report.restated_steps += len(restated[ref.run_id])
            fingerprint = read.meta.fingerprint()
            if stored is None or stored.fingerprint != fingerprint:
                meta_rows.append({**read.meta.row(), "fingerprint": fingerprint})
                if stored is None:
                    report.new_runs += 1
                else:
                    report.updated_runs += 1
            steps = [s for s in (after, read.meta.last_step) if s is not None]
            batch.record_run(ref.run_id, max(steps) if steps else None, fingerprint, token)
            say(f"{ref.label}: +{read.history.num_rows:,} history rows")
    history.flush()
    other.flush()
    if meta_rows:
        batch.write(RUNS, pa.Table.from_pylist(meta_rows, schema=RUN_COLUMNS))
    if restated:
        rows = [{"run_id": run_id, "step": step} for run_id, steps in restated.items() for step in steps]
        batch.write(RESTATED, pa.Table.from_pylist(rows, schema=RESTATED_COLUMNS))
