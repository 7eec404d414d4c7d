"""What every source client hands to the ingest layer.

Sources are interchangeable clients behind two small interfaces: a W&B run
source (local run folders or the W&B API) and an event source (NDJSON files or
the Axiom API). The ingest layer and the Dagster assets never know which one
they got.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import pyarrow as pa

from pipelines.raw.schemas import HISTORY, HISTORY_OTHER, SCHEMAS, UTC_TS

# Columns a source produces; the raw layer adds batch_id (and ingested_at).
HISTORY_COLUMNS = pa.schema([f for f in SCHEMAS[HISTORY] if f.name != "batch_id"])
HISTORY_OTHER_COLUMNS = pa.schema([f for f in SCHEMAS[HISTORY_OTHER] if f.name != "batch_id"])
EVENT_COLUMNS = pa.schema(
    [
        ("time", UTC_TS),
        ("record", pa.string()),
        ("source", pa.string()),
        ("line", pa.int64()),
        ("event_key", pa.string()),
    ]
)
REJECT_COLUMNS = pa.schema(
    [
        ("source", pa.string()),
        ("line", pa.int64()),
        ("reason", pa.string()),
        ("raw", pa.string()),
    ]
)


@dataclass(frozen=True)
class RunMeta:
    """A run's metadata; `config` is unwrapped values, `summary` the final summary."""

    run_id: str
    run_name: str | None = None
    project: str | None = None
    entity: str | None = None
    run_group: str | None = None
    job_type: str | None = None
    sweep_id: str | None = None
    tags: tuple[str, ...] = ()
    notes: str | None = None
    host: str | None = None
    config: Mapping[str, Any] = field(default_factory=dict)
    summary: Mapping[str, Any] = field(default_factory=dict)
    state: str | None = None  # finished | crashed | failed | running | killed
    exit_code: int | None = None
    started_at: dt.datetime | None = None
    runtime_s: float | None = None
    last_step: int | None = None
    source: str | None = None
    # (metric name or glob such as "elo/*", the step metric it was defined with) from
    # `wandb.define_metric(..., step_metric=...)`: the x-axis the run chose for those metrics.
    step_metrics: tuple[tuple[str, str], ...] = ()

    def row(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "run_name": self.run_name,
            "project": self.project,
            "entity": self.entity,
            "run_group": self.run_group,
            "job_type": self.job_type,
            "sweep_id": self.sweep_id,
            "tags": list(self.tags),
            "notes": self.notes,
            "host": self.host,
            "config_json": dumps(self.config),
            "summary_json": dumps(self.summary),
            "state": self.state,
            "exit_code": self.exit_code,
            "started_at": self.started_at,
            "runtime_s": self.runtime_s,
            "last_step": self.last_step,
            "source": self.source,
            "step_metrics": [{"metric": m, "step_metric": s} for m, s in self.step_metrics],
        }

    def fingerprint(self) -> str:
        """Changes whenever anything a user could see about the run changes."""
        row = self.row()
        row.pop("source")
        if not row["step_metrics"]:  # runs stored before step metrics were read keep their fingerprint
            row.pop("step_metrics")
        return hashlib.sha256(dumps(row).encode()).hexdigest()[:32]


def dumps(obj: Any) -> str:
    """Canonical JSON; NaN/±Inf survive as the tokens W&B itself writes."""
    return json.dumps(obj, sort_keys=True, default=str, allow_nan=True, ensure_ascii=False)


@dataclass(frozen=True)
class RunRef:
    run_id: str
    label: str  # what error messages name: a file path or entity/project/run
    handle: Any = None  # source-private


@dataclass
class RunRead:
    meta: RunMeta
    history: pa.Table  # HISTORY_COLUMNS, only steps after the stored ones
    other: pa.Table  # HISTORY_OTHER_COLUMNS, same steps
    warnings: list[str] = field(default_factory=list)
    # Steps at or before the stored ones that this read logs again with values that replace
    # the stored ones (a resumed run's new segment); their rows are in `history`/`other`.
    restated_steps: list[int] = field(default_factory=list)


def change_token(ref: RunRef) -> str | None:
    """What changes when a run gains steps or changes state, without reading it.

    A local run's segment files' sizes and mtimes (the handle says); for API
    runs, W&B's state, heartbeat and last step. None when the source offers
    nothing cheap to compare.
    """
    own = getattr(ref.handle, "change_token", None)
    if callable(own):  # a local run: its segments' files
        return own()
    attrs = getattr(ref.handle, "_attrs", None)
    if isinstance(attrs, dict):
        keys = attrs.get("historyKeys") or {}
        last = keys.get("lastStep") if isinstance(keys, dict) else None
        return f"api:{attrs.get('state')}:{attrs.get('heartbeatAt')}:{last}"
    return None


class RunSource(Protocol):
    """W&B runs from somewhere: local run folders or the W&B API."""

    name: str

    def runs(self) -> Iterator[RunRef]: ...

    def read(self, ref: RunRef, after_step: int | None, stored_token: str | None = None) -> RunRead:
        """Metadata plus history rows with step > after_step (all rows if None).

        `stored_token` is the run's change token when it was last stored: a source whose runs come in
        parts (a resumed run's segments) tells from it which parts are new.
        """
        ...

    def close(self) -> None:
        """The sync is done with this source: release what it holds (listed refs become unreadable)."""
        ...


@dataclass
class EventChunk:
    source_key: str  # identity of the file or dataset, stable across syncs
    events: pa.Table  # EVENT_COLUMNS
    rejects: pa.Table  # REJECT_COLUMNS
    cursor: dict[str, Any]  # the source's new cursor once this chunk is stored
    dedupe: bool = False  # True when a chunk may repeat stored events (overlapping windows)
    warnings: list[str] = field(default_factory=list)


class EventSource(Protocol):
    """Events from somewhere: NDJSON files or the Axiom API."""

    name: str

    def chunks(self, cursors: Mapping[str, dict[str, Any]]) -> Iterator[EventChunk]:
        """New events since `cursors` (source_key -> cursor from the last commit)."""
        ...


def empty_history() -> pa.Table:
    return HISTORY_COLUMNS.empty_table()


def empty_other() -> pa.Table:
    return HISTORY_OTHER_COLUMNS.empty_table()
