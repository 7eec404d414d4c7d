"""Library-level kill trials: ingests killed at named points or after random delays, and
snapshot publishes killed mid-copy.
"""

from __future__ import annotations

import random
import shutil
import time
from pathlib import Path

import duckdb

from bench.crash_checks import (
    Trial,
    describe_after_kill,
    integrity_problems,
    leftovers,
    raw_differences,
    reader_problems,
)
from bench.crash_inputs import Inputs
from bench.crash_zygote import Zygote
from pipelines.raw.layer import Warehouse

# Named kill points with the pass to kill at, per stage (see pipelines.raw.crash_points.KILL_POINTS).
# Stage A starts from nothing: parquet writes 1-5 are the empty schema files of
# Warehouse.ensure(), then history (6), runs (7), events (8, 9...), rejects.
# Stage B starts from the state after A: history (1), runs (2), events (3...).
INGEST_HOOKS = [
    ("A", "parquet.tmp_torn@1"),  # the very first schema file, half written
    ("A", "parquet.renamed@5"),  # layout complete, nothing ingested
    ("A", "parquet.tmp_torn@6"),  # history file half written
    ("A", "parquet.tmp_written@6"),  # history complete under its temp name
    ("A", "parquet.renamed@6"),  # history in place, runs not yet
    ("A", "ingest.between_sources"),  # W&B part written, events not started
    ("A", "parquet.tmp_torn@8"),  # first events file half written
    ("A", "parquet.renamed@8"),  # between two event chunks
    ("A", "commit.before_record"),  # every data file in place, no commit record
    ("A", "json.tmp_torn"),  # commit record half written
    ("A", "commit.after_record"),  # committed, lock still held
    ("B", "parquet.tmp_written@1"),
    ("B", "parquet.renamed@2"),
    ("B", "ingest.between_sources"),
    ("B", "parquet.tmp_torn@3"),
    ("B", "commit.before_record"),
    ("B", "json.tmp_torn"),
    ("B", "commit.after_record"),
]
# Killed after an A ingest was killed late, so the re-run's cleanup has files to remove.
CLEANUP_HOOK = ("A", "cleanup.after_first_removal")
PUBLISH_HOOKS = ["publish.copying@1", "publish.copying@2", "publish.before_rename", "publish.after_rename"]


class Campaign:
    """Library-level kill trials against one reference; bench/crash.py's docstring explains a trial."""

    def __init__(
        self, work: Path, demo_dir: Path, seed: int = 0, event_lines: int | None = None, cut_run: bool = False
    ) -> None:
        self.work = work
        self.inputs = Inputs(demo_dir, work / "inputs", event_lines, cut_run)
        self.zygote = Zygote(work / "zygote.log")
        self.rng = random.Random(seed)
        self.ref = work / "reference"
        self.ref_a = work / "reference_after_A"
        self.duration: dict[str, float] = {}
        self.trials: list[Trial] = []
        self._n = 0

    def close(self) -> None:
        self.zygote.close()

    def _expect(self, result: dict, what: str) -> None:
        if result["outcome"] != "completed":
            raise RuntimeError(f"{what}: {result['outcome']}; see {self.work / 'zygote.log'}")

    def build_reference(self) -> None:
        for root in (self.ref, self.ref_a):
            shutil.rmtree(root, ignore_errors=True)
        r = self.zygote.ingest(self.ref, self.inputs.stage("A"))
        self._expect(r, "reference ingest A")
        self.duration["A"] = r["seconds"]
        shutil.copytree(self.ref / "raw", self.ref_a / "raw")  # the uninterrupted state after A
        r = self.zygote.ingest(self.ref, self.inputs.stage("B"))
        self._expect(r, "reference ingest B")
        self.duration["B"] = r["seconds"]
        problems = integrity_problems(self.ref)
        if problems:
            raise RuntimeError(f"the uninterrupted reference itself is broken: {problems}")

    def _fresh(self, stage: str) -> Path:
        self._n += 1
        root = self.work / f"trial-{self._n:04d}"
        shutil.rmtree(root, ignore_errors=True)
        if stage == "B":
            shutil.copytree(self.ref_a / "raw", root / "raw")
        else:
            root.mkdir(parents=True)
        return root

    def _finish(self, trial: Trial, root: Path, batches_before: int) -> Trial:
        trial.seen = describe_after_kill(root, batches_before)
        trial.problems += [f"after the kill: {p}" for p in reader_problems(root)]
        # Re-run the interrupted stage; compare with the uninterrupted warehouse at that stage.
        r = self.zygote.ingest(root, self.inputs.stage(trial.stage))
        if r["outcome"] != "completed":
            trial.problems.append(f"the re-run: {r['outcome']}")
        else:
            trial.problems += [f"after the re-run: {p}" for p in reader_problems(root)]
            trial.problems += integrity_problems(root)
            trial.problems += raw_differences(root, self.ref if trial.stage == "B" else self.ref_a)
        self.trials.append(trial)
        if trial.survived:
            shutil.rmtree(root, ignore_errors=True)
        return trial

    def hook_trial(self, stage: str, label: str, pre_kill: str | None = None) -> Trial:
        """Kill the stage's ingest at a named point; with pre_kill, first kill an ingest there too."""
        t0 = time.monotonic()
        root = self._fresh(stage)
        before = len(list((root / "raw" / "_batches").glob("*.json")))
        self.inputs.stage(stage)
        if pre_kill:
            self.zygote.ingest(root, self.inputs, kill_at=pre_kill)
        r = self.zygote.ingest(root, self.inputs, kill_at=label)
        trial = Trial("hook", stage, (f"{pre_kill} then " if pre_kill else "") + label, r["outcome"])
        if r["outcome"] != "killed":
            trial.problems.append(f"the kill point {label} was never reached ({r['outcome']})")
        self._finish(trial, root, before)
        trial.seconds = time.monotonic() - t0
        return trial

    def timed_trial(self, stage: str | None = None, delay: float | None = None) -> Trial:
        """Kill the stage's ingest after a random delay within its measured duration."""
        t0 = time.monotonic()
        stage = stage or self.rng.choice("AB")
        if delay is None:
            # Half uniform over the whole ingest, half over its last 40 %, where
            # the files are written (the first part mostly reads the sources).
            d = self.duration[stage]
            delay = self.rng.uniform(0.0, d * 1.05) if self.rng.random() < 0.5 else self.rng.uniform(d * 0.6, d * 1.05)
        root = self._fresh(stage)
        before = len(list((root / "raw" / "_batches").glob("*.json")))
        r = self.zygote.ingest(root, self.inputs.stage(stage), kill_after=delay)
        trial = Trial("timed", stage, f"{delay:.3f}s", r["outcome"])
        if r["outcome"] not in ("killed", "completed"):
            trial.problems.append(f"the ingest itself failed: {r['outcome']}")
        self._finish(trial, root, before)
        trial.seconds = time.monotonic() - t0
        return trial


