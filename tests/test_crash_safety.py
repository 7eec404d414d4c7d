"""Crash safety: ingests and publishes killed with SIGKILL at many points, then re-run.

The harness is bench/crash.py (its docstring explains a trial); these tests
run a short version of it, `uv run python bench/crash.py --kills 200` the long
one. Ingest children are real processes forked from a `python -c` zygote that
runs `pipelines.ingest.ingest_sources.ingest` with LocalRunSource + NdjsonEventSource on the
demo league's files; named kill points come from the GRPO_TEST_KILL_AT hook in
pipelines/raw/. After every kill a reader must find only whole files
and a snapshot that opens; after the re-run the raw tables must equal an
uninterrupted ingest's row for row, with nothing stored twice.
"""

from __future__ import annotations

import datetime as dt
import multiprocessing as mp
import os
import random
import time
from pathlib import Path

import duckdb
import pytest

from bench import crash
from pipelines.answers.sql import open_snapshot
from pipelines.ingest.ingest_sources import ingest
from pipelines.raw.layer import Warehouse
from pipelines.raw.readers import totals
from pipelines.raw.schemas import EVENTS, HISTORY
from pipelines.raw.write_lock import WarehouseBusyError
from pipelines.sources.ndjson import NdjsonEventSource
from pipelines.sources.wandb_local import LocalRunSource
from tests.clock import DEMO_END

SEED = 20240601
EVENT_LINES = 3000  # per event file: enough for several chunks, fast to re-ingest


def _explain(trials) -> str:
    lines = [crash.summarize(trials)]
    for t in trials:
        for p in t.problems:
            lines.append(f"{t.kind} {t.stage} {t.point}: {p}")
    return "\n".join(lines)


@pytest.fixture(scope="module")
def demo_sources(tmp_path_factory) -> Path:
    return crash.generate_sources(tmp_path_factory.mktemp("crash_demo"), now=DEMO_END)


@pytest.fixture(scope="module")
def campaign(demo_sources, tmp_path_factory):
    camp = crash.Campaign(tmp_path_factory.mktemp("crash_work"), demo_sources, seed=SEED, event_lines=EVENT_LINES)
    try:
        camp.build_reference()
        yield camp
    finally:
        camp.close()


def test_the_trials_cover_a_resumed_run_whose_next_segments_arrive_in_stage_b(campaign):
    """Kills during stage B land while a run stored in stage A gains new segments: no half-merged run may show."""
    segments: dict[str, list[Path]] = {}
    for p in campaign.inputs.runs:
        segments.setdefault(p.stem.removeprefix("run-"), []).append(p)
    resumed = [files for files in segments.values() if len(files) > 1]
    assert resumed, "the demo has a resumed run"
    for files in resumed:
        in_a = [p for p in files if p in campaign.inputs.stage_a_runs]
        assert 0 < len(in_a) < len(files)


def test_an_ingest_killed_at_each_named_step_leaves_only_whole_files_and_its_rerun_equals_an_uninterrupted_ingest(
    campaign,
):
    trials = [campaign.hook_trial(stage, label) for stage, label in crash.INGEST_HOOKS]
    # An ingest killed before its commit, then the next one killed halfway through removing those files.
    trials.append(campaign.hook_trial(*crash.CLEANUP_HOOK, pre_kill="commit.before_record"))
    print("\n" + crash.summarize(trials))
    assert all(t.outcome == "killed" for t in trials), _explain(trials)
    assert [t for t in trials if not t.survived] == [], _explain(trials)
    # The kills really left the states they are meant to: torn temp files, uncommitted batches, commits.
    seen = " ".join(t.seen for t in trials)
    assert "temp file" in seen and "uncommitted file" in seen and "batch committed" in seen


def test_an_ingest_killed_after_random_delays_recovers_to_the_same_rows_with_nothing_stored_twice(campaign):
    trials = [campaign.timed_trial() for _ in range(12)]
    print("\n" + crash.summarize(trials))
    assert [t for t in trials if not t.survived] == [], _explain(trials)
    assert sum(t.outcome == "killed" for t in trials) >= 4, _explain(trials)  # most land mid-run


def test_a_publish_killed_at_any_moment_leaves_grpo_duckdb_the_old_or_the_new_build_and_nothing_behind(
    campaign, tmp_path
):
    trials = crash.publish_trials(campaign.zygote, tmp_path, kills=12, rng=random.Random(SEED), rows=200_000)
    print("\n" + crash.summarize(trials))
    assert [t for t in trials if not t.survived] == [], _explain(trials)
    assert sum(t.outcome == "killed" for t in trials) >= 8, _explain(trials)
    outcomes = " ".join(t.seen for t in trials)
    assert "old snapshot" in outcomes and "new snapshot" in outcomes


def test_after_a_crash_readers_and_totals_see_only_committed_batches_and_the_next_lock_holder_removes_the_rest(
    campaign, tmp_path
):
    root = tmp_path / "wh"
    wh = Warehouse(root)
    assert campaign.zygote.ingest(root, campaign.inputs.stage("A"))["outcome"] == "completed"
    crash.make_build_db(wh.build_db, 0, rows=1000)
    assert campaign.zygote.publish(root)["outcome"] == "completed"
    committed = totals(wh)
    # Stage B dies with all its data files in place but no commit record.
    r = campaign.zygote.ingest(root, campaign.inputs.stage("B"), kill_at="commit.before_record")
    assert r["outcome"] == "killed"
    assert crash.leftovers(root)["uncommitted"]
    glob_rows = duckdb.sql(f"select count(*) from read_parquet('{wh.table_glob(EVENTS)}')").fetchall()[0][0]
    assert glob_rows > committed["events"]  # the orphan rows are on disk...
    assert totals(wh) == committed  # ...but not counted
    con = open_snapshot(root)
    try:  # ...and not visible through the snapshot's raw views
        events = con.execute("select count(*) from raw_axiom_events").fetchall()[0][0]
        history = con.execute("select count(*) from raw_wandb_history").fetchall()[0][0]
    finally:
        con.close()
    assert (events, history) == (committed["events"], committed["history_rows"])
    # A dbt build (or publish) that runs before any ingest, e.g. materialized alone
    # from the Dagster UI, takes the lock: the orphans are gone before it reads the glob.
    with wh.lock(timeout_s=5, purpose="dbt build"):
        assert crash.leftovers(root) == {"uncommitted": [], "temp": []}
        assert (
            duckdb.sql(f"select count(*) from read_parquet('{wh.table_glob(HISTORY)}')").fetchall()[0][0]
            == committed["history_rows"]
        )


