"""W&B runs from the W&B API (`wandb.Api`, 0.31), as a RunSource.

How a sync talks to W&B (the wandb 0.31 public client's GraphQL operations):

* Listing: one `Runs` GraphQL page per `per_page` runs, with the full
  RunFragment (`lazy=False`). That page already carries config, summary and
  `historyKeys.lastStep`, so a run whose lastStep is at or below the stored
  step costs no further request at all: a sync of an unchanged project is
  `Viewer` (sent by `wandb.Api()` to check the key) + the `Runs` pages.
* History is never read with `run.history()` (sampled). For a changed run:
  - a run that is not running: `download_history_exports` fetches the
    parquet export (one `RunParquetHistory` + a GET per file), which Arrow
    turns into long form a column at a time (about 30x faster than paging
    rows through wandb-core, where every value is a JSON text). Steps the
    export does not cover (live data, not exported yet) then come from
    `scan_history`. Cost when there is no export yet: one extra small query.
  - a running run: W&B exports history some hours after a run ends, so
    straight to `scan_history(min_step=after_step+1, use_cache=False)`,
    which pages the live rows through `HistoryPage` queries (and reads any
    exported part from the parquet export, merged by step).
  `use_cache=False` matters: wandb-core's parquet cache is keyed by run and
  file index only, and goes stale as a run grows.
* Retries: a listing page or history read whose answer was cut mid-body or
  unreadable (wandb-core retries statuses, not that) is read again, up to
  `retries` times (a listing starts over, skipping runs it already gave).
  wandb-core's defaults (20 retries, waits up to 60 s) could hang a
  sync for many minutes. Before the first `wandb.Api()` of the process the
  retry knobs are set from `retries`/`timeout_s` unless the user set them
  (`WANDB__GRAPHQL_RETRY_*`, `WANDB__FILE_TRANSFER_RETRY_*`, `WANDB_HTTP_TIMEOUT`).
* wandb-core's own log: it records the bodies of responses it retries, so a
  server that echoes the API key back would leave the key in
  `WANDB_CACHE_DIR/wandb/logs/core-debug-*.log`. A sync therefore starts the
  process's wandb-core with its log in a private temporary folder (mode 0700)
  and `close()` (called by the ingest when the source is done) stops it and
  deletes that folder; at exit, whatever is left is stopped and deleted too.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import atexit
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipelines.sources.base import (
    HISTORY_COLUMNS,
    HISTORY_OTHER_COLUMNS,
    RunMeta,
    RunRead,
    RunRef,
    dumps,
)
from pipelines.sources.errors import SourceError, scrub
from pipelines.sources.retry import wandb_core_retry_env

__all__ = ["WandbApiRunSource", "history_to_long", "rows_to_long"]

# wandb-core bookkeeping columns: they become `step`/`wall_time`, or are dropped.
STEP_KEY, TIMESTAMP_KEY, RUNTIME_KEY = "_step", "_timestamp", "_runtime"
SPECIAL_KEYS = frozenset({STEP_KEY, TIMESTAMP_KEY, RUNTIME_KEY})
_PROJECT_PATH = re.compile(r"^[^/\s]+/[^/\s]+$")
_DETAIL_MAX_CHARS = 300
# A connection that broke mid-answer, as wandb-core reports it.
_TRANSPORT_ERROR = re.compile(r"unexpected EOF|connection reset|broken pipe|server closed", re.IGNORECASE)
_UNAUTHORIZED = re.compile(r"HTTP 401|\b401 Unauthorized|not logged in|unauthori[sz]ed|invalid api key", re.IGNORECASE)


class WandbApiRunSource:
    """Runs of one W&B project, read through the public API (the wandb-core sidecar)."""

    name = "wandb-api"

    def __init__(
        self,
        project: str,
        *,
        sweep: str | None = None,
        group: str | None = None,
        name_regex: str | None = None,
        updated_since: dt.datetime | None = None,
        base_url: str | None = None,
        timeout_s: float = 30,
        retries: int = 3,
        per_page: int = 50,
        page_size: int = 1_000,
    ) -> None:
        if not _PROJECT_PATH.match(project or ""):
            raise ValueError(f"W&B project must look like 'entity/project', got {project!r}")
        if name_regex is not None:
            re.compile(name_regex)  # fail here, not as a server error mid-sync
        self.project = project
        self.entity, self.project_name = project.split("/")
        self.sweep = sweep
        self.group = group
        self.name_regex = name_regex
        self.updated_since = updated_since
        self.base_url = base_url.rstrip("/") if base_url else None
        self.timeout_s = float(timeout_s)
        self.retries = int(retries)
        self.per_page = int(per_page)
        self.page_size = int(page_size)
        self._api: Any = None

    # --- RunSource ------------------------------------------------------------
    def runs(self) -> Iterator[RunRef]:
        """Every run of the project that matches the filters, oldest first."""
        api = self._new_api()
        what = f"listing runs of {self.project}"
        listed: set[str] = set()
        for attempt in range(self.retries + 1):
            try:
                pages = iter(
                    api.runs(
                        self.project, filters=self.filters(), order="+created_at", per_page=self.per_page, lazy=False
                    )
                )
                while True:
                    try:
                        run = next(pages)
                    except StopIteration:
                        return
                    if run.id not in listed:  # a listing started again skips what it already gave
                        listed.add(run.id)
                        yield RunRef(run_id=run.id, label=f"{self.project}/{run.id}", handle=run)
            except Exception as exc:
                # wandb-core's paginator cannot resume after a failed page: the listing starts over.
                if self._retry_later(attempt, exc):
                    continue
                raise self._error(what, exc) from None

    def close(self) -> None:
        """End of a sync: stop the wandb-core this source started and delete its private log folder.

        Runs listed before are not readable after it; the next `runs()` starts a new wandb-core.
        """
        self._api = None
        _stop_wandb_core()

    def read(self, ref: RunRef, after_step: int | None, stored_token: str | None = None) -> RunRead:
        """Metadata plus the full, unsampled history after `after_step`."""
        run = ref.handle
        try:
            if run is None:
                if self._api is None:
                    self._new_api()
                run = self._api.run(f"{self.project}/{ref.run_id}")
            meta = self.meta(run)
        except SourceError:
            raise
        except Exception as exc:
            raise self._error(f"reading run {ref.label}", exc) from None

        warnings: list[str] = []
        last = meta.last_step
        if last is None or (after_step is not None and last <= after_step):
            if last is not None and after_step is not None and last < after_step:
                warnings.append(
                    f"{ref.label}: W&B reports last step {last}, below the {after_step} already stored "
                    "(was the run rewound?); nothing new read"
                )
            empty = HISTORY_COLUMNS.empty_table(), HISTORY_OTHER_COLUMNS.empty_table()
            return RunRead(meta=meta, history=empty[0], other=empty[1], warnings=warnings)

        lo = 0 if after_step is None else after_step + 1
        for attempt in range(self.retries + 1):
            try:
                history, other = self._history(run, lo, last)
                break
            except SourceError:
                raise
            except Exception as exc:
                if self._retry_later(attempt, exc):  # reading the same steps again is harmless
                    continue
                raise self._error(f"reading the history of run {ref.label}", exc) from None
        return RunRead(meta=meta, history=history, other=other, warnings=warnings)

    # --- pieces -----------------------------------------------------------------
    def filters(self) -> dict[str, Any]:
        """The Mongo-style filter W&B's `Runs` query takes."""
        parts: list[dict[str, Any]] = []
        if self.sweep:
            parts.append({"sweep": self.sweep})
        if self.group:
            parts.append({"group": self.group})
        if self.name_regex:
            parts.append({"display_name": {"$regex": self.name_regex}})
        if self.updated_since is not None:
            since = _utc(self.updated_since).strftime("%Y-%m-%dT%H:%M:%SZ")
            # A run is "updated" when it was created or last heard from since then.
            parts.append({"$or": [{"createdAt": {"$gte": since}}, {"heartbeatAt": {"$gte": since}}]})
        if not parts:
            return {}
        return parts[0] if len(parts) == 1 else {"$and": parts}

    def meta(self, run: Any) -> RunMeta:
        summary = {k: v for k, v in dict(run.summary_metrics or {}).items() if k != "_wandb"}
        runtime = summary.get(RUNTIME_KEY)
        if not isinstance(runtime, (int, float)) or isinstance(runtime, bool):
            runtime = (run.summary_metrics or {}).get("_wandb", {}).get("runtime")
        history_keys = _attr(run, "historyKeys") or {}
        if isinstance(history_keys, str):
            history_keys = json.loads(history_keys)
        last_step = history_keys.get("lastStep")
        return RunMeta(
            run_id=run.id,
            run_name=run.name,
            project=self.project_name,
            entity=self.entity,
            run_group=_attr(run, "group") or None,
            job_type=_attr(run, "jobType") or None,
            sweep_id=run.sweep_name or None,
            tags=tuple(_attr(run, "tags") or ()),
            notes=_attr(run, "notes") or None,
            host=None,  # not in the run fragment; it lives in wandb-metadata.json
            config=dict(run.config or {}),
            summary=summary,
            state=run.state,
            exit_code=None,
            started_at=_parse_time(_attr(run, "createdAt")),
            runtime_s=float(runtime) if isinstance(runtime, (int, float)) and not isinstance(runtime, bool) else None,
            last_step=int(last_step) if last_step is not None else None,
            source=f"wandb:{self.project}",
            step_metrics=server_step_metrics(getattr(run, "rawconfig", None)),
        )

    def _history(self, run: Any, lo: int, hi: int) -> tuple[pa.Table, pa.Table]:
        """Long-form history for steps lo..hi (inclusive)."""
        run_id = run.id
        if run.state == "running":
            return rows_to_long(self._scan(run, lo, hi), run_id)

        parts: list[tuple[pa.Table, pa.Table]] = []
        exported_max = -1
        with tempfile.TemporaryDirectory(prefix="grpo-wandb-history-") as tmp:
            result = run.download_history_exports(tmp, require_complete_history=False)
            if result.errors:
                path, message = next(iter(result.errors.items()))
                raise SourceError(
                    f"wandb-api: downloading the history export of run {self.project}/{run_id} failed "
                    f"({len(result.errors)} file(s)); first: {Path(path).name}: {_short(_one_line(message))}"
                )
            for path in result.paths:
                table = pq.read_table(path)
                if STEP_KEY not in table.column_names or table.num_rows == 0:
                    continue
                exported_max = max(exported_max, int(pc.max(table[STEP_KEY]).as_py()))
                parts.append(history_to_long(table, run_id, lo, hi))
        if hi > exported_max and (result.contains_live_data or not result.paths):
            # Steps past the export (none exported yet, or a resumed run) are live data.
            parts.append(rows_to_long(self._scan(run, max(lo, exported_max + 1), hi), run_id))
        if not parts:
            return HISTORY_COLUMNS.empty_table(), HISTORY_OTHER_COLUMNS.empty_table()
        if len(parts) == 1:
            return parts[0]
        history = pa.concat_tables([p[0] for p in parts]).sort_by([("step", "ascending")])
        other = pa.concat_tables([p[1] for p in parts]).sort_by([("step", "ascending")])
        return history, other

    def _scan(self, run: Any, lo: int, hi: int) -> Iterator[dict[str, Any]]:
        """Rows of steps lo..hi, one per step.

        When part of a running run is already exported, wandb-core reads the
        export *and* pages the same steps live (seen with 0.31 against the
        loopback server: steps 0-99 came twice), so rows are keyed by step;
        the later (live) row wins.
        """
        rows: dict[Any, dict[str, Any]] = {}
        unkeyed: list[dict[str, Any]] = []
        for row in run.scan_history(page_size=self.page_size, min_step=lo, max_step=hi + 1, use_cache=False):
            step = row.get(STEP_KEY)
            if step is None:
                unkeyed.append(row)
            else:
                rows[int(step)] = row
        return iter([*unkeyed, *(rows[k] for k in sorted(rows))])

    def _new_api(self) -> Any:
        """A fresh `wandb.Api` (runs are cached per instance), with bounded retries."""
        key = os.environ.get("WANDB_API_KEY")
        if not key:
            raise SourceError(f"wandb-api: WANDB_API_KEY is not set; cannot read {self.project}")
        _configure_wandb_core(self.retries, self.timeout_s)
        _start_wandb_core()
        import wandb  # noqa: PLC0415 - heavy; only API syncs pay for it

        # Naming the entity spares the `GetDefaultEntity` query wandb would send to find one.
        overrides: dict[str, Any] = {"entity": self.entity}
        if self.base_url:
            overrides["base_url"] = self.base_url
        # How long Python waits on wandb-core per request: all attempts plus their waits.
        wait = int(self.timeout_s * (self.retries + 1) + 10 * self.retries + 5)
        try:
            self._api = wandb.Api(overrides=overrides, api_key=key, timeout=wait)
        except Exception as exc:
            raise self._error(f"connecting to W&B for {self.project}", exc) from None
        return self._api

    def _retry_later(self, attempt: int, exc: BaseException) -> bool:
        """After an answer cut mid-body or unreadable ("unexpected EOF": wandb-core retries
        statuses, not that), wait and say yes while attempts remain."""
        if attempt >= self.retries or not _TRANSPORT_ERROR.search(str(exc)):
            return False
        time.sleep(min(2.0**attempt, 10.0))
        return True

    def _error(self, what: str, exc: BaseException) -> SourceError:
        """One line naming the project and what failed; SourceError scrubs the key."""
        text = _one_line(str(exc)) or type(exc).__name__
        server = self.base_url or os.environ.get("WANDB_BASE_URL") or "the W&B server"
        if _looks_unauthorized(text):
            reason = f"W&B at {server} rejected WANDB_API_KEY (HTTP 401: {_short(text)})"
        elif re.search(r"Could not find project", text):
            reason = f"project {self.project} not found at {server}, or WANDB_API_KEY cannot see it"
        elif "giving up after" in text:
            reason = f"W&B at {server} kept failing: {_short(text)}"
        else:
            reason = f"{type(exc).__name__}: {_short(text)}"
        return SourceError(f"wandb-api: {what} failed: {reason}")


