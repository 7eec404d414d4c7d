"""Run files read by worker processes are stored exactly as reading them one after the other stores them.

Every test ingests the same real `.wandb` files (the demo league, logged by the
wandb library) with 1 worker (read in the ingesting process) and with 2, and
compares what a user can see: the raw tables row for row, the warnings, what
the ingest reports, and what the next incremental ingest does.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from pipelines.demo.build import generate_demo
from pipelines.ingest.ingest_sources import ingest
from pipelines.ingest.report import IngestReport
from pipelines.ingest.worker_pool import WORKERS_ENV, ingest_workers
from pipelines.raw.layer import Warehouse
from pipelines.raw.schemas import HISTORY, HISTORY_OTHER, RESTATED, RUNS, SCHEMAS
from pipelines.sources.wandb_local import LocalRunSource
from pipelines.sources.wandb_segment_reader import read_run_file
from tests.clock import DEMO_END

PROJECT_ROOT = Path(__file__).resolve().parent.parent
RAW_TABLES = (RUNS, HISTORY, HISTORY_OTHER)
VOLATILE = {"batch_id", "ingested_at"}  # differ between any two ingests


@pytest.fixture(scope="module")
def demo_runs(tmp_path_factory) -> list[Path]:
    out = tmp_path_factory.mktemp("parallel_demo")
    generate_demo(out, steps=200, now=DEMO_END)
    runs = sorted((out / "wandb").glob("*run-*/run-*.wandb"))
    assert len(runs) >= 5
    return runs


def _copy_runs(runs: list[Path], dest: Path) -> Path:
    """The run files under dest/wandb/<run folder>/, as wandb lays them out."""
    for src in runs:
        target = dest / "wandb" / src.parent.name / src.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, target)
    return dest / "wandb"


def _damaged_folder(runs: list[Path], dest: Path) -> tuple[Path, dict[str, str]]:
    """Good runs plus, in between, a file that is not a W&B log, one with a flipped byte, one cut in half."""
    wandb_dir = _copy_runs(runs, dest)
    files = sorted(wandb_dir.glob("*/run-*.wandb"))
    not_a_log, flipped, cut = files[1], files[2], files[4]
    not_a_log.write_bytes(b"this is not a W&B log" * 100)
    data = bytearray(flipped.read_bytes())
    data[len(data) // 2] ^= 0xFF
    flipped.write_bytes(bytes(data))
    cut.write_bytes(cut.read_bytes()[: cut.stat().st_size // 2])
    return wandb_dir, {"not_a_log": str(not_a_log), "flipped": str(flipped), "cut": str(cut)}


def _ingest(root: Path, wandb_dir: Path, workers: int) -> IngestReport:
    return ingest(Warehouse(root), [LocalRunSource([wandb_dir])], [], workers=workers)


def _table(root: Path, table: str):
    """The committed rows of a raw table, without the columns that differ between any two ingests."""
    cols = ", ".join(f'"{c}"' for c in SCHEMAS[table].names if c not in VOLATILE)
    files = [str(f) for f in Warehouse(root).committed_files(table)]
    return duckdb.connect().sql(f"select {cols} from read_parquet($files)", params={"files": files}).to_arrow_table()


def _effective_history(root: Path):
    """The stored history less the rows of steps a later batch restated (what stg_wandb__history shows)."""
    cols = ", ".join(f'h."{c}"' for c in SCHEMAS[HISTORY].names if c not in VOLATILE)
    wh = Warehouse(root)
    files = {t: [str(f) for f in wh.committed_files(t)] for t in (HISTORY, RESTATED)}
    con = duckdb.connect()
    if not files[RESTATED]:
        return _table(root, HISTORY)
    return con.sql(
        f"select {cols} from read_parquet($h) h where not exists (select 1 from read_parquet($r) r "
        "where r.run_id = h.run_id and r.step = h.step and r.batch_id > h.batch_id)",
        params={"h": files[HISTORY], "r": files[RESTATED]},
    ).to_arrow_table()


def _rows(root: Path, table: str) -> list[tuple]:
    return [tuple(r.values()) for r in _table(root, table).to_pylist()]


def _differences(root: Path, ref: Path) -> dict[str, tuple[int, int]]:
    """Per raw table, (rows only in root, rows only in ref) as multisets; empty when equal."""
    out = {}
    for table in RAW_TABLES:
        only = _multiset_difference(_table(root, table), _table(ref, table))
        if only != (0, 0):
            out[table] = only
    return out


def _multiset_difference(a, b) -> tuple[int, int]:
    """(rows only in a, rows only in b), counting duplicates; NaN equals NaN as in DuckDB's set operations."""
    con = duckdb.connect()
    con.register("a", a)
    con.register("b", b)
    return con.execute(
        "select (select count(*) from (select * from a except all select * from b)),"
        " (select count(*) from (select * from b except all select * from a))"
    ).fetchall()[0]


def _counts(report: IngestReport) -> dict:
    d = report.as_dict()
    for volatile in ("batch_id", "wandb_seconds", "events_seconds"):
        d.pop(volatile)
    return d