def test_an_ingest_after_the_clock_stepped_back_neither_loses_nor_repeats_rows(campaign, tmp_path, monkeypatch):
    import pipelines.raw.batches as batches_module

    root = tmp_path / "wh"
    wh = Warehouse(root)
    assert campaign.zygote.ingest(root, campaign.inputs.stage("A"))["outcome"] == "completed"
    real = batches_module.new_batch_id
    monkeypatch.setattr(
        batches_module, "new_batch_id", lambda now=None: real(now or dt.datetime.now(dt.UTC) - dt.timedelta(hours=1))
    )
    inputs = campaign.inputs.stage("B")
    ingest(wh, [LocalRunSource([inputs.wandb])], [NdjsonEventSource([inputs.events])])  # NTP stepped the clock back
    monkeypatch.setattr(batches_module, "new_batch_id", real)
    batches = [r["batch_id"] for r in wh.committed_batches()]
    assert batches == sorted(batches) and len(batches) == 2
    again = ingest(wh, [LocalRunSource([inputs.wandb])], [NdjsonEventSource([inputs.events])])
    assert (again.new_events, again.new_history_rows, again.new_runs, again.updated_runs) == (0, 0, 0, 0)
    assert crash.integrity_problems(root) == []
    assert crash.raw_differences(root, campaign.ref) == []


def test_re_reading_in_progress_runs_without_new_steps_adds_no_run_version(demo_sources, tmp_path):
    spurious = []
    for fraction in (0.3, 0.5, 0.7, 0.9):  # runs still being written, cut at several points
        cut = tmp_path / f"runs-{fraction}"
        for f in sorted(demo_sources.glob("wandb/*run-*/run-*.wandb")):
            (cut / f.parent.name).mkdir(parents=True)
            data = f.read_bytes()
            (cut / f.parent.name / f.name).write_bytes(data[: int(len(data) * fraction)])
        wh = Warehouse(tmp_path / f"wh-{fraction}")
        assert ingest(wh, [LocalRunSource([cut])]).new_runs > 0
        later = time.time() + 60
        for f in cut.glob("*/run-*.wandb"):
            os.utime(f, (later, later))  # the same bytes, copied again
        again = ingest(wh, [LocalRunSource([cut])])
        if again.updated_runs or again.new_history_rows:
            spurious.append((fraction, again.updated_runs, again.new_history_rows))
    assert spurious == []


def _hold_build_db(path: str, ready, release) -> None:
    con = duckdb.connect(path)  # like the dbt child of a killed `grpo ingest`, still building
    ready.set()
    release.wait(20)
    con.close()


def test_the_write_lock_waits_for_a_dbt_build_left_running_by_a_killed_parent(tmp_path):
    wh = Warehouse(tmp_path).ensure()
    duckdb.connect(str(wh.build_db)).close()
    ctx = mp.get_context("spawn")
    ready, release = ctx.Event(), ctx.Event()
    orphan = ctx.Process(target=_hold_build_db, args=(str(wh.build_db), ready, release))
    orphan.start()
    try:
        assert ready.wait(30)
        with (
            pytest.raises(WarehouseBusyError, match=rf"process {orphan.pid} still has warehouse.duckdb open"),
            wh.lock(timeout_s=0.5, purpose="dbt build"),
        ):
            pass
    finally:
        release.set()
        orphan.join(20)
    with wh.lock(timeout_s=5, purpose="dbt build"):
        duckdb.connect(str(wh.build_db)).close()  # what dbt does next now succeeds


@pytest.mark.slow
@pytest.mark.timeout(3600)  # eleven full `grpo ingest` runs
def test_grpo_ingest_killed_between_sources_during_dbt_and_during_publish_reruns_to_the_same_raw_rows_and_marts(
    demo_sources, tmp_path, dbt_manifest
):
    inputs = crash.Inputs(demo_sources, tmp_path / "inputs", EVENT_LINES).stage("B")
    ref = tmp_path / "reference"
    ref.mkdir()
    code, summary, err = crash.grpo_ingest(ref, inputs, tmp_path / "dbt-target-ref")
    assert code == 0, err[-3000:]
    trials = [
        # after the W&B asset committed its batch, before the events asset started
        crash.cli_trial(tmp_path, inputs, ref, None, 0.0, 1, kill_at="commit.after_record@1"),
        crash.cli_trial(tmp_path, inputs, ref, "ingest", 0.3, 2),
        crash.cli_trial(tmp_path, inputs, ref, "dbt build", 4.0, 3),  # only grpo dies; its dbt child goes on
        crash.cli_trial(tmp_path, inputs, ref, None, 0.0, 4, kill_at="publish.copying@12"),
        crash.cli_trial(tmp_path, inputs, ref, None, 0.0, 5, kill_at="publish.before_rename"),
    ]
    print("\n" + crash.summarize(trials))
    assert [t for t in trials if not t.survived] == [], _explain(trials)