# --- long form ---------------------------------------------------------------------


def rows_to_long(rows: Iterator[Mapping[str, Any]], run_id: str) -> tuple[pa.Table, pa.Table]:
    """History rows (dicts, as `scan_history` yields them) -> (numeric, other) long tables.

    Nested dicts become dotted keys; a dict carrying `_type` is a W&B media or
    table reference and stays one JSON value. Numbers (NaN and ±Inf kept) go
    to the numeric table, everything else (text, booleans, lists, media) to
    `other` as JSON. Nulls are dropped: in the parquet export they mean "not
    logged at this step".
    """
    num_step: list[int] = []
    num_time: list[float] = []
    num_key: list[str] = []
    num_val: list[float] = []
    oth_step: list[int] = []
    oth_time: list[float] = []
    oth_key: list[str] = []
    oth_val: list[str] = []
    for row in rows:
        step = row.get(STEP_KEY)
        if step is None:
            continue
        step = int(step)
        ts = row.get(TIMESTAMP_KEY)
        ts = float(ts) if isinstance(ts, (int, float)) and not isinstance(ts, bool) else math.nan
        for key, value in _flat_items(row):
            if value is None or key in SPECIAL_KEYS:
                continue
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                num_step.append(step)
                num_time.append(ts)
                num_key.append(key)
                num_val.append(float(value))
            else:
                oth_step.append(step)
                oth_time.append(ts)
                oth_key.append(key)
                oth_val.append(dumps(value))
    rid = pa.scalar(run_id, pa.string())
    history = pa.Table.from_arrays(
        [
            pa.repeat(rid, len(num_step)),
            pa.array(num_step, pa.int64()),
            _utc_micros(np.asarray(num_time, dtype=np.float64)),
            pa.array(num_key, pa.string()),
            pa.array(num_val, pa.float64()),
        ],
        schema=HISTORY_COLUMNS,
    )
    other = pa.Table.from_arrays(
        [
            pa.repeat(rid, len(oth_step)),
            pa.array(oth_step, pa.int64()),
            _utc_micros(np.asarray(oth_time, dtype=np.float64)),
            pa.array(oth_key, pa.string()),
            pa.array(oth_val, pa.string()),
        ],
        schema=HISTORY_OTHER_COLUMNS,
    )
    return history, other


