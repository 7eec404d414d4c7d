"""The W&B API run source, driven through the real `wandb` 0.31 client.

`wandb.Api` sends its GraphQL through the Go wandb-core sidecar; here that
sidecar talks to a loopback fake (tests/fakes/wandb_server.py) that speaks the
same operations. Expected values are computed from the fake's own rows.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import time
from collections import Counter
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fakes.wandb_server import FakeRun, FakeWandbServer, flatten, make_rows

from pipelines.sources.base import HISTORY_COLUMNS, HISTORY_OTHER_COLUMNS, RunRef
from pipelines.sources.errors import SourceError
from pipelines.sources.wandb_api import WandbApiRunSource
from pipelines.sources.wandb_api_conversion import history_to_long, rows_to_long

KEY = "local-" + "k" * 40
HISTORY_OPS = {"RunHistoryKeys", "RunParquetHistory", "HistoryPage", "SampledHistoryPage", "RunFullHistory"}


@pytest.fixture
def server(monkeypatch):
    srv = FakeWandbServer(api_key=KEY, entity="ent").start()
    monkeypatch.setenv("WANDB_BASE_URL", srv.url)
    monkeypatch.setenv("WANDB_API_KEY", KEY)
    monkeypatch.delenv("WANDB_ENTITY", raising=False)
    monkeypatch.delenv("WANDB_PROJECT", raising=False)
    yield srv
    srv.stop()


def expected_long(rows: list[dict[str, Any]], after: int | None = None) -> tuple[set, set]:
    """(numeric, other) long-form facts the source should produce for `rows`, NaN as a token."""
    numeric, other = set(), set()
    for row in rows:
        step = int(row["_step"])
        if after is not None and step <= after:
            continue
        wall = round(row["_timestamp"] * 1e6)
        for key, value in flatten(row).items():
            if key in ("_step", "_timestamp", "_runtime") or value is None:
                continue
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                numeric.add((step, wall, key, "NaN" if math.isnan(value) else float(value)))
            else:
                other.add((step, wall, key, json.dumps(value)))
    return numeric, other


def actual_long(read) -> tuple[set, set]:
    assert read.history.schema.equals(HISTORY_COLUMNS)
    assert read.other.schema.equals(HISTORY_OTHER_COLUMNS)

    def micros(t: dt.datetime) -> int:
        return round((t - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) / dt.timedelta(microseconds=1))

    numeric = {
        (r["step"], micros(r["wall_time"]), r["key"], "NaN" if math.isnan(r["value"]) else r["value"])
        for r in read.history.to_pylist()
    }
    other = {(r["step"], micros(r["wall_time"]), r["key"], r["value_json"]) for r in read.other.to_pylist()}
    assert len(numeric) == read.history.num_rows, "duplicate history rows"
    assert len(other) == read.other.num_rows, "duplicate history_other rows"
    return numeric, other


def history_ops(srv: FakeWandbServer) -> Counter:
    return Counter(
        r.op or r.path.split("/")[1] for r in srv.log if r.op in HISTORY_OPS or r.path.startswith("/parquet")
    )


def training_rows(n: int, **kw: Any) -> list[dict[str, Any]]:
    rows = make_rows(n, nan_every=9, sparse_every=7, **kw)
    rows[3]["train/loss"] = math.inf
    rows[4]["flags"] = {"done": False}  # a boolean, nested
    return rows


# --- listing ------------------------------------------------------------------------


def test_listing_pages_through_every_run_with_a_small_page_size(server):
    for i in range(5):
        server.add_run("proj", FakeRun(f"r{i}", created_at=f"2024-01-0{i + 1}T00:00:00"))

    refs = list(WandbApiRunSource("ent/proj", per_page=2).runs())

    assert [r.run_id for r in refs] == ["r0", "r1", "r2", "r3", "r4"]
    assert [r.label for r in refs][:1] == ["ent/proj/r0"]
    pages = server.requests(op="Runs")
    assert len(pages) == 3
    assert [p.json["variables"]["perPage"] for p in pages] == [2, 2, 2]
    assert [p.json["variables"]["cursor"] for p in pages] == [None, "2", "4"]


def test_sweep_group_name_and_updated_since_filters_select_the_matching_runs(server):
    for run_id, sweep, group, name, day in [
        ("a", "sw1", "g1", "grpo-a", 1),
        ("b", "sw1", "g2", "grpo-b", 2),
        ("c", "sw2", "g1", "sft-c", 3),
    ]:
        created = f"2024-01-0{day}T00:00:00"
        heartbeat = "2024-02-01T00:00:00" if run_id == "c" else created
        server.add_run(
            "proj",
            FakeRun(run_id, sweep=sweep, group=group, display_name=name, created_at=created, heartbeat_at=heartbeat),
        )

    def ids(**kw: Any) -> list[str]:
        return [r.run_id for r in WandbApiRunSource("ent/proj", **kw).runs()]

    assert ids(sweep="sw1") == ["a", "b"]
    assert ids(group="g1") == ["a", "c"]
    assert ids(sweep="sw1", group="g1") == ["a"]
    assert ids(name_regex="^grpo-") == ["a", "b"]
    assert ids(updated_since=dt.datetime(2024, 1, 15, tzinfo=dt.UTC)) == ["c"]
    sent = json.loads(server.requests(op="Runs")[2].json["variables"]["filters"])
    assert sent == {"$and": [{"sweep": "sw1"}, {"group": "g1"}]}


# --- history ------------------------------------------------------------------------


def test_full_history_from_the_parquet_export_equals_the_servers_rows(server):
    rows = training_rows(300)
    run = server.add_run(
        "proj",
        FakeRun("done", state="finished", config={"lr": 1e-5, "model": {"name": "q"}}, history=rows, exported_rows=300),
    )

    src = WandbApiRunSource("ent/proj")
    (ref,) = list(src.runs())
    read = src.read(ref, None)

    assert actual_long(read) == expected_long(rows)
    assert read.meta.last_step == 299
    assert read.meta.config == {"lr": 1e-5, "model": {"name": "q"}}
    assert "_wandb" not in read.meta.summary and read.meta.summary["_step"] == 299
    assert read.meta.runtime_s == rows[-1]["_runtime"]
    assert read.meta.started_at == dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    assert read.meta.source == "wandb:ent/proj" and read.meta.state == "finished"
    # One export download, no live paging, nothing sampled.
    assert history_ops(server) == Counter({"RunParquetHistory": 1, "parquet": 1})
    assert run.exported_rows == 300


def test_full_history_from_live_pages_equals_the_servers_rows(server):
    rows = training_rows(260)
    server.add_run("proj", FakeRun("live", state="running", history=rows, exported_rows=0))

    src = WandbApiRunSource("ent/proj", page_size=100)
    (ref,) = list(src.runs())
    read = src.read(ref, None)

    assert actual_long(read) == expected_long(rows)
    pages = server.requests(op="HistoryPage")
    assert [(p.json["variables"]["minStep"], p.json["variables"]["maxStep"]) for p in pages] == [
        (0, 100),
        (100, 200),
        (200, 260),
    ]
    assert not server.requests(op="RunFullHistory") and not server.requests(op="SampledHistoryPage")


def test_a_run_exported_in_part_reads_the_rest_from_live_pages(server):
    rows = training_rows(150)
    server.add_run("proj", FakeRun("resumed", state="finished", history=rows, exported_rows=100))

    src = WandbApiRunSource("ent/proj")
    (ref,) = list(src.runs())
    read = src.read(ref, None)

    assert actual_long(read) == expected_long(rows)
    (page,) = server.requests(op="HistoryPage")
    assert page.json["variables"]["minStep"] == 100


def test_the_fake_serves_ranged_parquet_reads_to_the_real_client(server):
    """scan_history(keys=...) makes wandb-core read the export remotely with HTTP Range requests."""
    rows = training_rows(120)
    server.add_run("proj", FakeRun("ranged", history=rows, exported_rows=120))
    import wandb

    api = wandb.Api(api_key=KEY, timeout=30)
    got = list(api.run("ent/proj/ranged").scan_history(keys=["train/loss"], use_cache=False))

    assert [(r["_step"], r["train/loss"]) for r in got] == [(r["_step"], r["train/loss"]) for r in rows]
    fetches = server.requests(path="/parquet")
    assert fetches and all(r.headers.get("range", "").startswith("bytes=") and r.status == 206 for r in fetches)


def test_a_growing_run_returns_only_the_new_steps(server):
    run = server.add_run("proj", FakeRun("grow", state="running", history=training_rows(40)))
    src = WandbApiRunSource("ent/proj")
    first = src.read(next(src.runs()), None)
    assert first.meta.last_step == 39

    run.append(make_rows(25, start=40, nan_every=4))
    server.reset_log()
    second = src.read(next(src.runs()), first.meta.last_step)

    assert second.meta.last_step == 64
    assert actual_long(second) == expected_long(run.history, after=39)
    assert {r["step"] for r in second.history.to_pylist()} == set(range(40, 65))
    assert [p.json["variables"]["minStep"] for p in server.requests(op="HistoryPage")] == [40]


def test_a_sync_of_an_unchanged_project_makes_no_history_request(server):
    server.add_run("proj", FakeRun("a", state="finished", history=training_rows(50), exported_rows=50))
    server.add_run("proj", FakeRun("b", state="running", history=training_rows(30)))
    server.add_run("proj", FakeRun("empty", state="running"))
    src = WandbApiRunSource("ent/proj", per_page=2)
    stored = {ref.run_id: src.read(ref, None).meta.last_step for ref in src.runs()}
    assert stored == {"a": 49, "b": 29, "empty": None}

    server.reset_log()
    reads = [src.read(ref, stored[ref.run_id]) for ref in src.runs()]

    assert all(r.history.num_rows == 0 and r.other.num_rows == 0 for r in reads)
    ops = server.graphql_ops()
    assert not HISTORY_OPS & set(ops) and not server.requests(path="/parquet")
    assert Counter(ops) == Counter({"Viewer": 1, "Runs": 2})
    print(f"\nunchanged-project sync of 3 runs (per_page=2): {len(ops)} GraphQL requests: {ops}")


def test_a_run_named_without_a_listing_is_read_by_path(server):
    rows = training_rows(20)
    server.add_run("proj", FakeRun("solo", state="running", history=rows))

    read = WandbApiRunSource("ent/proj").read(RunRef("solo", "ent/proj/solo"), 9)

    assert actual_long(read) == expected_long(rows, after=9)
    assert server.requests(op="Run") and not server.requests(op="Runs")


def test_the_export_and_row_converters_agree_on_every_kind_of_value():
    rows = [
        {
            "_step": 0,
            "_timestamp": 1.5,
            "_runtime": 0.1,
            "a": {"b": 1, "c": {"d": 2.5}},
            "img": {"_type": "image-file", "path": "x.png"},
            "s": "t",
            "flag": True,
            "l": [1, 2],
            "n": math.nan,
        },
        {
            "_step": 1,
            "_timestamp": 2.5,
            "_runtime": 1.1,
            "a": {"b": None, "c": {"d": -math.inf}},
            "img": None,
            "s": None,
            "flag": False,
            "l": None,
            "n": 1,
        },
    ]
    wide = pa.Table.from_pylist(rows)  # nested dicts become struct columns, as in a parquet file

    from_export = history_to_long(wide, "r")
    from_rows = rows_to_long(iter(rows), "r")

    def facts(tables):
        numeric, other = tables
        return (
            sorted((r["step"], r["key"], str(r["value"])) for r in numeric.to_pylist()),
            sorted((r["step"], r["key"], r["value_json"]) for r in other.to_pylist()),
        )

    assert (
        facts(from_export)
        == facts(from_rows)
        == (
            [(0, "a.b", "1.0"), (0, "a.c.d", "2.5"), (0, "n", "nan"), (1, "a.c.d", "-inf"), (1, "n", "1.0")],
            [
                (0, "flag", "true"),
                (0, "img", '{"_type": "image-file", "path": "x.png"}'),
                (0, "l", "[1, 2]"),
                (0, "s", '"t"'),
                (1, "flag", "false"),
            ],
        )
    )


# --- failures -----------------------------------------------------------------------


def test_rate_limited_requests_are_retried_then_succeed(server):
    server.add_run("proj", FakeRun("a"))
    server.inject("status", 2, status=429, retry_after=1, match=lambda r: r.op == "Runs")

    refs = list(WandbApiRunSource("ent/proj").runs())

    assert [r.run_id for r in refs] == ["a"]
    assert [r.status for r in server.requests(op="Runs")] == [429, 429, 200]


def test_dropped_connections_are_retried_then_succeed(server):
    server.add_run("proj", FakeRun("a", state="running", history=training_rows(10)))
    server.inject("drop", 1, match=lambda r: r.op == "HistoryPage")
    src = WandbApiRunSource("ent/proj")

    read = src.read(next(src.runs()), None)

    assert actual_long(read) == expected_long(server.run("proj", "a").history)


def test_a_server_that_keeps_failing_raises_source_error_within_a_bounded_time(server):
    server.add_run("proj", FakeRun("a"))
    server.inject("status", 1000, status=503, match=lambda r: r.path == "/graphql")

    started = time.monotonic()
    with pytest.raises(SourceError) as err:
        list(WandbApiRunSource("ent/proj", retries=1).runs())
    elapsed = time.monotonic() - started

    message = str(err.value)
    assert elapsed < 15
    assert "\n" not in message and "ent/proj" in message and "503" in message
    assert len(server.requests(path="/graphql")) == 2  # one try plus one retry


def test_history_requests_that_keep_failing_name_the_run(server):
    server.add_run("proj", FakeRun("a", state="running", history=training_rows(10)))
    src = WandbApiRunSource("ent/proj", retries=1)
    (ref,) = list(src.runs())
    server.inject("status", 1000, status=500, match=lambda r: r.op == "HistoryPage")

    with pytest.raises(SourceError, match=r"ent/proj/a.*HTTP 500"):
        src.read(ref, None)


def test_answers_that_stay_malformed_are_retried_then_a_source_error_on_one_line(server):
    server.add_run("proj", FakeRun("a"))
    server.inject("malformed", 1000, match=lambda r: r.op == "Runs")

    with pytest.raises(SourceError) as err:
        list(WandbApiRunSource("ent/proj", retries=1).runs())

    assert "\n" not in str(err.value) and "listing runs of ent/proj" in str(err.value)
    assert [r.status for r in server.requests(op="Runs")] == [200, 200]  # one try plus one retry


def test_a_bad_api_key_gives_one_clear_line_without_the_key(server, monkeypatch):
    bad = "local-" + "b" * 40
    monkeypatch.setenv("WANDB_API_KEY", bad)

    with pytest.raises(SourceError) as err:
        list(WandbApiRunSource("ent/proj").runs())

    message = str(err.value)
    assert bad not in message and "b" * 40 not in message
    assert "\n" not in message
    assert "rejected WANDB_API_KEY" in message and "ent/proj" in message and "401" in message


def test_wandb_core_logs_into_a_private_folder_that_close_deletes(server, monkeypatch, tmp_path):
    import tempfile

    import wandb

    wandb.teardown()  # a wandb-core left running by an earlier test would be reused
    user_cache = tmp_path / "user-cache"
    monkeypatch.setenv("WANDB_CACHE_DIR", str(user_cache))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    server.add_run("proj", FakeRun("a", state="running", history=training_rows(5)))
    server.inject("status", 1, status=503, match=lambda r: r.op == "Runs")  # a retried response gets logged
    src = WandbApiRunSource("ent/proj")

    (ref,) = list(src.runs())
    assert src.read(ref, None).history.num_rows > 0  # listed runs stay readable until close()
    (private,) = (tmp_path / "tmp").glob("grpo-wandb-core-*")
    logs = list(private.glob("wandb/logs/core-debug-*.log"))
    assert private.stat().st_mode & 0o077 == 0 and logs and "503" in logs[0].read_text()
    assert not list(user_cache.rglob("core-debug-*.log"))
    assert os.environ["WANDB_CACHE_DIR"] == str(user_cache)

    src.close()

    assert not private.exists()
    assert [r.run_id for r in WandbApiRunSource("ent/proj").runs()] == ["a"]  # the next sync starts a new one


def test_a_wandb_core_stopped_by_someone_else_leaves_no_folder_behind(server, monkeypatch, tmp_path):
    """wandb.teardown() outside our sources stops wandb-core; the next sync starts one in a new folder."""
    import tempfile

    import wandb

    wandb.teardown()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    server.add_run("proj", FakeRun("a", state="running", history=training_rows(5)))
    src = WandbApiRunSource("ent/proj")
    assert [r.run_id for r in src.runs()] == ["a"]
    (first,) = (tmp_path / "tmp").glob("grpo-wandb-core-*")

    wandb.teardown()  # e.g. a notebook that also uses wandb
    again = WandbApiRunSource("ent/proj")
    assert [r.run_id for r in again.runs()] == ["a"]

    assert not first.exists()
    (second,) = (tmp_path / "tmp").glob("grpo-wandb-core-*")
    again.close()
    assert not second.exists()


def test_a_missing_api_key_is_a_source_error_not_a_login_prompt(server, monkeypatch):
    monkeypatch.delenv("WANDB_API_KEY")

    with pytest.raises(SourceError, match="WANDB_API_KEY is not set"):
        list(WandbApiRunSource("ent/proj").runs())
    assert not server.log


@pytest.mark.parametrize("project", ["ent/nope", "other/proj"])
def test_an_unknown_project_or_entity_is_a_source_error(server, project):
    server.add_run("proj", FakeRun("a"))

    with pytest.raises(SourceError) as err:
        list(WandbApiRunSource(project).runs())

    assert f"project {project} not found" in str(err.value)


# --- throughput ---------------------------------------------------------------------


def test_sync_throughput_against_the_loopback_server(server, record_property):
    """Not a benchmark gate: measures points/s of both history paths and prints them."""
    server.row_group_size = 5_000
    exported = make_rows(20_000, nan_every=10)
    server.add_run("proj", FakeRun("exported", state="finished", history=exported, exported_rows=20_000))
    server.add_run("proj", FakeRun("live", state="running", history=make_rows(5_000, nan_every=10)))
    server.export_bytes("proj", "exported", 20_000)  # build the export before timing
    src = WandbApiRunSource("ent/proj")
    results = {}
    for ref in src.runs():
        started = time.perf_counter()
        read = src.read(ref, None)
        elapsed = time.perf_counter() - started
        points = read.history.num_rows + read.other.num_rows
        results[ref.run_id] = (points, elapsed)
        record_property(f"{ref.run_id}_points_per_s", round(points / elapsed))
    for name, (points, elapsed) in results.items():
        print(f"\n{name}: {points:,} points in {elapsed:.2f}s = {points / elapsed:,.0f} points/s")
    assert results["exported"][0] == results["live"][0] * 4 == 20_000 * 6  # 5 numeric keys + 1 text key per row


def test_the_export_file_the_fake_serves_is_real_parquet(server):
    server.add_run("proj", FakeRun("x", history=training_rows(30), exported_rows=30))
    import io

    table = pq.read_table(io.BytesIO(server.export_bytes("proj", "x", 30)))
    assert table.num_rows == 30 and "optim.lr" in table.column_names
