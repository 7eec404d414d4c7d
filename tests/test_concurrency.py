"""Concurrency: readers during rebuilds never fail nor see a mix of two builds; two ingests at once serialize.

Readers are separate processes: `grpo` query commands and an "external tool"
(`duckdb.connect(grpo.duckdb, read_only=True)` in a `python -c` loop). The
consistency probe reads, in one query of one connection, the snapshot's
`published_at` with counts that every build keeps equal (runs in dim_runs and
in fct_learning_verdicts; rows of a table and its `_tables` catalog entry). A
torn read shows as counts that disagree, or as one `published_at` seen with two
different sets of counts or two different answers.

Helpers (staged inputs, raw-table comparison) come from bench/crash.py.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

import duckdb
import pytest

from bench import crash
from pipelines.ingest.ingest_sources import ingest
from pipelines.publish import publish
from pipelines.raw.layer import Warehouse
from pipelines.raw.write_lock import WarehouseBusyError
from pipelines.sources.ndjson import NdjsonEventSource
from pipelines.sources.wandb_local import LocalRunSource
from tests.clock import DEMO_END

EVENT_LINES = 3000
PROJECT_ROOT = Path(__file__).resolve().parent.parent

# One query, one connection: what a reader sees of one snapshot.
PROBE = (
    "select (select published_at from _snapshot)::varchar as published_at,"
    " (select count(*) from dim_runs) as runs,"
    " (select count(*) from fct_learning_verdicts) as verdicts,"
    " (select row_count from _tables where table_name = 'dim_runs') as runs_in_catalog"
)
EXTERNAL_READER = r"""
import json, os, sys, time
import duckdb
db, out, stop, probe, pause = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], float(sys.argv[5])
with open(out, "a", encoding="utf-8") as fh:
    while not os.path.exists(stop):
        try:
            con = duckdb.connect(db, read_only=True)
            try:
                row = con.execute(probe).fetchall()[0]
            finally:
                con.close()
            fh.write(json.dumps({"ok": True, "row": [str(v) if v is not None else None for v in row]}) + "\n")
        except Exception as exc:
            fh.write(json.dumps({"ok": False, "error": f"{type(exc).__name__}: {exc}"}) + "\n")
        fh.flush()
        time.sleep(pause)