def _run_states(root: Path) -> dict:
    return Warehouse(root).state().runs


def test_two_workers_store_the_same_rows_warnings_and_run_states_as_one(demo_runs, tmp_path):
    wandb_dir, _ = _damaged_folder(demo_runs, tmp_path / "src")
    one = _ingest(tmp_path / "one", wandb_dir, workers=1)
    two = _ingest(tmp_path / "two", wandb_dir, workers=2)

    assert _differences(tmp_path / "two", tmp_path / "one") == {}
    assert _counts(two) == _counts(one)  # warnings included, in the same order
    assert _run_states(tmp_path / "two") == _run_states(tmp_path / "one")
    assert two.new_history_rows > 0


def test_the_stored_history_is_every_point_each_file_holds(demo_runs, tmp_path):
    wandb_dir = _copy_runs(demo_runs, tmp_path / "src")
    _ingest(tmp_path / "wh", wandb_dir, workers=2)
    expected = pa.concat_tables(read_run_file(p).history for p in sorted(wandb_dir.glob("*/run-*.wandb")))
    stored = _table(tmp_path / "wh", HISTORY)
    assert stored.num_rows == expected.num_rows
    assert _multiset_difference(stored, expected) == (0, 0)


def test_a_damaged_file_among_good_ones_is_skipped_with_a_warning_and_the_others_are_stored(demo_runs, tmp_path):
    wandb_dir, names = _damaged_folder(demo_runs, tmp_path / "src")
    report = _ingest(tmp_path / "wh", wandb_dir, workers=2)

    skipped = [w for w in report.warnings if ": skipped, " in w]
    assert len(skipped) == 1 and names["not_a_log"] in skipped[0] and "WandbFileError" in skipped[0]
    assert any(names["flipped"] in w and "bad checksum" in w for w in report.warnings)
    stored_runs = {r[0] for r in _rows(tmp_path / "wh", RUNS)}
    # by path: every segment of a resumed run has the same file name
    readable = [p for p in sorted(wandb_dir.glob("*/run-*.wandb")) if str(p) != names["not_a_log"]]
    assert stored_runs == {read_run_file(p).meta.run_id for p in readable}
    # a resumed run's segments are one run: count run ids, not files
    readable_runs = {p.stem.removeprefix("run-") for p in readable}
    assert report.runs_seen == len(readable_runs)
    assert len({r[0] for r in _rows(tmp_path / "wh", HISTORY)}) == len(readable_runs)


class _Unrebuildable(Exception):
    """Its message is built from two arguments: unpickling calls it with one, so it cannot cross processes as is."""

    def __init__(self, what: str, where: str) -> None:
        super().__init__(f"{what} in {where}")


def _read_or_fail(path: Path, after_step: int | None, fail_name: str):
    if path.name == fail_name:
        raise _Unrebuildable("an odd failure", path.name)
    return read_run_file(path, after_step)


class _FailingSource(LocalRunSource):
    """Local runs, one of which fails to read with an exception that does not survive pickling."""

    def __init__(self, dirs: list[Path], fail_name: str) -> None:
        super().__init__(dirs)
        self.fail_name = fail_name

    def read_task(self, ref, after_step, stored_token=None):
        return _read_or_fail, (ref.handle.path, after_step, self.fail_name)


def test_any_exception_a_worker_meets_is_the_same_warning_as_in_process_and_the_others_are_stored(demo_runs, tmp_path):
    wandb_dir = _copy_runs(demo_runs, tmp_path / "src")
    fail_name = sorted(wandb_dir.glob("*/run-*.wandb"))[2].name
    reports = {
        n: ingest(Warehouse(tmp_path / f"wh{n}"), [_FailingSource([wandb_dir], fail_name)], [], workers=n)
        for n in (1, 2)
    }
    assert reports[2].warnings == reports[1].warnings
    assert len(reports[2].warnings) == 1
    assert f"skipped, _Unrebuildable: an odd failure in {fail_name}" in reports[2].warnings[0]
    assert reports[2].new_runs == len({p.stem for p in demo_runs}) - 1  # run ids: a resumed run's segments are one
    assert _differences(tmp_path / "wh2", tmp_path / "wh1") == {}


def test_an_incremental_reingest_with_two_workers_adds_nothing_and_touched_files_add_no_rows(demo_runs, tmp_path):
    wandb_dir = _copy_runs(demo_runs, tmp_path / "src")
    root = tmp_path / "wh"
    first = _ingest(root, wandb_dir, workers=2)
    assert first.new_runs == len({p.stem for p in demo_runs})
    before = {t: _table(root, t) for t in RAW_TABLES}

    again = _ingest(root, wandb_dir, workers=2)
    assert (again.batch_id, again.new_history_rows, again.new_runs, again.updated_runs) == (None, 0, 0, 0)
    assert again.runs_seen == len({p.stem for p in demo_runs})

    # Touched files (new mtime, same content) are read again, from their last stored step on.
    later = time.time() + 60
    for path in wandb_dir.glob("*/run-*.wandb"):
        os.utime(path, (later, later))
    touched = _ingest(root, wandb_dir, workers=2)
    assert (touched.new_history_rows, touched.new_history_other_rows, touched.new_runs, touched.updated_runs) == (
        0,
        0,
        0,
        0,
    )
    assert touched.warnings == []
    for table in RAW_TABLES:
        after = _table(root, table)
        assert after.num_rows == before[table].num_rows
        assert _multiset_difference(after, before[table]) == (0, 0)


