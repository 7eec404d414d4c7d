"""Raw batches: one ingest's files, committed together by a commit record written last, and the
incremental state folded from those records."""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from pipelines.raw.atomic_files import fsync_dir, write_json_atomic, write_parquet_atomic
from pipelines.raw.crash_points import kill_point
from pipelines.raw.schemas import SCHEMAS, UTC_TS

if TYPE_CHECKING:
    from pipelines.raw.paths import WarehousePaths


def new_batch_id(now: dt.datetime | None = None) -> str:
    """A sortable, unique batch id: UTC time to the microsecond plus randomness."""
    now = now or dt.datetime.now(dt.UTC)
    return now.strftime("%Y%m%dT%H%M%S%fZ") + "-" + secrets.token_hex(4)


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


def fold_state(records: list[dict[str, Any]]) -> IngestState:
    """The incremental state after the commit records `records`, applied in batch order."""
    state = IngestState()
    for record in records:
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


def _next_batch_id(warehouse: WarehousePaths) -> str:
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

    def __init__(self, warehouse: WarehousePaths) -> None:
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
            fsync_dir(self.warehouse.table_dir(table))
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
