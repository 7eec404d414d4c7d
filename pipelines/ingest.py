"""Move whatever the sources have that the warehouse lacks into one raw batch.

Sources say what is new given the incremental state (steps stored per run,
lines consumed per file, time cursor per dataset); this module writes it,
deduplicates overlapping windows, and commits the batch. Nothing is committed
unless everything in the batch was written, so a crash or a source failure
leaves the warehouse as it was and the next ingest resumes from there.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field

import duckdb
import pyarrow as pa

from pipelines.sources.base import EventChunk, EventSource, RunSource, change_token
from pipelines.sources.errors import SourceError
from pipelines.warehouse import (
    SCHEMAS,
    EVENTS,
    HISTORY,
    HISTORY_OTHER,
    REJECTS,
    RUNS,
    RawBatch,
    Warehouse,
    kill_point,
)

log = logging.getLogger(__name__)

RUN_COLUMNS = pa.schema([f for f in SCHEMAS[RUNS] if f.name not in ("batch_id", "ingested_at")])

# Flush buffered history to a file once this many rows are waiting: large
# enough for good parquet row groups, small enough to bound memory.
FLUSH_ROWS = 4_000_000


@dataclass
class IngestReport:
    """What one ingest added (new_*) and how long each part took."""

    new_runs: int = 0
    updated_runs: int = 0
    new_history_rows: int = 0
    new_history_other_rows: int = 0
    new_events: int = 0
    new_rejects: int = 0
    duplicate_events_dropped: int = 0
    runs_seen: int = 0
    wandb_seconds: float = 0.0
    events_seconds: float = 0.0
    batch_id: str | None = None
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


Progress = Callable[[str], None]


def ingest(
    warehouse: Warehouse,
    run_sources: Iterable[RunSource] = (),
    event_sources: Iterable[EventSource] = (),
    *,
    progress: Progress | None = None,
    lock_timeout_s: float = 0.0,
) -> IngestReport:
    """Ingest every source into one committed raw batch; returns what was added."""
    report = IngestReport()
    say = progress or (lambda _msg: None)
    warehouse.ensure()
    with warehouse.lock(timeout_s=lock_timeout_s, purpose="ingest", wait_for_build_db=False, on_wait=say):
        removed = [*warehouse.orphans_removed, *warehouse.clean_orphans()]  # lock() already cleaned
        if removed:
            report.warnings.append(f"removed {len(removed)} file(s) of an interrupted earlier ingest")
        state = warehouse.state()
        with warehouse.batch() as batch:
            report.batch_id = batch.batch_id
            t0 = time.perf_counter()
            for source in run_sources:
                try:
                    _ingest_runs(source, state, batch, report, say)
                finally:
                    source.close()
            report.wandb_seconds = time.perf_counter() - t0
            kill_point("ingest.between_sources")  # test hook, see pipelines.warehouse.KILL_ENV
            t0 = time.perf_counter()
            for esource in event_sources:
                _ingest_events(warehouse, esource, state.event_sources, batch, report, say)
            report.events_seconds = time.perf_counter() - t0
            if batch.files or _state_changed(batch, state):
                batch.commit()
            else:
                report.batch_id = None  # nothing new: no empty commit records piling up
    for w in report.warnings:
        log.warning(w)
    return report


def _state_changed(batch: RawBatch, state) -> bool:
    for run_id, rs in batch.wandb_runs.items():
        old = state.runs.get(run_id)
        if old is None or old.last_step != rs["last_step"] or old.fingerprint != rs["fingerprint"]:
            return True
    return any(state.event_sources.get(k) != v for k, v in batch.event_sources.items())


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


def _ingest_runs(source: RunSource, state, batch: RawBatch, report: IngestReport, say: Progress) -> None:
    history = _HistoryBuffer(batch, HISTORY)
    other = _HistoryBuffer(batch, HISTORY_OTHER)
    meta_rows: list[dict] = []
    for ref in source.runs():
        if ref.run_id in batch.wandb_runs:
            report.warnings.append(f"run {ref.run_id} appears twice ({ref.label}); kept the first")
            continue
        stored = state.runs.get(ref.run_id)
        after = stored.last_step if stored else None
        token = change_token(ref)
        if stored is not None and token is not None and stored.token == token:
            # Unchanged since it was last read (same file size and mtime): re-reading
            # a 16 MB run only to find nothing new would dominate a sync of many runs.
            report.runs_seen += 1
            continue
        try:
            read = source.read(ref, after)
        except SourceError:
            raise  # a remote source failing is fatal: nothing of this batch is committed
        except Exception as exc:  # a damaged local file must not stop the others
            report.warnings.append(f"{ref.label}: skipped, {type(exc).__name__}: {exc}")
            continue
        report.warnings.extend(read.warnings)
        report.runs_seen += 1
        history.add(read.history)
        other.add(read.other)
        report.new_history_rows += read.history.num_rows
        report.new_history_other_rows += read.other.num_rows
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


def _ingest_events(
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


def aggregate(warehouse: Warehouse, table: str, expr: str = "count(*)", records: list | None = None):
    """One aggregate (`expr` is ours, never user input) over the committed rows of a raw table.

    Only committed batches count: a batch being written by a concurrent ingest,
    or left by one that crashed, is not stored yet (and may be deleted).
    """
    files = [str(f) for f in warehouse.committed_files(table, records)]
    con = duckdb.connect()
    try:
        con.execute("set TimeZone = 'UTC'")
        return con.execute(f"select {expr} from read_parquet(?)", [files]).fetchall()[0][0]
    finally:
        con.close()


def totals(warehouse: Warehouse) -> dict[str, int]:
    """Rows stored in the raw layer (committed batches): runs, history rows, events, rejected lines."""
    records = warehouse.committed_batches()  # read the commit records once
    return {
        "runs": int(aggregate(warehouse, RUNS, "count(distinct run_id)", records)),
        "history_rows": int(aggregate(warehouse, HISTORY, records=records)),
        "events": int(aggregate(warehouse, EVENTS, records=records)),
        "rejected": int(aggregate(warehouse, REJECTS, records=records)),
    }
