"""Store a source's new events, each once: events whose key is already stored (overlapping sync windows,
an export delivered twice) are dropped."""

from __future__ import annotations

import duckdb
import pyarrow as pa

from pipelines.ingest.report import IngestReport, Progress
from pipelines.raw.batches import RawBatch
from pipelines.raw.layer import Warehouse
from pipelines.raw.schemas import EVENTS, REJECTS
from pipelines.sources.base import EventSource


def ingest_events(
    warehouse: Warehouse,
    source: EventSource,
    cursors: dict,
    batch: RawBatch,
    report: IngestReport,
    say: Progress,
) -> None:
    written_keys: set[str] = set()
    for chunk in source.chunks(cursors):
        report.warnings.extend(chunk.warnings)
        events = chunk.events
        if chunk.dedupe and events.num_rows:
            before = events.num_rows
            events = _drop_stored(warehouse, events, written_keys)
            report.duplicate_events_dropped += before - events.num_rows
        if chunk.dedupe:
            written_keys.update(events.column("event_key").to_pylist())
        report.new_events += batch.write(EVENTS, events)
        report.new_rejects += batch.write(REJECTS, chunk.rejects)
        batch.record_event_source(chunk.source_key, chunk.cursor)
        if events.num_rows or chunk.rejects.num_rows:
            say(f"{chunk.source_key}: +{events.num_rows:,} events, {chunk.rejects.num_rows:,} rejected")


def _drop_stored(warehouse: Warehouse, events: pa.Table, written_keys: set[str]) -> pa.Table:
    """Remove events whose key is already stored (overlapping sync windows)."""
    con = duckdb.connect()
    try:
        con.register("chunk", events)
        stored = con.execute(
            "select distinct s.event_key from read_parquet(?) s "
            "where s.source in (select distinct source from chunk) "
            "and s.time >= (select min(time) from chunk) "
            "and s.event_key in (select event_key from chunk)",
            [warehouse.table_glob(EVENTS)],
        ).fetchall()
    finally:
        con.close()
    seen = written_keys | {k for (k,) in stored}
    if not seen:
        return _unique_keys(events)
    keep = pa.array([k not in seen for k in events.column("event_key").to_pylist()])
    return _unique_keys(events.filter(keep))


def _unique_keys(events: pa.Table) -> pa.Table:
    keys = events.column("event_key").to_pylist()
    if len(set(keys)) == len(keys):
        return events
    seen: set[str] = set()
    mask = []
    for k in keys:
        mask.append(k not in seen)
        seen.add(k)
    return events.filter(pa.array(mask))