def history_to_long(table: pa.Table, run_id: str, lo: int = 0, hi: int | None = None) -> tuple[pa.Table, pa.Table]:
    """A wide history table (one column per key, W&B's parquet export) -> long tables, steps lo..hi.

    Column-at-a-time with Arrow: numeric columns are cast, not iterated.
    """
    steps = pc.cast(table[STEP_KEY], pa.int64())
    keep = pc.and_(pc.is_valid(steps), pc.greater_equal(steps, lo))
    if hi is not None:
        keep = pc.and_(keep, pc.less_equal(steps, hi))
    table = table.filter(pc.fill_null(keep, False))
    table = _flatten_structs(table)
    steps = pc.cast(table[STEP_KEY], pa.int64()).combine_chunks()
    if TIMESTAMP_KEY in table.column_names:
        seconds = pc.cast(table[TIMESTAMP_KEY], pa.float64()).to_numpy(zero_copy_only=False)
        seconds = np.where(pc.is_valid(table[TIMESTAMP_KEY]).to_numpy(zero_copy_only=False), seconds, np.nan)
    else:
        seconds = np.full(table.num_rows, np.nan)
    wall = _utc_micros(seconds)

    rid = pa.scalar(run_id, pa.string())
    num_parts: list[pa.Table] = []
    oth_parts: list[pa.Table] = []
    for name in table.column_names:
        if name in SPECIAL_KEYS:
            continue
        col = table[name].combine_chunks()
        typ = col.type
        valid = pc.is_valid(col)
        if pa.types.is_integer(typ) or pa.types.is_floating(typ) or pa.types.is_decimal(typ):
            values = pc.cast(col.filter(valid), pa.float64())
            target, parts = HISTORY_COLUMNS, num_parts
        else:
            present = col.filter(valid)
            if pa.types.is_boolean(typ):
                values = pc.if_else(present, "true", "false")
            else:
                values = _json_texts(present)
            target, parts = HISTORY_OTHER_COLUMNS, oth_parts
        n = len(values)
        if n == 0:
            continue
        parts.append(
            pa.Table.from_arrays(
                [pa.repeat(rid, n), steps.filter(valid), wall.filter(valid), pa.repeat(pa.scalar(name), n), values],
                schema=target,
            )
        )
    history = pa.concat_tables(num_parts) if num_parts else HISTORY_COLUMNS.empty_table()
    other = pa.concat_tables(oth_parts) if oth_parts else HISTORY_OTHER_COLUMNS.empty_table()
    return history, other