def test_a_run_that_grew_gets_only_its_new_steps_the_same_with_one_or_two_workers(demo_runs, tmp_path):
    folder = tmp_path / "src"  # the same paths for both warehouses: a run's source path is stored

    def runs_in_progress() -> tuple[Path, int]:
        """Every other run has written half its log so far."""
        shutil.rmtree(folder, ignore_errors=True)
        wandb_dir = _copy_runs(demo_runs, folder)
        cut = sorted(wandb_dir.glob("*/run-*.wandb"))[::2]
        for path in cut:
            path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
        return wandb_dir, len({p.stem for p in cut})  # runs, not files: a resumed run's segments are one run

    for workers in (1, 2):
        wandb_dir, n_cut = runs_in_progress()
        _ingest(tmp_path / f"wh{workers}", wandb_dir, workers=workers)
        _copy_runs(demo_runs, folder)  # the runs finished
        grown = _ingest(tmp_path / f"wh{workers}", wandb_dir, workers=workers)
        assert grown.new_history_rows > 0 and grown.updated_runs == n_cut
    assert _differences(tmp_path / "wh2", tmp_path / "wh1") == {}
    # Nothing stored twice, nothing missing: the history equals one ingest of the finished runs. (An older
    # segment of the resumed run that grew after a newer one was stored is read whole again: its rows are
    # restated, and the history a reader sees, less the restated rows' older copies, is the same.)
    _ingest(tmp_path / "once", _copy_runs(demo_runs, tmp_path / "finished"), workers=1)
    stored, once = _effective_history(tmp_path / "wh2"), _table(tmp_path / "once", HISTORY)
    assert stored.num_rows == once.num_rows
    assert _multiset_difference(stored, once) == (0, 0)


def test_the_worker_count_comes_from_the_environment_and_nonsense_is_refused(monkeypatch):
    monkeypatch.delenv(WORKERS_ENV, raising=False)
    assert ingest_workers() == 2
    monkeypatch.setenv(WORKERS_ENV, "1")
    assert ingest_workers() == 1
    assert ingest_workers(3) == 3  # an explicit argument wins
    for bad in ("0", "-2", "two"):
        monkeypatch.setenv(WORKERS_ENV, bad)
        with pytest.raises(ValueError, match="1"):
            ingest_workers()


SLOW_INGEST = r"""
import sys, time
from pipelines.ingest.ingest_sources import ingest
from pipelines.sources.wandb_local import LocalRunSource
from pipelines.sources.wandb_segment_reader import read_run_file
from pipelines.raw.layer import Warehouse


def slow_read(path, after_step):
    time.sleep(0.4)  # long enough for the test to see the workers and kill the ingest mid-read
    return read_run_file(path, after_step)


class SlowSource(LocalRunSource):
    def read_task(self, ref, after_step, stored_token=None):
        return slow_read, (ref.handle.path, after_step)


ingest(Warehouse(sys.argv[1]), [SlowSource([sys.argv[2]])], [], workers=2)
"""


def _children(pid: int) -> list[int]:
    kids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            kids.append(int(stat.parent.name))
    return kids


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie has exited and only waits to be reaped


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_sigkilled_ingest_leaves_no_worker_running_and_its_rerun_stores_every_row_once(demo_runs, tmp_path):
    wandb_dir = _copy_runs(demo_runs, tmp_path / "src")
    root = tmp_path / "wh"
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", SLOW_INGEST, str(root), str(wandb_dir)], env=env)
    workers: list[int] = []
    try:
        deadline = time.monotonic() + 60
        while len(workers) < 2 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
            workers = [p for p in _children(proc.pid) if _alive(p)]
        assert len(workers) >= 2, "the ingest never started its workers"
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        gone_by = time.monotonic() + 10
        while any(_alive(p) for p in workers) and time.monotonic() < gone_by:
            time.sleep(0.05)
        assert not any(_alive(p) for p in workers), "a worker outlived the killed ingest"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pid in workers:  # if the test failed: leave nothing running (and only our own workers)
            with contextlib.suppress(OSError):
                if _alive(pid) and b"SlowSource" in Path(f"/proc/{pid}/cmdline").read_bytes():
                    os.kill(pid, signal.SIGKILL)
    # Nothing was committed; the next ingest cleans up and stores each row once.
    assert Warehouse(root).committed_batches() == []
    _ingest(root, wandb_dir, workers=2)
    _ingest(tmp_path / "ref", wandb_dir, workers=1)
    assert _differences(root, tmp_path / "ref") == {}
