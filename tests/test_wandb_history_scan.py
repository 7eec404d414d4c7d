"""Live history rows as wandb-core hands them over (each value a JSON text) into the long tables:
the same tables `rows_to_long` makes from the rows as dicts, one row per step, the later winning;
and runs read by several threads come back in the source's order with the same history."""

from __future__ import annotations

import json
import math

import pytest
from fakes.wandb_server import FakeRun, FakeWandbServer, make_rows, numeric_points

from bench import crash
from pipelines.ingest.ingest_sources import ingest
from pipelines.raw.layer import Warehouse
from pipelines.raw.readers import totals
from pipelines.sources.wandb_api import WandbApiRunSource
from pipelines.sources.wandb_api_conversion import rows_to_long
from pipelines.sources.wandb_history_scan import _parse_all, _rows_long

KEY = "local-" + "k" * 40


def wire(rows):
    """Each row as (keys, JSON texts), as wandb-core's HistoryRow items carry it."""
    return [(list(r), [json.dumps(v) for v in r.values()]) for r in rows]


def rows_of(table):
    """The table's rows in order, NaN as a token (NaN equals nothing, not even itself)."""
    return [{**r, "value": "NaN" if r["value"] != r["value"] else r["value"]} for r in table.to_pylist()]


def test_rows_from_json_texts_equal_rows_to_long_on_every_kind_of_value():
    rows = make_rows(50, nan_every=7, sparse_every=5)
    rows[3]["img"] = {"_type": "image-file", "path": "x.png"}
    rows[4]["deep"] = {"a": {"b": None, "c": {"d": -math.inf}}, "e": {}}
    rows[5]["flag"], rows[6]["l"], rows[7]["s"] = True, [1, "a"], 'say "ünï"'
    rows.append({**rows[10], "train/loss": 99.0})  # step 10 read again (export and live): the later row wins
    rows.append({"_timestamp": 1.0, "orphan": 1})  # no step: dropped
    keys_of, texts = zip(*wire(rows), strict=True)

    got = _rows_long(list(keys_of), _parse_all([t for ts in texts for t in ts]), "r")

    by_step = {r["_step"]: r for r in rows if "_step" in r}
    want = rows_to_long(iter([by_step[k] for k in sorted(by_step)]), "r")
    assert rows_of(got[0]) == rows_of(want[0]) and got[1].equals(want[1]) and got[0].schema == want[0].schema
    loss_at_10 = [r["value"] for r in got[0].to_pylist() if r["step"] == 10 and r["key"] == "train/loss"]
    assert loss_at_10 == [99.0] and len({r["step"] for r in got[0].to_pylist()}) == 50


def test_texts_are_parsed_as_one_list_only_when_they_are_items_one_by_one():
    assert _parse_all(["1", '"a,b"', "[1, 2]", "null"]) == [1, "a,b", [1, 2], None]
    assert math.isnan(_parse_all(["NaN"])[0])
    with pytest.raises(ValueError):
        _parse_all(["1,2"])  # one list item together, but not one JSON value by itself


@pytest.fixture
def server(monkeypatch, tmp_path):
    srv = FakeWandbServer(api_key=KEY, entity="ent").start()
    monkeypatch.setenv("WANDB_BASE_URL", srv.url)
    monkeypatch.setenv("WANDB_API_KEY", KEY)
    monkeypatch.setenv("WANDB_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("WANDB_ENTITY", raising=False)
    monkeypatch.delenv("WANDB_PROJECT", raising=False)
    yield srv
    srv.stop()


def test_runs_read_by_threads_store_what_one_at_a_time_stores(server, tmp_path):
    for i in range(6):
        server.add_run("p", FakeRun(f"run{i}", state="running", history=make_rows(30 + 17 * i, nan_every=4)))

    roots = {threads: tmp_path / f"threads{threads}" for threads in (1, 4)}
    reports = {
        threads: ingest(Warehouse(root), [WandbApiRunSource("ent/p", read_threads=threads, page_size=25)], [])
        for threads, root in roots.items()
    }

    assert crash.raw_differences(roots[4], roots[1]) == []
    rows = [r for i in range(6) for r in server.run("p", f"run{i}").history]
    assert totals(Warehouse(roots[4]))["history_rows"] == numeric_points(rows)
    assert reports[4].new_runs == reports[1].new_runs == 6