"""


class ExternalReader:
    """A separate process reading grpo.duckdb read-only in a loop, one JSON line per read."""

    def __init__(self, db: Path, work: Path, probe: str, pause: float = 0.02) -> None:
        self.out, self.stop_file = work / "external_reads.jsonl", work / "external_reader.stop"
        self.proc = subprocess.Popen(
            [sys.executable, "-c", EXTERNAL_READER, str(db), str(self.out), str(self.stop_file), probe, str(pause)],
            cwd=str(work),
        )

    def stop(self) -> list[dict]:
        self.stop_file.touch()
        self.proc.wait(60)
        if not self.out.exists():
            return []
        return [json.loads(line) for line in self.out.read_text(encoding="utf-8").splitlines() if line.strip()]


class GrpoLoop(threading.Thread):
    """Runs one `grpo` query command again and again in a subprocess until stopped."""

    def __init__(self, env: dict, args: list[str], ok_codes: tuple[int, ...] = (0,), pause: float = 0.1) -> None:
        super().__init__(daemon=True)
        self.env, self.args, self.ok_codes, self.pause = env, args, ok_codes, pause
        self.results: list[tuple[int, object, str]] = []  # (exit code, parsed JSON or None, stderr)
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.is_set():
            proc = subprocess.run(
                [crash.grpo_exe(), *self.args], capture_output=True, text=True, env=self.env, timeout=300
            )
            try:
                parsed = json.loads(proc.stdout)
            except ValueError:
                parsed = None
            self.results.append((proc.returncode, parsed, proc.stderr))
            self.halt.wait(self.pause)

    def failures(self) -> list[str]:
        return [
            f"grpo {' '.join(self.args[:2])}: exit {code}: {err.strip()[-300:]}"
            for code, parsed, err in self.results
            if code not in self.ok_codes or parsed is None
        ]


def _reader_env(root: Path) -> dict:
    env = {**os.environ, "GRPO_WAREHOUSE": str(root), "COLUMNS": "200"}
    env.pop("GRPO_TEST_KILL_AT", None)
    return env


def _probe_problems(rows: list[list], known: dict[str, tuple] | None = None) -> list[str]:
    """Torn reads among probe rows [published_at, runs, verdicts, runs_in_catalog, ...]."""
    problems = []
    by_publish: dict[str, set[tuple]] = defaultdict(set)
    for row in rows:
        published_at, counts = row[0], tuple(str(v) for v in row[1:])
        if len(set(counts[:3])) != 1:
            problems.append(f"counts of one snapshot disagree: {row}")
        by_publish[published_at].add(counts)
        if known is not None and published_at in known and counts != known[published_at]:
            problems.append(f"snapshot {published_at} read as {counts}, published as {known[published_at]}")
        if known is not None and published_at not in known:
            problems.append(f"a snapshot that was never published: {row}")
    problems += [f"snapshot {p} seen with different contents: {sorted(c)}" for p, c in by_publish.items() if len(c) > 1]
    return problems


def _monotonic_problems(published: list[str]) -> list[str]:
    """A reader that saw a newer snapshot must never see an older one again."""
    return [f"went back from {a} to {b}" for a, b in zip(published, published[1:]) if b < a]


@pytest.fixture(scope="module")
def demo_sources(tmp_path_factory) -> Path:
    return crash.generate_sources(tmp_path_factory.mktemp("concurrency_demo"), now=DEMO_END)


# --- publishes swapping the snapshot under readers ---------------------------------------


def test_readers_never_fail_nor_see_a_torn_snapshot_while_publishes_swap_it_over_and_over(tmp_path):
    root = tmp_path / "wh"
    wh = Warehouse(root).ensure()
    probe = PROBE + (
        ", (select count(*) from fct_events_hourly) as hourly,"
        " (select count(distinct generation) from fct_events_hourly) as generations,"
        " (select min(generation) from dim_runs) as generation"
    )
    known: dict[str, tuple] = {}

    def publish_generation(g: int) -> None:
        expected = crash.make_build_db(wh.build_db, g, rows=200_000)
        with wh.lock(timeout_s=30, purpose="publish snapshot"):
            publish(wh)
        con = duckdb.connect(str(wh.snapshot_db), read_only=True)
        published_at = con.execute("select published_at::varchar from _snapshot").fetchall()[0][0]
        con.close()
        n = str(expected["dim_runs"])
        known[published_at] = (n, n, n, str(expected["fct_events_hourly"]), "1", str(g))

    publish_generation(0)
    external = ExternalReader(wh.snapshot_db, tmp_path, probe)
    sql = GrpoLoop(_reader_env(root), ["sql", probe, "--json"], pause=0.05)
    sql.start()
    try:
        time.sleep(1.0)
        for g in range(1, 31):
            publish_generation(g)
            time.sleep(0.1)
    finally:
        sql.halt.set()
        sql.join(120)
        ext = external.stop()
    ext_failures = [r["error"] for r in ext if not r["ok"]]
    ext_rows = [r["row"] for r in ext if r["ok"]]
    sql_rows = [
        [
            str(r[k])
            for k in ("published_at", "runs", "verdicts", "runs_in_catalog", "hourly", "generations", "generation")
        ]
        for _, parsed, _ in sql.results
        if parsed
        for r in parsed
    ]
    failures = ext_failures + sql.failures()
    torn = _probe_problems(ext_rows, known) + _probe_problems(sql_rows, known)
    torn += _monotonic_problems([r[0] for r in ext_rows]) + _monotonic_problems([r[0] for r in sql_rows])
    seen = {r[0] for r in ext_rows + sql_rows}
    print(
        f"\n{len(ext)} external reads, {len(sql.results)} `grpo sql` reads across {len(known)} publishes "
        f"({len(seen)} seen); {len(failures)} failed, {len(torn)} torn"
    )
    assert failures == []
    assert torn == []
    assert len(ext) >= 30 and len(sql.results) >= 5
    assert len(seen) >= 3  # the readers really ran across several swaps


# --- two ingests at once -----------------------------------------------------------------

INGESTER = r"""
import json, os, sys, time
from pipelines.ingest.ingest_sources import ingest
from pipelines.sources.ndjson import NdjsonEventSource
from pipelines.sources.wandb_local import LocalRunSource
from pipelines.raw.layer import Warehouse
from pipelines.raw.write_lock import WarehouseBusyError

