"""The Axiom API event source, driven through the real `axiom-py` 0.15 client.

The client talks to a loopback fake (tests/fakes/axiom_server.py) that answers
the APL the source generates in Axiom's tabular format, and shuffles events
that share a timestamp on every query, as Axiom leaves their order open.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections import Counter
from typing import Any

import pytest
from fakes.axiom_server import FakeAxiomServer

from pipelines.sources.axiom_api import AxiomEventSource
from pipelines.sources.axiom_apl_time import apl_page_query, format_ns, parse_ns
from pipelines.sources.base import EVENT_COLUMNS, REJECT_COLUMNS
from pipelines.sources.errors import SourceError

TOKEN = "xaat-" + "t" * 36
T0 = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)
END = T0 + dt.timedelta(days=1)


@pytest.fixture
def server(monkeypatch):
    srv = FakeAxiomServer(token=TOKEN).start()
    monkeypatch.setenv("AXIOM_TOKEN", TOKEN)
    monkeypatch.setenv("AXIOM_URL", srv.url)
    monkeypatch.delenv("AXIOM_ORG_ID", raising=False)
    yield srv
    srv.stop()


def source(**kw: Any) -> AxiomEventSource:
    kw.setdefault("until", END)
    kw.setdefault("backoff_s", 0.05)
    kw.setdefault("max_backoff_s", 0.5)
    return AxiomEventSource("grpo-events", **kw)


def at(seconds: float) -> str:
    return (T0 + dt.timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


def rollouts(n: int, *, start: float = 0.0, step: float = 0.5, **extra: Any) -> list[dict[str, Any]]:
    return [
        {"_time": at(start + i * step), "event": "rollout", "rollout_id": f"ro-{start}-{i}", **extra} for i in range(n)
    ]


def collect(chunks) -> list[dict[str, Any]]:
    out = []
    for chunk in chunks:
        assert chunk.events.schema.equals(EVENT_COLUMNS) and chunk.rejects.schema.equals(REJECT_COLUMNS)
        out.extend(chunk.events.to_pylist())
    return out


def ingest_like(store: dict[str, dict], cursors: dict, chunks) -> int:
    """What the ingest layer does with chunks: drop stored keys when asked, keep the last cursor."""
    duplicates = 0
    for chunk in chunks:
        for event in chunk.events.to_pylist():
            if event["event_key"] in store:
                assert chunk.dedupe, "a chunk that repeats stored events must ask for dedupe"
                duplicates += 1
                continue
            store[event["event_key"]] = event
        cursors[chunk.source_key] = chunk.cursor
    return duplicates


# --- paging -------------------------------------------------------------------------


def test_pages_deliver_every_event_exactly_once(server):
    events = rollouts(2_345, step=0.25)
    events += rollouts(40, start=100.0, step=0.0)  # a tie inside the range
    server.add_events("grpo-events", events)

    got = collect(source(page_size=500).chunks({}))

    assert Counter(e["event_key"] for e in got) == Counter(e["_rowId"] for e in server.events("grpo-events"))
    assert Counter(json.loads(e["record"])["rollout_id"] for e in got) == Counter(e["rollout_id"] for e in events)
    times = [e["time"] for e in got]
    assert times == sorted(times)
    assert len(server.queries()) >= 5
    assert all(q.json["apl"].startswith("['grpo-events'] | where _time >= datetime(") for q in server.queries())


@pytest.mark.parametrize("row_ids", [True, False], ids=["with _rowId", "keyed by sha256"])
def test_2500_events_sharing_one_timestamp_across_a_page_boundary_arrive_exactly_once(monkeypatch, row_ids):
    srv = FakeAxiomServer(token=TOKEN, row_ids=row_ids).start()
    monkeypatch.setenv("AXIOM_TOKEN", TOKEN)
    monkeypatch.setenv("AXIOM_URL", srv.url)
    try:
        srv.add_events("grpo-events", rollouts(700, step=0.1))
        srv.add_events("grpo-events", [{"_time": at(300), "event": "reward", "i": i} for i in range(2_500)])
        srv.add_events("grpo-events", rollouts(600, start=301.0, step=0.1))

        got = collect(source(page_size=1_000).chunks({}))

        assert len(got) == len({e["event_key"] for e in got}) == 3_800
        burst = sorted(json.loads(e["record"])["i"] for e in got if '"reward"' in e["record"])
        assert burst == list(range(2_500))
        assert sum(1 for e in got if '"rollout"' in e["record"]) == 1_300
        # The instant was read whole with a growing limit, then paging went on past it.
        limits = [int(q.json["apl"].rsplit(" ", 1)[1]) for q in srv.queries()]
        assert 4_000 in limits
    finally:
        srv.stop()


def test_nanosecond_timestamps_are_kept_at_page_boundaries(server):
    base = "2024-05-01T12:00:00.000000"
    server.add_events("grpo-events", [{"_time": f"{base}{d}01Z", "n": d} for d in range(10)])  # 1, 101, ... 901 ns
    server.add_events("grpo-events", [{"_time": f"{base}005Z", "n": 100 + i} for i in range(3)])

    got = collect(source(page_size=2).chunks({}))

    assert sorted(json.loads(e["record"])["n"] for e in got) == list(range(10)) + [100, 101, 102]
    assert len({e["event_key"] for e in got}) == 13
    assert {e["time"] for e in got} == {T0}  # microsecond column; the record keeps the nanoseconds
    assert json.loads(got[0]["record"])["_time"].startswith("2024-05-01T12:00:00.000000")


# --- incremental ----------------------------------------------------------------------


def test_an_incremental_sync_with_overlap_catches_late_events_without_duplicates(server):
    server.add_events("grpo-events", rollouts(1_000, step=1.0))
    store: dict[str, dict] = {}
    cursors: dict[str, dict] = {}
    src = source(page_size=300, overlap=dt.timedelta(minutes=10), until=None)

    assert ingest_like(store, cursors, src.chunks(cursors)) == 0
    assert cursors == {"axiom:grpo-events": {"time": at(999)}}

    # A late event (5 min before the cursor, inside the overlap) and new ones arrive.
    server.add_events("grpo-events", [{"_time": at(999 - 300), "event": "late"}])
    server.add_events("grpo-events", rollouts(50, start=2_000.0))
    server.reset_log()
    duplicates = ingest_like(store, cursors, src.chunks(cursors))

    assert len(store) == 1_051 and set(store) == {e["_rowId"] for e in server.events("grpo-events")}
    assert duplicates == 601  # the overlap window (10 min, inclusive) re-read what was stored
    first = server.queries()[0].json
    assert f"datetime({at(999 - 600)})" in first["apl"]
    assert parse_ns(cursors["axiom:grpo-events"]["time"]) == parse_ns(at(2_000 + 49 * 0.5))


def test_the_ingest_layer_stores_each_event_once_across_overlapping_syncs(server, tmp_path):
    from pipelines.ingest.ingest_sources import ingest
    from pipelines.raw.layer import Warehouse

    server.add_events("grpo-events", rollouts(400, step=1.0))
    wh = Warehouse(tmp_path / "wh")
    src = source(page_size=150, until=None)
    first = ingest(wh, event_sources=[src])
    server.add_events("grpo-events", rollouts(30, start=395.5, step=1.0))  # some inside the overlap
    second = ingest(wh, event_sources=[src])
    third = ingest(wh, event_sources=[src])

    import duckdb

    keys = duckdb.sql(f"select event_key from read_parquet('{wh.table_glob('axiom_events')}')").fetchall()
    assert len(keys) == len(set(keys)) == 430
    assert (first.new_events, second.new_events, third.new_events) == (400, 30, 0)


def test_a_chunk_cursor_is_the_newest_time_stored_so_far(server):
    server.add_events("grpo-events", rollouts(10, step=1.0))

    chunks = list(source(page_size=4).chunks({}))

    assert [c.cursor["time"] for c in chunks] == [at(3), at(6), at(9)]
    assert not any(c.dedupe for c in chunks)  # a first sync cannot repeat stored events


# --- failures -----------------------------------------------------------------------


def test_rate_limited_queries_honour_retry_after_then_succeed(server):
    server.add_events("grpo-events", rollouts(5))
    server.inject("status", 2, status=429, retry_after=0.3)

    started = time.monotonic()
    got = collect(source().chunks({}))

    assert len(got) == 5
    assert [q.status for q in server.queries()] == [429, 429, 200]
    assert time.monotonic() - started >= 0.6
    gaps = [b.at - a.at for a, b in zip(server.queries(), server.queries()[1:], strict=False)]
    assert all(g >= 0.29 for g in gaps)


def test_retry_after_is_capped_so_a_server_cannot_stall_a_sync(server):
    server.add_events("grpo-events", rollouts(5))
    server.inject("status", 1, status=429, retry_after=3600)

    started = time.monotonic()
    assert len(collect(source(max_backoff_s=0.2).chunks({}))) == 5
    assert time.monotonic() - started < 5


def test_persistent_server_errors_raise_source_error_after_the_retry_bound(server):
    server.add_events("grpo-events", rollouts(5))
    server.inject("status", 1000, status=503)

    started = time.monotonic()
    with pytest.raises(SourceError) as err:
        collect(source(max_retries=3).chunks({}))

    message = str(err.value)
    assert time.monotonic() - started < 5
    assert len(server.queries()) == 4
    assert "\n" not in message and "grpo-events" in message and "HTTP 503" in message and "4 attempts" in message


def test_dropped_connections_and_unreadable_answers_are_retried(server):
    server.add_events("grpo-events", rollouts(5))
    server.inject("drop", 1)
    server.inject("malformed", 1)

    assert len(collect(source().chunks({}))) == 5
    assert [q.status for q in server.queries()] == [None, 200, 200]


def test_answers_that_stay_unreadable_raise_source_error(server):
    server.add_events("grpo-events", rollouts(5))
    server.inject("malformed", 1000)

    with pytest.raises(SourceError, match="unreadable 3 times"):
        collect(source(max_retries=2).chunks({}))


def test_a_bad_token_gives_one_clear_line_without_the_token(server, monkeypatch):
    bad = "xaat-" + "x" * 36
    monkeypatch.setenv("AXIOM_TOKEN", bad)
    server.add_events("grpo-events", rollouts(5))

    with pytest.raises(SourceError) as err:
        collect(source().chunks({}))

    message = str(err.value)
    assert bad not in message and "x" * 36 not in message and "\n" not in message
    assert "rejected AXIOM_TOKEN" in message and "HTTP 401" in message and "grpo-events" in message
    assert len(server.queries()) == 1  # not retried


def test_a_missing_token_or_unknown_dataset_is_a_source_error(server, monkeypatch):
    with pytest.raises(SourceError, match="HTTP 404"):
        collect(source().chunks({}))
    monkeypatch.delenv("AXIOM_TOKEN")
    with pytest.raises(SourceError, match="AXIOM_TOKEN is not set"):
        collect(source().chunks({}))


@pytest.mark.parametrize("name", ["logs'] | take 1 //", "a b", "", "x" * 200, "ds\\"])
def test_dataset_names_that_could_escape_the_apl_quotes_are_refused(name):
    with pytest.raises(ValueError, match="dataset"):
        AxiomEventSource(name)


# --- formats ------------------------------------------------------------------------


def test_an_event_whose_time_cannot_be_read_is_rejected_and_the_rest_load(server):
    server.add_events("grpo-events", rollouts(3))
    server.datasets["grpo-events"][1][1]["_time"] = "yesterday-ish"  # what a broken proxy might return

    chunks = list(source().chunks({}))

    assert sum(c.events.num_rows for c in chunks) == 2
    (reject,) = [r for c in chunks for r in c.rejects.to_pylist()]
    assert "yesterday-ish" in reject["reason"] and json.loads(reject["raw"])["rollout_id"] == "ro-0.0-1"
    assert chunks[-1].cursor == {"time": at(1.0)}


def test_events_ingested_with_the_real_client_come_back_with_every_field(server):
    from axiom_py import Client

    Client(token=TOKEN, url=server.url).ingest_events(
        "grpo-events",
        [
            {"_time": at(1), "event": "inference", "latency_s": 0.42, "ok": True, "tags": ["a", "b"]},
            {"_time": at(2), "event": "error", "message": 'could not parse "qty"'},
        ],
    )

    got = collect(source().chunks({}))

    first, second = (json.loads(e["record"]) for e in got)
    assert {k: first[k] for k in ("event", "latency_s", "ok", "tags")} == {
        "event": "inference",
        "latency_s": 0.42,
        "ok": True,
        "tags": ["a", "b"],
    }
    assert "message" not in first and second["message"] == 'could not parse "qty"'  # no padding nulls
    assert {"_time", "_sysTime", "_rowId"} <= set(first)
    assert [e["time"] for e in got] == [T0 + dt.timedelta(seconds=1), T0 + dt.timedelta(seconds=2)]
    assert {e["source"] for e in got} == {"axiom:grpo-events"} and {e["line"] for e in got} == {None}


def test_apl_and_time_helpers_round_trip_nanoseconds():
    ns = parse_ns("2024-05-01T12:00:00.123456789Z")
    assert format_ns(ns) == "2024-05-01T12:00:00.123456789Z"
    assert parse_ns("2024-05-01T14:00:00+02:00") == parse_ns("2024-05-01T12:00:00Z")
    assert apl_page_query("grpo-events", ns, ns + 1, 10) == (
        "['grpo-events'] | where _time >= datetime(2024-05-01T12:00:00.123456789Z)"
        " and _time < datetime(2024-05-01T12:00:00.12345679Z) | sort by _time asc | limit 10"
    )


# --- throughput ---------------------------------------------------------------------


def test_sync_throughput_against_the_loopback_server(server, record_property):
    """Not a benchmark gate: measures events/s with 10,000-event pages and prints it."""
    server.add_events("grpo-events", rollouts(30_000, step=0.01, engine="vllm", latency_s=0.5))
    src = source(page_size=10_000)
    next(AxiomEventSource("grpo-events", until=END, page_size=10).chunks({}))  # warm imports and connection

    started = time.perf_counter()
    n = len(collect(src.chunks({})))
    elapsed = time.perf_counter() - started

    assert n == 30_000
    record_property("events_per_s", round(n / elapsed))
    print(f"\naxiom: {n:,} events in {elapsed:.2f}s = {n / elapsed:,.0f} events/s ({src.queries} queries)")
