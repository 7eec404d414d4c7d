"""Move whatever the sources have that the warehouse lacks into one raw batch.

Sources say what is new given the incremental state (steps stored per run,
lines consumed per file, time cursor per dataset); this module writes it,
deduplicates overlapping windows, and commits the batch. Nothing is committed
unless everything in the batch was written, so a crash or a source failure
leaves the warehouse as it was and the next ingest resumes from there.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import multiprocessing
import os
import signal
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, field

import duckdb
import pyarrow as pa

from pipelines.sources.base import EventChunk, EventSource, RunRead, RunRef, RunSource, change_token
from pipelines.sources.errors import SourceError
from pipelines.warehouse import (
    SCHEMAS,
    EVENTS,
    HISTORY,
    HISTORY_OTHER,
    REJECTS,
    RESTATED,
    RUNS,
    RawBatch,
    RunState,
    Warehouse,
    kill_point,
)

log = logging.getLogger(__name__)

RUN_COLUMNS = pa.schema([f for f in SCHEMAS[RUNS] if f.name not in ("batch_id", "ingested_at")])
RESTATED_COLUMNS = pa.schema([f for f in SCHEMAS[RESTATED] if f.name != "batch_id"])

# Flush buffered history to a file once this many rows are waiting: large
# enough for good parquet row groups, small enough to bound memory.
FLUSH_ROWS = 4_000_000

# Run files are read by this many worker processes at once (1 = one after the
# other in the ingesting process). Reading is CPU-bound Python + protobuf, so a
# second process puts the second core to work; results are still stored in the
# source's order. Workers only read: every file is written by the ingesting
# process, under its batch and commit record.
WORKERS_ENV = "GRPO_INGEST_WORKERS"
DEFAULT_WORKERS = 2
# Runs read ahead per worker: enough that the workers keep reading while this
# process writes a flushed buffer (~1-2 s), few enough to bound memory.
READ_AHEAD_PER_WORKER = 4


@dataclass
class IngestReport:
    """What one ingest added (new_*) and how long each part took."""

    new_runs: int = 0
    updated_runs: int = 0
    new_history_rows: int = 0
    new_history_other_rows: int = 0
    restated_steps: int = 0
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
    workers: int | None = None,
) -> IngestReport:
    """Ingest every source into one committed raw batch; returns what was added.

    `workers`: processes reading run files at once (default: $GRPO_INGEST_WORKERS, else 2).
    """
    report = IngestReport()
    workers = ingest_workers(workers)
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
                    _ingest_runs(source, state, batch, report, say, workers)
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


def ingest_workers(workers: int | None = None) -> int:
    """How many processes read run files: `workers`, else $GRPO_INGEST_WORKERS, else DEFAULT_WORKERS."""
    if workers is None:
        raw = os.environ.get(WORKERS_ENV, "").strip()
        if not raw:
            return DEFAULT_WORKERS
        try:
            workers = int(raw)
        except ValueError:
            raise ValueError(f"{WORKERS_ENV}={raw!r}: expected a number of reader processes (1 = none)") from None
    if workers < 1:
        raise ValueError(f"ingest workers must be at least 1 (1 = read in this process), got {workers}")
    return workers


def _ingest_runs(
    source: RunSource, state, batch: RawBatch, report: IngestReport, say: Progress, workers: int = 1
) -> None:
    history = _HistoryBuffer(batch, HISTORY)
    other = _HistoryBuffer(batch, HISTORY_OTHER)
    meta_rows: list[dict] = []
    restated: dict[str, list[int]] = {}
    with contextlib.closing(_reads(source, state, batch, report, workers)) as reads:
        for ref, stored, after, token, read in reads:
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


@dataclass
class _Planned:
    """A run in the read-ahead window."""

    ref: RunRef
    stored: RunState | None = None
    after: int | None = None
    token: str | None = None
    task: tuple | None = None  # (function, args) reading it, when it may be read ahead in a worker
    future: Future | None = None  # the read submitted to a worker
    deferred: bool = True  # decided only when its turn comes, exactly as a one-at-a-time read would


# What _reads yields per run to store: (ref, stored state, after_step, change token, read).
_Read = tuple[RunRef, RunState | None, int | None, str | None, RunRead]


def _reads(source: RunSource, state, batch: RawBatch, report: IngestReport, workers: int) -> Iterator[_Read]:
    """(ref, stored state, after_step, change token, read) of every run to store, in the source's order.

    A run id seen twice, an unchanged file and a file that cannot be read are
    handled (warning or skip) as reading one file after the other handles them.
    With `workers` > 1 and a source that offers `read_task`, runs whose id is
    new are read ahead (READ_AHEAD_PER_WORKER per worker) in worker processes;
    any other run is read here when its turn comes.
    """
    read_task = getattr(source, "read_task", None)
    parallel = workers > 1 and read_task is not None and _can_fork()
    window: deque[_Planned] = deque()
    seen: set[str] = set()
    pool: ProcessPoolExecutor | None = None
    try:
        for ref in source.runs():
            item = _Planned(ref)
            if parallel and ref.run_id not in seen and ref.run_id not in batch.wandb_runs:
                # First sight of this id: no earlier read can make it a duplicate, so decide now.
                item.deferred = False
                item.stored = state.runs.get(ref.run_id)
                item.after = item.stored.last_step if item.stored else None
                item.token = change_token(ref)
                if _unchanged(item):
                    report.runs_seen += 1
                    seen.add(ref.run_id)
                    continue
                item.task = read_task(ref, item.after, stored_token=_stored_token(item))
            seen.add(ref.run_id)
            window.append(item)
            waiting = [p for p in window if p.task is not None and p.future is None]
            if pool is None and len(waiting) >= 2:
                pool = _reader_pool(workers)
            if pool is not None:
                for p in waiting:
                    p.future = pool.submit(_read_in_worker, *p.task)
            while len(window) > (READ_AHEAD_PER_WORKER * workers if parallel else 0):
                yield from _resolve(window.popleft(), source, state, batch, report)
        while window:
            yield from _resolve(window.popleft(), source, state, batch, report)
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


def _stored_token(item: _Planned) -> str | None:
    return item.stored.token if item.stored is not None else None


def _unchanged(item: _Planned) -> bool:
    # Same file size and mtime as when last read: re-reading a 16 MB run only to
    # find nothing new would dominate a sync of many runs.
    return item.stored is not None and item.token is not None and item.stored.token == item.token


def _resolve(item: _Planned, source: RunSource, state, batch: RawBatch, report: IngestReport) -> Iterator[_Read]:
    ref = item.ref
    if item.deferred:
        if ref.run_id in batch.wandb_runs:
            report.warnings.append(f"run {ref.run_id} appears twice ({ref.label}); kept the first")
            return
        item.stored = state.runs.get(ref.run_id)
        item.after = item.stored.last_step if item.stored else None
        item.token = change_token(ref)
        if _unchanged(item):
            report.runs_seen += 1
            return
    try:
        if item.future is not None:
            read = item.future.result()
        elif item.task is not None:
            fn, args = item.task
            read = fn(*args)
        else:
            read = source.read(ref, item.after, stored_token=_stored_token(item))
    except SourceError:
        raise  # a remote source failing is fatal: nothing of this batch is committed
    except BrokenProcessPool as exc:  # a reader process died (killed, out of memory): not the file's doing
        raise RuntimeError(f"{ref.label}: a reader process died ({exc}); nothing of this ingest is stored") from exc
    except Exception as exc:  # a damaged local file must not stop the others
        read = _Failed(type(exc).__name__, str(exc))
    if isinstance(read, _Failed):
        report.warnings.append(f"{ref.label}: skipped, {read.kind}: {read.message}")
        return
    yield ref, item.stored, item.after, item.token, read


@dataclass(frozen=True)
class _Failed:
    """A read that raised, as text: it crosses from a worker whatever the exception was."""

    kind: str  # the exception's class name
    message: str


def _read_in_worker(fn: Callable[..., RunRead], args: tuple) -> RunRead | _Failed:
    try:
        return fn(*args)
    except SourceError:
        raise
    except Exception as exc:  # not every exception survives pickling back intact; its name and text do
        return _Failed(type(exc).__name__, str(exc))


def _can_fork() -> bool:
    # Workers are forked (they share this process's imports instead of paying
    # seconds for wandb's); a daemonic process may not have children.
    return "fork" in multiprocessing.get_all_start_methods() and not multiprocessing.current_process().daemon


def _reader_pool(workers: int) -> ProcessPoolExecutor:
    # pyarrow imports pandas on its first conversion from Python objects (~1 s):
    # do it once here so that the workers inherit it rather than each paying it.
    pa.array([b""], pa.large_binary())
    return ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context("fork"),
        initializer=_reader_started,
        initargs=(os.getpid(),),
    )


_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _reader_started(parent_pid: int) -> None:
    """In each reader process: die with the ingest (a SIGKILLed ingest leaves no reader behind); Ctrl-C is its."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent_pid:  # the ingest died before prctl took effect
        os._exit(1)


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