def _flatten_structs(table: pa.Table) -> pa.Table:
    """Struct columns -> "parent.child" columns, as nested dicts are in `rows_to_long`.

    A struct with a `_type` field is a W&B media/table reference and stays one
    column (one JSON value), again as in `rows_to_long`.
    """
    names: list[str] = []
    columns: list[pa.ChunkedArray] = []
    pending = list(zip(table.column_names, table.columns, strict=True))
    while pending:
        name, col = pending.pop(0)
        typ = col.type
        if pa.types.is_struct(typ) and typ.get_field_index("_type") < 0:
            children = [(f"{name}.{typ.field(i).name}", pc.struct_field(col, [i])) for i in range(typ.num_fields)]
            pending[:0] = children
        else:
            names.append(name)
            columns.append(col)
    return pa.Table.from_arrays(columns, names=names)


def _json_texts(values: pa.Array) -> pa.Array:
    """JSON text of each value; logged text repeats a lot, so each distinct value is encoded once."""
    if pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
        encoded = values.dictionary_encode()
        texts = pa.array([dumps(v) for v in encoded.dictionary.to_pylist()], pa.string())
        return texts.take(encoded.indices)
    return pa.array([dumps(v) for v in values.to_pylist()], pa.string())


def _flat_items(row: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for key, value in row.items():
        if isinstance(value, dict) and "_type" not in value:
            yield from _flat_items(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def _utc_micros(seconds: np.ndarray) -> pa.Array:
    """Epoch seconds (NaN = unknown) -> UTC microsecond timestamps, rounded like the local source."""
    missing = ~np.isfinite(seconds)
    micros = np.rint(np.where(missing, 0.0, seconds) * 1e6).astype(np.int64)
    return pa.array(micros, pa.int64(), mask=missing).cast(HISTORY_COLUMNS.field("wall_time").type)


# --- helpers ------------------------------------------------------------------------


# The wandb-core knobs this module set (name -> value), as opposed to ones the user set.
_OWN_ENV: dict[str, str] = {}
_SETTINGS_FIELDS = {
    "WANDB__GRAPHQL_RETRY_MAX": ("x_graphql_retry_max", int),
    "WANDB__GRAPHQL_RETRY_WAIT_MIN_SECONDS": ("x_graphql_retry_wait_min_seconds", float),
    "WANDB__GRAPHQL_RETRY_WAIT_MAX_SECONDS": ("x_graphql_retry_wait_max_seconds", float),
    "WANDB_HTTP_TIMEOUT": ("x_graphql_timeout_seconds", float),
    "WANDB__FILE_TRANSFER_RETRY_MAX": ("x_file_transfer_retry_max", int),
    "WANDB__FILE_TRANSFER_RETRY_WAIT_MIN_SECONDS": ("x_file_transfer_retry_wait_min_seconds", float),
    "WANDB__FILE_TRANSFER_RETRY_WAIT_MAX_SECONDS": ("x_file_transfer_retry_wait_max_seconds", float),
}


def _configure_wandb_core(retries: int, timeout_s: float) -> None:
    """Bound wandb-core's retries for the next `wandb.Api()`, unless the user chose their own.

    A knob counts as the user's when its environment variable holds a value
    this module did not put there. wandb reads the environment once, when its
    process-wide settings first load, and every `wandb.Api()` copies those
    settings; so once they are loaded, the knobs are also written to them
    (only where they are unset or still hold this module's previous value),
    which lets each source's `retries` apply to its own Api.
    """
    from wandb.sdk import wandb_setup  # noqa: PLC0415

    ours = {}
    for name, value in wandb_core_retry_env(retries, timeout_s).items():
        current = os.environ.get(name)
        if current is not None and current != _OWN_ENV.get(name):
            continue  # the user's choice
        ours[name] = value
    loaded = wandb_setup.singleton().settings_if_loaded
    for name, value in ours.items():
        previous = _OWN_ENV.get(name)
        os.environ[name] = _OWN_ENV[name] = value
        if loaded is not None:
            field, cast = _SETTINGS_FIELDS[name]
            now = getattr(loaded, field, None)
            if now is None or (previous is not None and now == cast(previous)):
                setattr(loaded, field, cast(value))


_CORE_LOG_DIR: Path | None = None  # the private folder this process's wandb-core logs into
_ATEXIT_REGISTERED = False


def _start_wandb_core() -> None:
    """Start this process's wandb-core, unless running, with its log in a private temporary folder.

    wandb-core writes its log under `WANDB_CACHE_DIR/wandb/logs/` (read from its
    environment at start), so the variable points at a fresh `mkdtemp` folder
    while the service starts. The history caches it would keep there are not
    used (`use_cache=False`), but a partial read of a parquet export may land
    there: it is deleted with the folder.
    """
    global _CORE_LOG_DIR, _ATEXIT_REGISTERED  # noqa: PLW0603 - one wandb-core per process
    from wandb.sdk import wandb_setup  # noqa: PLC0415

    setup = wandb_setup.singleton()
    try:
        setup.assert_service()
        return  # already running: started by an earlier source, or by wandb itself
    except AssertionError:
        pass
    if _CORE_LOG_DIR is not None:
        # the wandb-core that logged there was stopped by someone else (wandb.teardown()): its folder goes now
        shutil.rmtree(_CORE_LOG_DIR, ignore_errors=True)
        _CORE_LOG_DIR = None
    folder = Path(tempfile.mkdtemp(prefix="grpo-wandb-core-"))
    saved = os.environ.get("WANDB_CACHE_DIR")
    os.environ["WANDB_CACHE_DIR"] = str(folder)
    try:
        setup.ensure_service()
    except Exception:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    finally:
        if saved is None:
            os.environ.pop("WANDB_CACHE_DIR", None)
        else:
            os.environ["WANDB_CACHE_DIR"] = saved
    if not _ATEXIT_REGISTERED:
        atexit.register(_stop_wandb_core)
        _ATEXIT_REGISTERED = True
    _CORE_LOG_DIR = folder


def _stop_wandb_core() -> None:
    """Stop the wandb-core `_start_wandb_core` started and delete its log folder."""
    global _CORE_LOG_DIR  # noqa: PLW0603
    folder = _CORE_LOG_DIR
    if folder is None:
        return
    import wandb  # noqa: PLC0415

    try:
        wandb.teardown()
    except AssertionError:
        pass  # "Already torn down.": wandb's own exit hook stopped it first
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        _CORE_LOG_DIR = None


def _attr(run: Any, name: str) -> Any:
    """A raw field of the run's GraphQL node (Run exposes them through attribute lookup)."""
    try:
        return getattr(run, name)
    except AttributeError:
        return None


def _utc(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def _parse_time(text: Any) -> dt.datetime | None:
    """W&B's `createdAt` ("2024-01-01T00:00:00", UTC without an offset, or with one)."""
    if not isinstance(text, str) or not text:
        return None
    try:
        return _utc(dt.datetime.fromisoformat(text.replace("Z", "+00:00")))
    except ValueError:
        return None


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _short(text: str) -> str:
    # Scrub before cutting: a secret cut in half would no longer be recognised.
    text = scrub(text)
    return text if len(text) <= _DETAIL_MAX_CHARS else text[: _DETAIL_MAX_CHARS - 1] + "…"


def _looks_unauthorized(text: str) -> bool:
    return bool(_UNAUTHORIZED.search(text))


def server_step_metrics(rawconfig: Any) -> tuple[tuple[str, str], ...]:
    """The x-axes a run defined with `define_metric(..., step_metric=...)`, as the server keeps them.

    The SDK uploads its metric definitions into the run config as `_wandb.m`: a list
    of MetricRecords encoded by field number (1 name, 4 step_metric, 5 a 1-based index
    into the same list for the step metric), globs expanded to the concrete keys logged.
    Anything else found there is ignored: a run without definitions uses `_step`.
    """
    wandb_part = rawconfig.get("_wandb") if isinstance(rawconfig, Mapping) else None
    if isinstance(wandb_part, Mapping) and isinstance(wandb_part.get("value"), Mapping):
        wandb_part = wandb_part["value"]
    defs = wandb_part.get("m") if isinstance(wandb_part, Mapping) else None
    if not isinstance(defs, list):
        return ()
    names = [d.get("1") if isinstance(d, Mapping) else None for d in defs]
    out: dict[str, str] = {}
    for d, name in zip(defs, names):
        if not isinstance(name, str) or not name:
            continue
        step = d.get("4")
        index = d.get("5")
        if not step and isinstance(index, int) and not isinstance(index, bool) and 1 <= index <= len(names):
            step = names[index - 1]
        if isinstance(step, str) and step:
            out[name] = step
    return tuple(out.items())
