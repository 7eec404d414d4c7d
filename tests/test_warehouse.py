"""The raw layer: atomic files, commit records, orphan cleanup, the write lock."""

import json
import multiprocessing as mp

import duckdb
import pyarrow as pa
import pytest

from pipelines.raw.layer import Warehouse
from pipelines.raw.schemas import EVENTS, HISTORY, SCHEMAS
from pipelines.raw.write_lock import WarehouseBusyError


def _history(n: int, run_id: str = "r1") -> pa.Table:
    return pa.table(
        {
            "run_id": [run_id] * n,
            "step": list(range(n)),
            "wall_time": pa.array([None] * n, pa.timestamp("us", tz="UTC")),
            "key": ["train/kl"] * n,
            "value": [float(i) for i in range(n)],
        }
    )


def _count(wh: Warehouse, table: str) -> int:
    return duckdb.sql(f"select count(*) from read_parquet('{wh.table_glob(table)}')").fetchall()[0][0]


def test_an_empty_warehouse_reads_as_empty_typed_tables(tmp_path):
    wh = Warehouse(tmp_path).ensure()
    for table, schema in SCHEMAS.items():
        rel = duckdb.sql(f"select * from read_parquet('{wh.table_glob(table)}')")
        assert rel.columns == schema.names
        assert _count(wh, table) == 0


def test_rows_of_an_uncommitted_batch_are_removed_by_the_next_cleanup(tmp_path):
    wh = Warehouse(tmp_path).ensure()
    committed = wh.batch()
    committed.write(HISTORY, _history(5))
    committed.commit()
    crashed = wh.batch()  # never commits: like a process killed mid-ingest
    crashed.write(HISTORY, _history(7, "r2"))
    assert _count(wh, HISTORY) == 12
    removed = wh.clean_orphans()
    assert len(removed) == 1
    assert _count(wh, HISTORY) == 5


def test_a_batch_that_raises_leaves_no_files_behind(tmp_path):
    wh = Warehouse(tmp_path).ensure()
    with pytest.raises(RuntimeError), wh.batch() as b:
        b.write(HISTORY, _history(3))
        raise RuntimeError("source died")
    assert _count(wh, HISTORY) == 0


def test_state_folds_commit_records_in_order(tmp_path):
    wh = Warehouse(tmp_path).ensure()
    for last in (10, 25):
        b = wh.batch()
        b.record_run("r1", last, f"fp{last}")
        b.record_event_source("/x.ndjson", {"lines": last})
        b.commit()
    state = wh.state()
    assert state.runs["r1"].last_step == 25
    assert state.runs["r1"].fingerprint == "fp25"
    assert state.event_sources["/x.ndjson"] == {"lines": 25}
    record = json.loads(next(wh.batches_dir.glob("*.json")).read_text())
    assert set(record) >= {"batch_id", "files", "rows", "wandb_runs", "event_sources"}


def test_no_temporary_file_is_left_where_readers_look(tmp_path):
    wh = Warehouse(tmp_path).ensure()
    b = wh.batch()
    b.write(
        EVENTS,
        pa.table(
            {
                "time": pa.array([None], pa.timestamp("us", tz="UTC")),
                "record": ["{}"],
                "source": ["s"],
                "line": [1],
                "event_key": ["k"],
            }
        ),
    )
    b.commit()
    names = [p.name for p in wh.table_dir(EVENTS).iterdir()]
    assert all(n.endswith(".parquet") and not n.startswith(".") for n in names)


def _hold_lock(root, ready, release):
    wh = Warehouse(root)
    with wh.lock(purpose="test holder"):
        ready.set()
        release.wait(10)


def test_a_second_writer_is_refused_clearly_while_the_first_holds_the_lock(tmp_path):
    ctx = mp.get_context("spawn")
    ready, release = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=_hold_lock, args=(str(tmp_path), ready, release))
    holder.start()
    try:
        assert ready.wait(20)
        with (
            pytest.raises(WarehouseBusyError, match=r"test holder \(pid \d+\)"),
            Warehouse(tmp_path).lock(timeout_s=0.3),
        ):
            pass
    finally:
        release.set()
        holder.join(10)
    with Warehouse(tmp_path).lock(timeout_s=1):
        pass  # free again once the holder is gone
