"""Events from an Axiom dataset through the Axiom API (`axiom-py` 0.15), as an EventSource: paging a
dataset by `_time` without losing or repeating events, keying them, and bounded retries of failures."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import time
from collections.abc import Iterator, Mapping
from typing import Any

import duckdb
import pyarrow as pa

from pipelines.sources.axiom_apl_time import (
    DATASET_NAME,
    apl_page_query,
    datetime_ceil,
    datetime_floor,
    format_ns,
    parse_ns,
    timedelta_ns,
    to_ns,
)
from pipelines.sources.axiom_tabular import PartialResult, Row, page_rows, query_page
from pipelines.sources.base import EVENT_COLUMNS, REJECT_COLUMNS, EventChunk
from pipelines.sources.errors import SourceError, scrub
from pipelines.sources.event_identity import EventIdentity, sql_literal
from pipelines.sources.retry import TimeoutHTTPAdapter, bounded_retry

__all__ = ["AxiomEventSource"]

# Reading one instant completely doubles its limit up to this many events;
# more events than this at one nanosecond means something is wrong upstream.
MAX_EVENTS_PER_INSTANT = 1_000_000


class AxiomEventSource:
    """Events of one Axiom dataset, read page by page in `_time` order.

    Queries are APL in the shape Axiom recommends for paging by time::

        ['<dataset>'] | where _time >= datetime(<lo>) and _time < datetime(<hi>) | sort by _time asc | limit <n>

    Paging by `_time` without losing or repeating events
    ------------------------------------------------------
    Events that share a timestamp come back in no particular order, so a page
    boundary can fall in the middle of them. After a full page whose newest
    timestamp is T, the next query starts at T *inclusive*, and the events at T
    already delivered (known by event key) are dropped from it. If a whole page
    shares one timestamp, starting at T again would make no progress: that instant
    is then read completely on its own (`_time >= T and _time < T + 1 ns`) with a
    limit that doubles until the answer is shorter than the limit, and paging goes
    on from T + 1 ns. Timestamps are handled in nanoseconds, Axiom's precision, as
    the text Axiom returned, so no boundary is rounded away.

    Incremental syncs
    -----------------
    The cursor for `axiom:<dataset>` is `{"time": <newest stored _time>}`. The next
    sync starts at that time minus `overlap`, to catch events that arrived late,
    and marks its chunks `dedupe=True`: the ingest layer drops event keys it
    already stored. An event's key follows the rules every event source shares
    (pipelines/sources/event_identity.py): its `_rowId` when Axiom returns one,
    else the values of its kind's identity fields (var `event_identity`, e.g. a
    rollout's `run_id` and `rollout_id`), else the sha256 of its canonical JSON
    record (so two events identical in every field, time included, count as
    one). A sync reads up to "now", never beyond, so an event stamped in the
    future cannot push the cursor past events still to come.

    Failures
    --------
    axiom-py mounts urllib3 retries on its session (3 retries, 0/4/8 s waits, 5xx
    only; 429 is not retried and a persistent 5xx surfaces as
    `requests.exceptions.RetryError`). This source mounts its own adapter on
    `client.session` instead: up to `max_retries` retries of 429 and 5xx with
    exponential waits from `backoff_s` (capped at `max_backoff_s`) or the server's
    Retry-After (capped the same way), and a per-request timeout, which axiom-py
    does not set. A body that cannot be read as a query result, or that the
    connection cut short, is retried the same number of times. After the bound the sync raises SourceError: one line naming
    the dataset and the last status, never the token.
    """

    name = "axiom-api"

    def __init__(
        self,
        dataset: str,
        *,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
        overlap: dt.timedelta = dt.timedelta(minutes=10),
        page_size: int = 10_000,
        url: str | None = None,
        max_retries: int = 4,
        backoff_s: float = 1.0,
        max_backoff_s: float = 30.0,
        timeout_s: float = 60.0,
        identity: EventIdentity | None = None,
    ) -> None:
        if not DATASET_NAME.match(dataset or ""):
            raise ValueError(
                f"Axiom dataset name {dataset!r} is not valid: use letters, digits, '.', '_' or '-' (at most 128)"
            )
        if page_size < 1:
            raise ValueError("page_size must be at least 1")
        self.dataset = dataset
        self.since = since
        self.until = until
        self.overlap = overlap
        self.page_size = int(page_size)
        self.url = url
        self.max_retries = int(max_retries)
        self.backoff_s = float(backoff_s)
        self.max_backoff_s = float(max_backoff_s)
        self.timeout_s = float(timeout_s)
        self.source_key = f"axiom:{dataset}"
        self.queries = 0  # APL queries sent by this source, for reports and tests
        self._client: Any = None
        self.identity = identity if identity is not None else EventIdentity.from_settings()
        self._keys_con: duckdb.DuckDBPyConnection | None = None

    # --- EventSource ------------------------------------------------------------
    def chunks(self, cursors: Mapping[str, dict[str, Any]]) -> Iterator[EventChunk]:
        """One chunk per page of new events; each chunk's cursor is the state once it is stored."""
        cursor = dict(cursors.get(self.source_key) or {})
        stored_ns = parse_ns(cursor["time"]) if cursor.get("time") else None
        hi = to_ns(self.until) if self.until is not None else to_ns(dt.datetime.now(dt.UTC))
        if stored_ns is not None:
            lo = stored_ns - timedelta_ns(self.overlap)
            if self.since is not None:
                lo = max(lo, to_ns(self.since))
        else:
            lo = to_ns(self.since) if self.since is not None else 0
        if lo >= hi:
            return

        newest = stored_ns
        client = self._get_client()
        for rows in self._pages(client, lo, hi):
            events, rejects = self._tables(rows)
            times = [r.ns for r in rows if r.ns is not None]
            if times:
                newest = max(times) if newest is None else max(newest, *times)
            yield EventChunk(
                source_key=self.source_key,
                events=events,
                rejects=rejects,
                cursor={"time": format_ns(newest)} if newest is not None else cursor,
                dedupe=stored_ns is not None,
            )

    # --- paging -------------------------------------------------------------------
    def _pages(self, client: Any, lo: int, hi: int) -> Iterator[list[Row]]:
        """Fresh rows of [lo, hi), page by page; see the class docstring for the method."""
        seen_at_lo: set[str] = set()  # keys already delivered whose time is exactly `lo`
        while lo < hi:
            raw = self._rows(*self._query(client, lo, hi, self.page_size))
            rows = [r for r in raw if r.ns is None or lo <= r.ns < hi]
            fresh = _fresh(rows, lo, seen_at_lo)
            if fresh:
                yield fresh
            if len(raw) < self.page_size:
                return  # the answer was complete: [lo, hi) is exhausted
            timed = [r.ns for r in rows if r.ns is not None]
            if not timed:
                raise SourceError(
                    f"axiom-api: dataset {self.dataset} returned a full page without one readable _time "
                    f"from {format_ns(lo)}; cannot page on"
                )
            newest = max(timed)
            if newest == lo:
                # The whole page is one instant: read it completely, then move past it.
                seen_at_lo |= {r.key for r in rows if r.ns == lo}
                yield from self._instant(client, lo, seen_at_lo)
                lo, seen_at_lo = lo + 1, set()
            else:
                seen_at_lo = {r.key for r in rows if r.ns == newest}
                lo = newest

    def _instant(self, client: Any, t: int, seen: set[str]) -> Iterator[list[Row]]:
        limit = self.page_size
        while True:
            limit *= 2
            if limit > MAX_EVENTS_PER_INSTANT * 2:
                raise SourceError(
                    f"axiom-api: dataset {self.dataset} has more than {MAX_EVENTS_PER_INSTANT} events "
                    f"at the single instant {format_ns(t)}; refusing to page further"
                )
            raw = self._rows(*self._query(client, t, t + 1, limit))
            rows = [r for r in raw if r.ns == t]
            fresh = _fresh(rows, t, seen)
            seen |= {r.key for r in fresh}
            if fresh:
                yield fresh
            if len(raw) < limit:
                return

    def _query(self, client: Any, lo: int, hi: int, limit: int) -> tuple[list[str], list[list[Any]]]:
        """Run one page query, retrying unreadable answers; status retries happen in the adapter."""
        import requests
        from axiom_py import AplOptions, AxiomError

        apl = apl_page_query(self.dataset, lo, hi, limit)
        # The request window is whole microseconds (axiom-py's format); the APL holds the exact bounds.
        opts = AplOptions(start_time=datetime_floor(lo), end_time=datetime_ceil(hi))
        what = f"axiom-api: querying dataset {self.dataset} from {format_ns(lo)}"
        attempt = 0
        while True:
            self.queries += 1
            try:
                return query_page(client, apl, opts)
            except PartialResult:
                raise SourceError(f"{what} returned a partial result; try a smaller page_size") from None
            except (
                json.JSONDecodeError,  # cut short or not JSON
                UnicodeDecodeError,
                requests.exceptions.ChunkedEncodingError,  # the connection broke mid-answer: urllib3 does not retry that
                KeyError,
                TypeError,
                IndexError,
            ) as exc:
                attempt += 1
                if attempt > self.max_retries:
                    raise SourceError(
                        f"{what} failed: the answer was unreadable {attempt} times "
                        f"({type(exc).__name__}: {_short(str(exc))})"
                    ) from None
                time.sleep(min(self.backoff_s * 2 ** (attempt - 1), self.max_backoff_s))
            except AxiomError as exc:
                raise SourceError(f"{what} failed: {self._status_reason(exc.status, exc.message)}") from None
            except requests.exceptions.RequestException as exc:
                # Connection refused/dropped or timed out on every attempt (RetryError included).
                raise SourceError(
                    f"{what} failed after {self.max_retries + 1} attempts: {type(exc).__name__}: {_short(str(exc))}"
                ) from None

    def _status_reason(self, status: int, message: str) -> str:
        if status in (401, 403):
            return f"Axiom rejected AXIOM_TOKEN (HTTP {status}: {_short(message)})"
        if status == 404:
            return f"dataset not found or not visible to this token (HTTP 404: {_short(message)})"
        if status == 429 or status >= 500:
            return f"gave up after {self.max_retries + 1} attempts (HTTP {status}: {_short(message)})"
        return f"HTTP {status}: {_short(message)}"

    def _get_client(self) -> Any:
        """One axiom-py client per source, with bounded retries and a timeout on its session."""
        if self._client is not None:
            return self._client
        token = os.environ.get("AXIOM_TOKEN")
        if not token:
            raise SourceError(f"axiom-api: AXIOM_TOKEN is not set; cannot query dataset {self.dataset}")
        from axiom_py import Client

        client = Client(
            token=token,
            org_id=os.environ.get("AXIOM_ORG_ID") or None,
            url=self.url or os.environ.get("AXIOM_URL") or None,
        )
        adapter = TimeoutHTTPAdapter(
            max_retries=bounded_retry(self.max_retries, self.backoff_s, self.max_backoff_s), timeout_s=self.timeout_s
        )
        client.session.mount("http://", adapter)
        client.session.mount("https://", adapter)
        self._client = client
        return client

    # --- rows -> tables -------------------------------------------------------------
    def _rows(self, names: list[str], columns: list[list[Any]]) -> list[Row]:
        """The page's events with their keys; rows without `_rowId` are keyed in one query."""
        rows = page_rows(names, columns)
        unkeyed = [i for i, r in enumerate(rows) if r.key is None]
        if not unkeyed:
            return rows
        if not self.identity.by_kind:
            keys = [hashlib.sha256(rows[i].record.encode()).hexdigest() for i in unkeyed]
        else:
            # The SQL the NDJSON reader keys its lines with; the content hash is the
            # whole sha256 of the canonical record, as this source has always stored it.
            if self._keys_con is None:
                self._keys_con = duckdb.connect(":memory:")
            paths = "[" + ", ".join(sql_literal(p) for p in self.identity.paths()) + "]"
            key = self.identity.key_sql("fields", "sha256(record)", first=1)
            page = pa.table(
                {"i": pa.array(range(len(unkeyed)), pa.int64()), "record": [rows[i].record for i in unkeyed]}
            )
            self._keys_con.register("page", page)
            try:
                keys = [
                    k
                    for (k,) in self._keys_con.execute(
                        f"select {key} from (select i, record, case when json_valid(record) then "
                        f"json_extract_string(record, {paths}) end as fields from page) order by i"
                    ).fetchall()
                ]
            finally:
                self._keys_con.unregister("page")
        for i, k in zip(unkeyed, keys, strict=True):
            rows[i] = rows[i]._replace(key=k)
        return rows

    def _tables(self, rows: list[Row]) -> tuple[pa.Table, pa.Table]:
        bad = [r for r in rows if r.ns is None]
        good = [r for r in rows if r.ns is not None] if bad else rows
        ns, _, records, keys = zip(*good, strict=True) if good else ((), (), (), ())
        events = pa.Table.from_arrays(
            [
                pa.array([n // 1000 for n in ns], pa.int64()).cast(EVENT_COLUMNS.field("time").type),
                pa.array(records, pa.string()),
                pa.repeat(pa.scalar(self.source_key, pa.string()), len(good)),
                pa.nulls(len(good), pa.int64()),
                pa.array(keys, pa.string()),
            ],
            schema=EVENT_COLUMNS,
        )
        rejects = pa.Table.from_arrays(
            [
                pa.repeat(pa.scalar(self.source_key, pa.string()), len(bad)),
                pa.nulls(len(bad), pa.int64()),
                pa.array([f"_time is missing or not a time: {r.time_text!r}" for r in bad], pa.string()),
                pa.array([r.record for r in bad], pa.string()),
            ],
            schema=REJECT_COLUMNS,
        )
        return events, rejects


def _fresh(rows: list[Row], lo: int, seen_at_lo: set[str]) -> list[Row]:
    """Rows not delivered before: none at `lo` already seen, no key twice in one page."""
    out, keys = [], set()
    for r in rows:
        if (r.ns == lo and r.key in seen_at_lo) or r.key in keys:
            continue
        keys.add(r.key)
        out.append(r)
    return out


def _short(text: str, limit: int = 300) -> str:
    # Scrub before cutting: a secret cut in half would no longer be recognised.
    text = " ".join(scrub(str(text)).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