root, wandb, events, go, timeout = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], float(sys.argv[5])
wh = Warehouse(root)
open(f"{go}.ready.{os.getpid()}", "w").close()
while not os.path.exists(go):
    time.sleep(0.001)
t0 = time.monotonic()
try:
    r = ingest(wh, [LocalRunSource([wandb])], [NdjsonEventSource([events])], lock_timeout_s=timeout)
except WarehouseBusyError as exc:
    print(json.dumps({"busy": str(exc), "seconds": time.monotonic() - t0}))
    sys.exit(3)
print(json.dumps({"batch_id": r.batch_id, "new_events": r.new_events, "new_history_rows": r.new_history_rows,
                  "new_runs": r.new_runs, "seconds": time.monotonic() - t0}))
"""


def _start_ingesters(root: Path, inputs, go: Path, timeout: float, n: int = 2) -> list[subprocess.Popen]:
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    return [
        subprocess.Popen(
            [sys.executable, "-c", INGESTER, str(root), str(inputs.wandb), str(inputs.events), str(go), str(timeout)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=str(root.parent),
        )
        for _ in range(n)
    ]


def _reference(inputs, root: Path) -> Path:
    wh = Warehouse(root)
    ingest(wh, [LocalRunSource([inputs.wandb])], [NdjsonEventSource([inputs.events])])
    return root


def test_two_ingests_started_at_once_one_waits_for_the_other_and_nothing_is_stored_twice(demo_sources, tmp_path):
    inputs = crash.Inputs(demo_sources, tmp_path / "inputs", EVENT_LINES).stage("B")
    ref = _reference(inputs, tmp_path / "reference")
    root = tmp_path / "wh"
    go = tmp_path / "go"
    procs = _start_ingesters(root, inputs, go, timeout=120)
    deadline = time.monotonic() + 120
    while len(list(tmp_path.glob("go.ready.*"))) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)  # both have imported the pipeline and spin on the start line
    go.touch()
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    reports = sorted((json.loads(o) for o, _ in outs), key=lambda r: r["seconds"])
    first, second = reports
    assert first["batch_id"] and first["new_events"] > 0
    # The second waited at the lock, then found everything stored: it added nothing.
    assert (second["batch_id"], second["new_events"], second["new_history_rows"], second["new_runs"]) == (None, 0, 0, 0)
    assert crash.integrity_problems(root) == []
    assert crash.raw_differences(root, ref) == []


def _hold_lock(root: str, purpose: str, ready, release) -> None:
    with Warehouse(root).lock(purpose=purpose):
        ready.set()
        release.wait(30)


def test_an_ingest_that_may_not_wait_is_refused_with_a_message_naming_the_ingest_that_holds_the_lock(
    demo_sources, tmp_path
):
    inputs = crash.Inputs(demo_sources, tmp_path / "inputs", EVENT_LINES).stage("A")
    root = tmp_path / "wh"
    wh = Warehouse(root).ensure()
    ctx = mp.get_context("spawn")
    ready, release = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=_hold_lock, args=(str(root), "ingest", ready, release))
    holder.start()
    try:
        assert ready.wait(30)
        t0 = time.monotonic()
        with pytest.raises(WarehouseBusyError, match=rf"busy: ingest \(pid {holder.pid}\) holds its write lock"):
            ingest(wh, [LocalRunSource([inputs.wandb])], [NdjsonEventSource([inputs.events])], lock_timeout_s=0.5)
        assert 0.4 < time.monotonic() - t0 < 10
    finally:
        release.set()
        holder.join(30)
    assert wh.committed_batches() == [] and crash.leftovers(root) == {"uncommitted": [], "temp": []}
    # Once the holder is gone the same ingest goes through.
    assert ingest(wh, [LocalRunSource([inputs.wandb])], [NdjsonEventSource([inputs.events])]).new_events > 0


def test_an_ingest_that_waits_for_the_lock_says_who_holds_it_then_goes_through(demo_sources, tmp_path):
    inputs = crash.Inputs(demo_sources, tmp_path / "inputs", EVENT_LINES).stage("A")
    wh = Warehouse(tmp_path / "wh").ensure()
    ctx = mp.get_context("spawn")
    ready, release = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=_hold_lock, args=(str(wh.root), "dbt build", ready, release))
    holder.start()
    said: list[str] = []
    try:
        assert ready.wait(30)
        timer = threading.Timer(1.5, release.set)
        timer.start()
        report = ingest(
            wh,
            [LocalRunSource([inputs.wandb])],
            [NdjsonEventSource([inputs.events])],
            progress=said.append,
            lock_timeout_s=60,
        )
    finally:
        release.set()
        holder.join(30)
    assert report.new_events > 0
    waits = [m for m in said if m.startswith("waiting for the warehouse write lock")]
    assert waits == [f"waiting for the warehouse write lock: dbt build (pid {holder.pid}) holds it (for up to 60 s)"]


# --- the real CLI: `grpo ingest` rebuilding under query commands ---------------------------


@pytest.fixture(scope="module")
def stage_a_warehouse(demo_sources, tmp_path_factory, dbt_manifest):
    """A warehouse built by `grpo ingest` from stage A inputs (4 runs, half the events)."""
    work = tmp_path_factory.mktemp("concurrency_cli")
    inputs = crash.Inputs(demo_sources, work / "inputs", EVENT_LINES).stage("A")
    root = work / "stage_a"
    root.mkdir()
    code, summary, err = crash.grpo_ingest(root, inputs, work / "dbt-target")
    assert code == 0, err[-3000:]
    return root, inputs, work


def _copy_warehouse(src: Path, dst: Path) -> Path:
    """A copy that works where it is: the snapshot's views name files by absolute path, so republish it."""
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns(".lock", "grpo.duckdb"))
    wh = Warehouse(dst)
    with wh.lock(timeout_s=30, purpose="publish snapshot"):
        publish(wh)
    return dst


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_grpo_queries_and_an_external_reader_never_fail_nor_see_a_mix_of_builds_while_grpo_ingest_rebuilds(
    stage_a_warehouse, tmp_path
):
    base, inputs, work = stage_a_warehouse
    root = _copy_warehouse(base, tmp_path / "wh")
    env = _reader_env(root)
    run_name = json.loads(
        subprocess.run(
            [crash.grpo_exe(), "sql", "select run_name from dim_runs order by run_name limit 1", "--json"],
            capture_output=True,
            text=True,
            env=env,
        ).stdout
    )[0]["run_name"]
    external = ExternalReader(root / "grpo.duckdb", tmp_path, PROBE, pause=0.05)
    loops = [
        GrpoLoop(env, ["sql", PROBE, "--json"], pause=0.2),
        GrpoLoop(env, ["elo", run_name, "--json"], pause=0.2),
        GrpoLoop(env, ["check", "--json"], ok_codes=(0, 1), pause=0.2),
    ]
    for loop in loops:
        loop.start()
    builds = []
    try:
        time.sleep(2.0)
        inputs.stage("B")  # three more runs, the second half of the growing event file
        for _ in range(2):  # new data, then nothing new (still a fresh build and publish)
            code, summary, err = crash.grpo_ingest(root, inputs, tmp_path / "dbt-target")
            builds.append((code, summary))
            assert code == 0, err[-3000:]
        time.sleep(1.0)
    finally:
        for loop in loops:
            loop.halt.set()
        for loop in loops:
            loop.join(300)
        ext = external.stop()
    sql, elo, check = loops
    failures = [r["error"] for r in ext if not r["ok"]] + sql.failures() + elo.failures() + check.failures()
    ext_rows = [r["row"] for r in ext if r["ok"]]
    sql_rows = [
        [str(r[k]) for k in ("published_at", "runs", "verdicts", "runs_in_catalog")]
        for _, p, _ in sql.results
        if p
        for r in p
    ]
    torn = _probe_problems(ext_rows) + _probe_problems(sql_rows)
    for rows in (ext_rows, sql_rows):
        torn += _monotonic_problems([r[0] for r in rows])
    # Query commands: one snapshot, one answer.
    for loop in (elo, check):
        answers: dict[str, set[str]] = defaultdict(set)
        for _, parsed, _ in loop.results:
            if isinstance(parsed, dict):
                answers[parsed["freshness"]["published_at"]].add(json.dumps(parsed, sort_keys=True))
        torn += [
            f"grpo {loop.args[0]}: snapshot {p} gave {len(a)} different answers"
            for p, a in answers.items()
            if len(a) > 1
        ]
        torn += _monotonic_problems([p["freshness"]["published_at"] for _, p, _ in loop.results if isinstance(p, dict)])
    counts = {tuple(r[1:]) for r in ext_rows + sql_rows}
    reads = len(ext) + sum(len(loop.results) for loop in loops)
    print(
        f"\n{reads} concurrent reads ({len(ext)} external, {len(sql.results)} sql, {len(elo.results)} elo, "
        f"{len(check.results)} check) over {len(builds)} rebuilds; {len(failures)} failed, {len(torn)} torn; "
        f"run counts seen: {sorted(counts)}"
    )
    assert failures == []
    assert torn == []
    assert {("4", "4", "4"), ("7", "7", "7")} <= counts  # before and after the new runs arrived
    assert builds[0][1]["new_runs"] == 3 and builds[1][1]["new_runs"] == 0


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_two_grpo_ingests_started_at_once_both_finish_one_after_the_other_with_nothing_stored_twice(
    stage_a_warehouse, tmp_path
):
    base, inputs, work = stage_a_warehouse
    root = _copy_warehouse(base, tmp_path / "wh")
    inputs.stage("B")
    procs = [
        subprocess.Popen(
            [crash.grpo_exe(), "ingest", "--wandb-dir", str(inputs.wandb), "--events", str(inputs.events), "--json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=crash.grpo_env(root, tmp_path / f"dbt-target-{i}"),
            cwd=str(tmp_path),
        )
        for i in range(2)
    ]
    outs = [p.communicate(timeout=1500) for p in procs]
    codes = [p.returncode for p in procs]
    assert codes == [0, 0], [(o[-3000:], e[-2000:]) for o, e in outs]
    # Whichever came second said, on a line of its own, that it waited and for whom.
    assert re.search(r"waiting for the warehouse write lock: [a-z ]+ \(pid \d+\) holds it", outs[0][1] + outs[1][1])
    summaries = [json.loads(o) for o, _ in outs]
    assert all(s["success"] and s["runs"] == 7 for s in summaries)
    assert crash.integrity_problems(root) == []
    # Row for row what one uninterrupted library ingest of A then B stores.
    ref = tmp_path / "reference"
    wh_ref = Warehouse(ref)
    for stage in ("A", "B"):
        inputs.stage(stage)
        ingest(wh_ref, [LocalRunSource([inputs.wandb])], [NdjsonEventSource([inputs.events])])
    assert crash.raw_differences(root, ref) == []
    con = duckdb.connect(str(root / "grpo.duckdb"), read_only=True)
    try:
        runs, verdicts, events, raw_events = con.execute(
            "select (select count(*) from dim_runs), (select count(*) from fct_learning_verdicts),"
            " (select count(*) from stg_axiom__events), (select count(*) from raw_axiom_events)"
        ).fetchall()[0]
    finally:
        con.close()
    assert (runs, verdicts) == (7, 7) and events == raw_events
