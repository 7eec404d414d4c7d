"""The grain data tests catch a repeated key, on a full build and on rows added since.

`unique_grain_since` (macros/grain_tests.sql) groups 64-bit hashes of the key on a full
build and counts the keys behind a repeated hash exactly; here raw batches are written as
the ingest layer writes them, one of them repeating a (run, step, metric) that an earlier
batch stored, and the real `dbt test` must fail naming that key, while the same data
without the repeat passes.
"""

from __future__ import annotations

import datetime as dt
import subprocess

import duckdb
import pytest

from pipelines.raw.layer import Warehouse
from tests.dbt_harness import DBT, dbt_command, write_raw

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
GRAIN_TEST = "unique_grain_since_stg_wandb__history_run_id__step__metric_key"


def history(run_id: str, steps: range, keys=("train/loss", "train/kl")) -> list[dict]:
    return [
        {"run_id": run_id, "step": s, "wall_time": T0 + dt.timedelta(seconds=s), "key": k, "value": s * 0.5 + i}
        for s in steps
        for i, k in enumerate(keys)
    ]


def grain_test(wh: Warehouse, *args: str) -> subprocess.CompletedProcess:
    """`dbt test` of the history grain only; returns the process whether it passed or not."""
    dbt_command(wh, "run", "--select", "stg_wandb__history")
    try:
        return dbt_command(wh, "test", "--select", GRAIN_TEST, *args)
    except AssertionError as failed:  # dbt_command raises on a failing test: keep its output
        return subprocess.CompletedProcess([DBT], 1, stdout=str(failed), stderr="")


def offending_keys(wh: Warehouse) -> list[tuple]:
    """The rows the grain test returned (what `--store-failures` keeps): run, step, key, count."""
    (sql,) = (wh.root / "dbt_target" / "compiled").rglob(f"{GRAIN_TEST}.sql")
    con = duckdb.connect(str(wh.build_db), read_only=True)
    try:
        return sorted(con.execute(sql.read_text()).fetchall())
    finally:
        con.close()


def batches(wh: Warehouse) -> list[str]:
    return [r["batch_id"] for r in wh.committed_batches()]


@pytest.fixture
def wh(tmp_path):
    return Warehouse(tmp_path / "wh").ensure()


def test_unique_keys_pass_on_a_full_build(wh):
    write_raw(wh, {"wandb_history": history("r1", range(0, 200)) + history("r2", range(0, 50))})
    write_raw(wh, {"wandb_history": history("r1", range(200, 300))})

    proc = grain_test(wh)

    assert proc.returncode == 0, proc.stdout[-3000:]
    assert offending_keys(wh) == []


def test_a_key_stored_twice_fails_a_full_build_naming_it(wh):
    write_raw(wh, {"wandb_history": history("r1", range(0, 200)) + history("r2", range(0, 50))})
    # a later batch repeats r2's step 17 of train/kl (e.g. a broken incremental read)
    write_raw(wh, {"wandb_history": history("r1", range(200, 210)) + history("r2", range(17, 18), keys=("train/kl",))})

    proc = grain_test(wh)

    assert proc.returncode == 1, proc.stdout[-3000:]
    assert offending_keys(wh) == [("r2", 17, "train/kl", 2)]


def test_a_new_row_repeating_an_old_key_fails_the_since_test(wh):
    write_raw(wh, {"wandb_history": history("r1", range(0, 100))})
    write_raw(wh, {"wandb_history": history("r1", range(100, 120))})
    since = batches(wh)[-1]
    assert grain_test(wh, "--vars", f"{{tests_since_batch: '{since}'}}").returncode == 0

    write_raw(wh, {"wandb_history": history("r1", range(120, 130)) + history("r1", range(5, 7))})

    proc = grain_test(wh, "--vars", f"{{tests_since_batch: '{since}'}}")
    assert proc.returncode == 1, proc.stdout[-3000:]
    assert offending_keys(wh) == [("r1", s, k, 2) for s in (5, 6) for k in ("train/kl", "train/loss")]
