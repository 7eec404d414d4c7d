"""The raw layer: append-only parquet batches, committed atomically.

Layout under the warehouse root (see warehouse/README.md)::

    raw/<table>/schema.parquet            empty, typed: readers see an empty table, not an error
    raw/<table>/batch-<batch_id>-<n>.parquet
    raw/_batches/<batch_id>.json          commit record, written last
    build/warehouse.duckdb                dbt's private build database
    grpo.duckdb                           the published read-only snapshot

Every data file is written to a temporary name and renamed into place, so a
reader never sees half a file. A batch counts only once its commit record
exists: whoever next takes the write lock (an ingest, a dbt build, a publish)
deletes data files of uncommitted (crashed) batches first, readers of the
published snapshot read only committed files (`Warehouse.committed_files`), and
the incremental state (steps per run, lines per file) is folded from commit
records only. Together this makes ingest crash-safe and idempotent.
tests/test_crash_safety.py kills ingests and publishes at every step (through
the GRPO_TEST_KILL_AT hook below, a no-op unless a test sets it) to prove it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import fcntl
import json
import os
import secrets
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

UTC_TS = pa.timestamp("us", tz="UTC")
# How a wait for the write lock starts to be told (Warehouse.lock's on_wait).
LOCK_WAIT_MESSAGE = "waiting for the warehouse write lock"

RUNS = "wandb_runs"
HISTORY = "wandb_history"
HISTORY_OTHER = "wandb_history_other"
RESTATED = "wandb_restated_steps"
EVENTS = "axiom_events"
REJECTS = "axiom_rejects"

SCHEMAS: dict[str, pa.Schema] = {
    # One row per run *version*: a new row is appended only when a run's
    # metadata changed (state, summary, config...); staging keeps the latest.
    RUNS: pa.schema(
        [
            ("run_id", pa.string()),
            ("run_name", pa.string()),
            ("project", pa.string()),
            ("entity", pa.string()),
            ("run_group", pa.string()),
            ("job_type", pa.string()),
            ("sweep_id", pa.string()),
            ("tags", pa.list_(pa.string())),
            ("notes", pa.string()),
            ("host", pa.string()),
            ("config_json", pa.string()),
            ("summary_json", pa.string()),
            ("state", pa.string()),
            ("exit_code", pa.int32()),
            ("started_at", UTC_TS),
            ("runtime_s", pa.float64()),
            ("last_step", pa.int64()),
            ("source", pa.string()),
            # define_metric's x-axes: [{metric (name or glob), step_metric}]. Added after
            # the first release: readers of this table use union_by_name.
            ("step_metrics", pa.list_(pa.struct([("metric", pa.string()), ("step_metric", pa.string())]))),
            ("fingerprint", pa.string()),
            ("batch_id", pa.string()),
            ("ingested_at", UTC_TS),
        ]
    ),
    # Long form: one row per run, step and numeric metric. NaN/±Inf are kept.
    HISTORY: pa.schema(
        [
            ("run_id", pa.string()),
            ("step", pa.int64()),
            ("wall_time", UTC_TS),
            ("key", pa.string()),
            ("value", pa.float64()),
            ("batch_id", pa.string()),
        ]
    ),
    # Non-numeric history values (strings, booleans, lists, media refs), as JSON.
    HISTORY_OTHER: pa.schema(
        [
            ("run_id", pa.string()),
            ("step", pa.int64()),
            ("wall_time", UTC_TS),
            ("key", pa.string()),
            ("value_json", pa.string()),
            ("batch_id", pa.string()),
        ]
    ),
    # Steps of a resumed run that a later segment logged again after an earlier
    # segment's values were stored: the history rows of this batch replace the
    # stored rows of those steps (staging leaves out rows of older batches).
    RESTATED: pa.schema(
        [
            ("run_id", pa.string()),
            ("step", pa.int64()),
            ("batch_id", pa.string()),
        ]
    ),
    # One row per event, with every original field kept in `record` (JSON text).
    EVENTS: pa.schema(
        [
            ("time", UTC_TS),
            ("record", pa.string()),
            ("source", pa.string()),
            ("line", pa.int64()),
            ("event_key", pa.string()),
            ("batch_id", pa.string()),
        ]
    ),
    # Lines that could not be loaded, with the reason and the raw text.
    REJECTS: pa.schema(
        [
            ("source", pa.string()),
            ("line", pa.int64()),
            ("reason", pa.string()),
            ("raw", pa.string()),
            ("batch_id", pa.string()),
        ]
    ),
}


class WarehouseBusyError(RuntimeError):
    """Another process holds the warehouse write lock."""


# --- test hook: crash at a named point ------------------------------------------
# GRPO_TEST_KILL_AT=<label>[@<n>] makes the process SIGKILL itself the n-th time
# (default: the first) it reaches the point called <label>, so the crash-safety
# tests (tests/test_crash_safety.py, bench/crash.py) can crash an ingest or a
# publish exactly between two steps. Unset, which it always is outside those
# tests, kill_point() only reads the variable and returns.
KILL_ENV = "GRPO_TEST_KILL_AT"
KILL_POINTS = (
    "parquet.tmp_torn",  # a data file's temp copy is half written (warehouse.write_parquet_atomic)
    "parquet.tmp_written",  # temp copy complete and fsynced, not yet renamed into place
    "parquet.renamed",  # a data file was renamed into place
    "commit.before_record",  # every data file of the batch is in place, no commit record yet
    "json.tmp_torn",  # the commit record's temp copy is half written
    "commit.after_record",  # the commit record is in place (lock still held)
    "cleanup.after_first_removal",  # orphan cleanup removed one file and died
    "ingest.between_sources",  # all run sources read and written, no event source started (pipelines.ingest)
    "publish.copying",  # the new snapshot holds some tables, not all (pipelines.snapshot)
    "publish.before_rename",  # the new snapshot is complete under its temp name
    "publish.after_rename",  # the new snapshot replaced grpo.duckdb
)
_kill_counts: dict[str, int] = {}


def kill_point(label: str, torn: Path | None = None) -> None:
    """Test hook (see KILL_ENV): SIGKILL this process here if the tests ask for `label`.

    With `torn`, that file is first cut to half its size, which is what a
    process killed in the middle of writing it leaves behind.
    """
    spec = os.environ.get(KILL_ENV)
    if not spec:
        return
    name, _, nth = spec.partition("@")
    if name != label:
        return
    _kill_counts[label] = _kill_counts.get(label, 0) + 1
    if _kill_counts[label] != int(nth or 1):
        return
    if torn is not None:
        with open(torn, "r+b") as fh:
            fh.truncate(os.fstat(fh.fileno()).st_size // 2)
    os.kill(os.getpid(), signal.SIGKILL)


def new_batch_id(now: dt.datetime | None = None) -> str:
    """A sortable, unique batch id: UTC time to the microsecond plus randomness."""
    now = now or dt.datetime.now(dt.UTC)
    return now.strftime("%Y%m%dT%H%M%S%fZ") + "-" + secrets.token_hex(4)


# Text columns that hold a different value on (nearly) every row: a dictionary
# would only be built and thrown away.
_UNIQUE_TEXT_COLUMNS = frozenset({"record", "raw", "event_key", "config_json", "summary_json", "notes"})


def _dictionary_columns(schema: pa.Schema) -> list[str]:
    """Columns worth dictionary encoding: repeated text (run ids, metric keys, batch ids, sources).

    Numbers and times are left plain: steps, values and times repeat too little
    for a dictionary to pay for building it (it cost ~10 % of writing history).
    """
    return [
        f.name for f in schema
        if (pa.types.is_string(f.type) or pa.types.is_large_string(f.type)) and f.name not in _UNIQUE_TEXT_COLUMNS
    ]


def write_parquet_atomic(table: pa.Table, path: Path) -> None:
    """Write `table` to `path` so that readers see either no file or the whole file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        pq.write_table(
            table, tmp, compression="zstd", row_group_size=1_000_000,
            use_dictionary=_dictionary_columns(table.schema),
        )
        kill_point("parquet.tmp_torn", torn=tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        kill_point("parquet.tmp_written")
        os.replace(tmp, path)
        kill_point("parquet.renamed")
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def write_json_atomic(obj: Any, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(obj, fh, indent=1, sort_keys=True, default=str)
        fh.flush()
        os.fsync(fh.fileno())
    kill_point("json.tmp_torn", torn=tmp)
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _lock_holders(path: Path) -> list[int]:
    """PIDs of other processes holding a POSIX lock on `path` (DuckDB locks its files so).

    Read from /proc/locks, which needs no file descriptor: opening and closing
    the file here would drop locks this process itself holds on it. Where
    /proc/locks does not exist the answer is empty.
    """
    try:
        st = os.stat(path)
        with open("/proc/locks", encoding="ascii", errors="replace") as fh:
            lines = fh.read().splitlines()
    except OSError:
        return []
    file_id = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    me = os.getpid()
    pids: list[int] = []
    for line in lines:
        f = line.split()
        # "1: POSIX  ADVISORY  WRITE 4242 fe:00:2154607 0 EOF"; "1: -> POSIX ..." is a waiter
        if len(f) < 6 or f[1] not in ("POSIX", "OFDLCK") or f[5] != file_id or not f[4].isdigit():
            continue
        if int(f[4]) != me and int(f[4]) not in pids:
            pids.append(int(f[4]))
    return pids


def _tmp_writer_alive(name: str, suffix: str) -> bool:
    """Whether the process that named a temp file `.<name>.<pid><suffix>` still runs."""
    pid = name.removesuffix(suffix).rsplit(".", 1)[-1]
    return pid.isdigit() and int(pid) != os.getpid() and _pid_alive(int(pid))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass
class RunState:
    last_step: int | None = None
    fingerprint: str | None = None
    token: str | None = None  # the source's cheap change token (file size+mtime) when last read


@dataclass
class IngestState:
    """Incremental state folded from commit records, in batch order."""

    runs: dict[str, RunState] = field(default_factory=dict)
    event_sources: dict[str, dict[str, Any]] = field(default_factory=dict)


class Warehouse:
    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root).resolve()
        self.orphans_removed: list[Path] = []

    # --- paths -------------------------------------------------------------
    @property
    def raw(self) -> Path:
        return self.root / "raw"

    @property
    def batches_dir(self) -> Path:
        return self.raw / "_batches"

    @property
    def build_db(self) -> Path:
        return self.root / "build" / "warehouse.duckdb"

    @property
    def snapshot_db(self) -> Path:
        return self.root / "grpo.duckdb"

    def table_dir(self, table: str) -> Path:
        return self.raw / table

    def table_glob(self, table: str) -> str:
        return str(self.table_dir(table) / "*.parquet")

    # --- setup ---------------------------------------------------------------
    def ensure(self) -> Warehouse:
        """Create the layout; each raw table gets an empty typed schema file."""
        for table, schema in SCHEMAS.items():
            d = self.table_dir(table)
            d.mkdir(parents=True, exist_ok=True)
            schema_file = d / "schema.parquet"
            if not schema_file.exists():
                write_parquet_atomic(schema.empty_table(), schema_file)
        self.batches_dir.mkdir(parents=True, exist_ok=True)
        self.build_db.parent.mkdir(parents=True, exist_ok=True)
        return self

    @contextlib.contextmanager
    def lock(
        self,
        timeout_s: float = 0.0,
        purpose: str = "ingest",
        *,
        wait_for_build_db: bool = True,
        on_wait: Callable[[str], None] | None = None,
    ) -> Iterator[None]:
        """Exclusive write lock over the warehouse (one ingest or build at a time).

        Waits up to `timeout_s`, then raises WarehouseBusyError naming the holder;
        `on_wait` hears once, when waiting starts, who holds it.
        With `wait_for_build_db` (for dbt builds and publishes; a raw ingest
        does not touch the build database) it also waits until no other
        process has the build database open.
        Once it holds the lock it removes orphans (see clean_orphans); the removed
        paths are left in `self.orphans_removed`.
        """
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.root / ".lock"
        fh = open(path, "a+", encoding="utf-8")
        deadline = time.monotonic() + timeout_s
        told = False

        def tell(what: str) -> None:
            nonlocal told
            if on_wait is not None and not told and time.monotonic() < deadline:
                on_wait(f"{LOCK_WAIT_MESSAGE}: {what} (for up to {timeout_s:g} s)")
                told = True

        try:
            while True:
                try:
                    fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except OSError as exc:
                    if exc.errno not in (errno.EAGAIN, errno.EACCES):
                        raise
                    fh.seek(0)
                    holder = fh.read().strip() or "another process"
                    tell(f"{holder} holds it")
                    if time.monotonic() >= deadline:
                        raise WarehouseBusyError(
                            f"warehouse {self.root} is busy: {holder} holds its write lock; "
                            "try again when it finishes"
                        ) from None
                    time.sleep(0.2)
            # A dbt build is a child process: if the process that held this lock
            # was killed, its dbt can go on writing the build database after the
            # lock was released. Wait for it, or the next build fails on
            # DuckDB's own lock ("Conflicting lock is held in ...").
            while wait_for_build_db and (holders := _lock_holders(self.build_db)):
                tell(f"process {', '.join(map(str, holders))} still has {self.build_db.name} open")
                if time.monotonic() >= deadline:
                    raise WarehouseBusyError(
                        f"warehouse {self.root} is busy: process {', '.join(map(str, holders))} still has "
                        f"{self.build_db.name} open (a dbt build whose parent was killed?); "
                        "try again when it finishes"
                    )
                time.sleep(0.2)
            fh.seek(0)
            fh.truncate()
            fh.write(f"{purpose} (pid {os.getpid()})")
            fh.flush()
            # The holder is the only writer, so whatever a writer that died left
            # behind (files of a batch it never committed, temp files) goes now,
            # before a dbt build or a publish could read it, not only at the
            # next ingest.
            self.orphans_removed = self.clean_orphans()
            yield
        finally:
            with contextlib.suppress(OSError):
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
            fh.close()

    # --- batches -------------------------------------------------------------
    def committed_batches(self) -> list[dict[str, Any]]:
        if not self.batches_dir.exists():
            return []
        records = []
        for p in sorted(self.batches_dir.glob("*.json")):
            with open(p, encoding="utf-8") as fh:
                records.append(json.load(fh))
        return records

    def clean_orphans(self) -> list[Path]:
        """Delete data files of batches that never committed, and stray temp files.

        Call only while holding the lock.
        """
        committed = {p.stem for p in self.batches_dir.glob("*.json")} if self.batches_dir.exists() else set()
        removed: list[Path] = []

        def remove(p: Path) -> None:
            p.unlink(missing_ok=True)
            removed.append(p)
            kill_point("cleanup.after_first_removal")

        # Temp files are named .<name>.<pid>.tmp: only a dead writer's are removed,
        # as ensure() (outside the lock) may be writing a schema file right now.
        for table in SCHEMAS:
            d = self.table_dir(table)
            if not d.exists():
                continue
            for p in d.iterdir():
                if p.name.endswith(".tmp"):
                    if not _tmp_writer_alive(p.name, ".tmp"):
                        remove(p)
                elif p.name.startswith("batch-") and batch_id_of(p) not in committed:
                    remove(p)
        if self.batches_dir.exists():
            for p in self.batches_dir.glob(".*.tmp"):
                if not _tmp_writer_alive(p.name, ".tmp"):
                    remove(p)
        # A snapshot publish that died leaves its temp database (and WAL) in the
        # root, .grpo.duckdb.<pid>.tmp[.wal], and maybe a half-written export
        # under published/ (.<name>.<pid>.tmp).
        if self.root.exists():
            for p in self.root.glob(f".{self.snapshot_db.name}.*.tmp*"):
                if not _tmp_writer_alive(p.name, ".tmp.wal" if p.name.endswith(".wal") else ".tmp"):
                    remove(p)
        published = self.root / "published"
        if published.exists():
            for p in published.rglob(".*.tmp"):
                if not _tmp_writer_alive(p.name, ".tmp"):
                    remove(p)
        return removed

    def committed_files(self, table: str, records: list[dict[str, Any]] | None = None) -> list[Path]:
        """The files of `table` that belong to committed batches, plus its schema file.

        What a reader should read: unlike the `*.parquet` glob it never includes
        a batch still being written or one whose writer died before committing.
        """
        d = self.table_dir(table)
        files = [d / "schema.parquet"]
        for record in self.committed_batches() if records is None else records:
            files.extend(d / name for name in (record.get("files") or {}).get(table, []))
        return files

    def state(self) -> IngestState:
        state = IngestState()
        for record in self.committed_batches():
            for run_id, rs in (record.get("wandb_runs") or {}).items():
                cur = state.runs.setdefault(run_id, RunState())
                if rs.get("last_step") is not None:
                    cur.last_step = max(cur.last_step if cur.last_step is not None else -1, int(rs["last_step"]))
                if rs.get("fingerprint") is not None:
                    cur.fingerprint = rs["fingerprint"]
                cur.token = rs.get("token")
            for key, cursor in (record.get("event_sources") or {}).items():
                state.event_sources[key] = cursor
        return state

    def batch(self) -> RawBatch:
        return RawBatch(self)


def _next_batch_id(warehouse: Warehouse) -> str:
    """A new batch id that sorts after every committed one.

    State is folded from commit records in batch-id order, so a wall clock that
    stepped back (NTP, a VM resumed) must not give a new batch an id that sorts
    before the previous one: its file cursors would then be overridden by older
    ones and the next ingest would read the same lines again.
    """
    batch_id = new_batch_id()
    d = warehouse.batches_dir
    last = max((p.stem for p in d.glob("*.json")), default=None) if d.exists() else None
    if last is not None and batch_id <= last:
        last_time = dt.datetime.strptime(last.split("-", 1)[0], "%Y%m%dT%H%M%S%fZ").replace(tzinfo=dt.UTC)
        batch_id = new_batch_id(last_time + dt.timedelta(microseconds=1))
    return batch_id


def batch_id_of(path: Path) -> str:
    # batch-<batch_id>-<n>.parquet; batch_id itself contains one '-'.
    stem = path.name[len("batch-") :].removesuffix(".parquet")
    return stem.rsplit("-", 1)[0]


class RawBatch:
    """One ingest's worth of raw files, committed together (or not at all)."""

    def __init__(self, warehouse: Warehouse) -> None:
        self.warehouse = warehouse
        self.batch_id = _next_batch_id(warehouse)
        self.ingested_at = dt.datetime.now(dt.UTC)
        self.files: dict[str, list[str]] = {}
        self.rows: dict[str, int] = {t: 0 for t in SCHEMAS}
        self.wandb_runs: dict[str, dict[str, Any]] = {}
        self.event_sources: dict[str, dict[str, Any]] = {}
        self.committed = False

    def write(self, table: str, data: pa.Table) -> int:
        """Append `data` (columns of SCHEMAS[table] minus batch columns) as one file."""
        if data.num_rows == 0:
            return 0
        schema = SCHEMAS[table]
        # Constant columns built by Arrow: a Python list of 4M strings cost ~0.4 s per history file.
        data = data.append_column("batch_id", pa.repeat(pa.scalar(self.batch_id, pa.string()), data.num_rows))
        if "ingested_at" in schema.names:
            data = data.append_column("ingested_at", pa.repeat(pa.scalar(self.ingested_at, UTC_TS), data.num_rows))
        data = data.select(schema.names).cast(schema)
        n = len(self.files.setdefault(table, []))
        name = f"batch-{self.batch_id}-{n:05d}.parquet"
        write_parquet_atomic(data, self.warehouse.table_dir(table) / name)
        self.files[table].append(name)
        self.rows[table] += data.num_rows
        return data.num_rows

    def record_run(self, run_id: str, last_step: int | None, fingerprint: str | None, token: str | None = None) -> None:
        self.wandb_runs[run_id] = {"last_step": last_step, "fingerprint": fingerprint, "token": token}

    def record_event_source(self, key: str, cursor: dict[str, Any]) -> None:
        self.event_sources[key] = cursor

    def commit(self) -> dict[str, Any]:
        record = {
            "batch_id": self.batch_id,
            "ingested_at": self.ingested_at.isoformat(),
            "files": self.files,
            "rows": self.rows,
            "wandb_runs": self.wandb_runs,
            "event_sources": self.event_sources,
        }
        for table in self.files:
            _fsync_dir(self.warehouse.table_dir(table))
        kill_point("commit.before_record")
        write_json_atomic(record, self.warehouse.batches_dir / f"{self.batch_id}.json")
        self.committed = True
        kill_point("commit.after_record")
        return record

    def abort(self) -> None:
        for table, names in self.files.items():
            for name in names:
                (self.warehouse.table_dir(table) / name).unlink(missing_ok=True)
        self.files.clear()

    def __enter__(self) -> RawBatch:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None and not self.committed:
            self.abort()