# --- publish trials ----------------------------------------------------------------


def make_build_db(path: Path, generation: int, rows: int = 300_000) -> dict[str, int]:
    """A stand-in for dbt's build database: marts whose sizes encode the build generation.

    dim_runs and fct_learning_verdicts have 10 + generation rows each (they
    must always agree), fct_events_hourly has `rows` + generation rows (big
    enough that copying it takes a while).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    for p in (path, path.with_name(path.name + ".wal")):
        p.unlink(missing_ok=True)
    n_runs = 10 + generation
    con = duckdb.connect(str(path))
    try:
        con.execute(
            f"create table dim_runs as select 'run-' || i as run_id, {generation} as generation from range({n_runs}) t(i)"
        )
        con.execute(
            f"create table fct_learning_verdicts as select 'run-' || i as run_id, "
            f"case when i % 2 = 0 then 'learning' else 'not_learning' end as verdict, {generation} as generation "
            f"from range({n_runs}) t(i)"
        )
        con.execute(
            f"create table fct_events_hourly as select i as hour, random() as value, {generation} as generation "
            f"from range({rows + generation}) t(i)"
        )
        con.execute("checkpoint")
    finally:
        con.close()
    return {"dim_runs": n_runs, "fct_learning_verdicts": n_runs, "fct_events_hourly": rows + generation}


def snapshot_state(db: Path) -> tuple[int, int, int, set[int]]:
    """(runs, verdicts, hourly rows, generations seen) of a published snapshot, in one read."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        a, b, c = con.execute(
            "select (select count(*) from dim_runs), (select count(*) from fct_learning_verdicts),"
            " (select count(*) from fct_events_hourly)"
        ).fetchall()[0]
        gens = {
            r[0]
            for r in con.execute(
                "select generation from dim_runs union select generation from fct_learning_verdicts"
                " union select distinct generation from fct_events_hourly"
            ).fetchall()
        }
        return a, b, c, gens
    finally:
        con.close()


def publish_trials(zygote: Zygote, work: Path, kills: int, rng: random.Random, rows: int = 300_000) -> list[Trial]:
    """Publish generation g over g-1, kill it (hooks first, then random delays), re-publish, check."""
    root = work / "publish"
    shutil.rmtree(root, ignore_errors=True)
    wh = Warehouse(root).ensure()
    make_build_db(wh.build_db, 0, rows)
    r = zygote.publish(root)
    if r["outcome"] != "completed":
        raise RuntimeError(f"the first publish failed: {r['outcome']}")
    duration = r["seconds"]
    trials: list[Trial] = []
    points: list[tuple[str, str | None, float | None]] = [("publish-hook", h, None) for h in PUBLISH_HOOKS]
    while len(points) < kills:
        points.append(("publish-timed", None, rng.uniform(0.0, duration * 1.1)))
    for generation, (kind, label, delay) in enumerate(points[:kills], start=1):
        t0 = time.monotonic()
        old = snapshot_state(wh.snapshot_db)
        expected = make_build_db(wh.build_db, generation, rows)
        new = (expected["dim_runs"], expected["fct_learning_verdicts"], expected["fct_events_hourly"], {generation})
        r = zygote.publish(root, kill_at=label, kill_after=delay)
        trial = Trial(kind, "publish", label or f"{delay:.3f}s", r["outcome"])
        if kind == "publish-hook" and r["outcome"] != "killed":
            trial.problems.append(f"the kill point {label} was never reached ({r['outcome']})")
        left = leftovers(root)["temp"]
        trial.seen = f"{len(left)} temp file(s)" if left else "no temp file"
        try:
            seen = snapshot_state(wh.snapshot_db)
            if seen not in (old, new):
                trial.problems.append(f"after the kill grpo.duckdb is neither the old nor the new build: {seen}")
            else:
                trial.seen += ", old snapshot" if seen == old and seen != new else ", new snapshot"
        except Exception as exc:
            trial.problems.append(f"after the kill grpo.duckdb does not open: {type(exc).__name__}: {exc}")
        r = zygote.publish(root)
        if r["outcome"] != "completed":
            trial.problems.append(f"the re-publish: {r['outcome']}")
        else:
            seen = snapshot_state(wh.snapshot_db)
            if seen != new:
                trial.problems.append(f"after the re-publish grpo.duckdb holds {seen}, expected {new}")
            left = leftovers(root)["temp"]
            if left:
                trial.problems.append(f"left behind after the re-publish: {left}")
        trial.seconds = time.monotonic() - t0
        trials.append(trial)
    return trials
