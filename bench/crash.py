#!/usr/bin/env python
"""Crash-safety harness: SIGKILL ingests and publishes at many points, re-run, compare.

    uv run python bench/crash.py --kills 200                  # library ingests + publishes
    uv run python bench/crash.py --kills 200 --cli-kills 6    # plus full `grpo ingest` runs
    uv run python bench/crash.py --kills 40 --seed 3 --keep   # keep the work folder to inspect

What one library trial does (`Campaign`):

1. Inputs are a demo league (`pipelines.demo.generate_demo`) served in two
   stages from one fixed folder, so source keys (file paths) stay the same:
   stage A has 4 of the W&B run files and the first segment of the resumed
   run (with --cut-run one of them cut in the middle of its `.wandb` file, a
   run in progress) and the first half of a growing NDJSON file; stage B has
   every run and segment complete and the whole file.
2. A reference warehouse is built without interruption: ingest A, ingest B.
3. A trial starts from the matching state (empty for A, the reference after A
   for B), ingests the stage in a child process and SIGKILLs it, either at a
   named point (`GRPO_TEST_KILL_AT`, see `pipelines.raw.crash_points.KILL_POINTS`) or
   after a random delay within the measured duration of that ingest.
4. Right after the kill, what a reader can see is checked: every `*.parquet`
   under raw/ reads whole, the committed files read, `grpo.duckdb` opens.
5. The stage is ingested again without interruption; the raw tables must
   equal the reference's at that stage row for row (sorted multisets, without
   batch_id/ingested_at), with no duplicate keys, no orphan or temp file.

Publish trials do the same to `pipelines.publish.publish` on a synthetic build
database whose marts change between two builds: after a kill `grpo.duckdb` is
the old snapshot or the new one, whole and self-consistent, and after the
re-run it is the new one with nothing left behind.

The ingest children are forked from one "zygote" (`python -c`, which imports
the pipeline once), so a kill costs an ingest, not an interpreter start.

CLI trials (`cli_trial`) kill the real `grpo ingest` (Dagster job, dbt build,
publish) in a chosen phase, read from the `.lock` holder (`ingest`,
`dbt build`, `publish snapshot`), re-run it, and compare raw tables and every
mart with an uninterrupted `grpo ingest`.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import gzip
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

import duckdb  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from pipelines.raw.crash_points import KILL_ENV
from pipelines.raw.layer import Warehouse
from pipelines.raw.schemas import SCHEMAS

# Columns that legitimately differ between two builds of the same data.
VOLATILE_COLUMNS = {"batch_id", "ingested_at", "evaluated_at", "built_at", "published_at"}
# Unique keys of the raw tables: a duplicate is a row stored twice.
RAW_KEYS = {
    "wandb_runs": ("run_id", "fingerprint"),
    "wandb_history": ("run_id", "step", "key"),
    "wandb_history_other": ("run_id", "step", "key"),
    "axiom_events": ("event_key",),
    "axiom_rejects": ("source", "line"),
}
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

ZYGOTE = r"""
import json, os, signal, sys, time, traceback
import pandas, pyarrow.pandas_compat  # imported lazily by the first parquet write; paid once here
from pipelines.ingest.run import ingest
from pipelines.publish import publish
from pipelines.sources.ndjson import NdjsonEventSource
from pipelines.sources.wandb_local import LocalRunSource
from pipelines.raw.crash_points import KILL_ENV
from pipelines.raw.layer import Warehouse


def run(cmd):
    if cmd.get("kill_at"):
        os.environ[KILL_ENV] = cmd["kill_at"]
    wh = Warehouse(cmd["root"])
    if cmd["op"] == "ingest":
        ingest(wh, [LocalRunSource([cmd["wandb"]])], [NdjsonEventSource([cmd["events"]])], lock_timeout_s=60)
    else:
        wh.ensure()
        with wh.lock(timeout_s=60, purpose="publish snapshot"):
            publish(wh, None)


for line in sys.stdin:
    cmd = json.loads(line)
    t0 = time.monotonic()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.dup2(2, 1)
            run(cmd)
            code = 0
        except BaseException:
            traceback.print_exc()
        finally:
            sys.stderr.flush()
            os._exit(code)
    kill_after = cmd.get("kill_after")
    if kill_after is None:
        _, status = os.waitpid(pid, 0)
    else:
        deadline = t0 + kill_after
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            left = deadline - time.monotonic()
            if left <= 0:
                os.kill(pid, signal.SIGKILL)
                _, status = os.waitpid(pid, 0)
                break
            time.sleep(min(left, 0.002))
    seconds = time.monotonic() - t0
    if os.WIFSIGNALED(status):
        outcome = "killed" if os.WTERMSIG(status) == signal.SIGKILL else f"signal {os.WTERMSIG(status)}"
    else:
        outcome = "completed" if os.WEXITSTATUS(status) == 0 else f"failed (exit {os.WEXITSTATUS(status)})"
    sys.stdout.write(json.dumps({"outcome": outcome, "seconds": seconds}) + "\n")
    sys.stdout.flush()
"""


# --- inputs --------------------------------------------------------------------


def generate_sources(out_dir: Path, steps: int = 400, now: dt.datetime | None = None) -> Path:
    """A demo league (real wandb offline runs, 24 h of NDJSON events ending at `now`) under out_dir; ~10 s."""
    from pipelines.demo.build import generate_demo

    env_keys = ("WANDB_MODE", "WANDB_SILENT")
    saved = {k: os.environ.get(k) for k in env_keys}
    os.environ.update({"WANDB_MODE": "offline", "WANDB_SILENT": "true"})
    try:
        generate_demo(out_dir, steps=steps, now=now)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return out_dir


ARCHIVE_NAME = "axiom-export-archive.ndjson.gz"
GROWING_NAME = "axiom-export-live.ndjson"


class Inputs:
    """The demo's sources served in stages from one fixed folder (same paths every time).

    The demo's event lines (all its files, in time order) are served as two
    files whatever hour the demo ended at: a gzip archive with the first part
    and a plain file that grows (the rest).
    """

    def __init__(self, demo_dir: Path, folder: Path, event_lines: int | None = None, cut_run: bool = False) -> None:
        """`event_lines` keeps only that many lines in each of the two event files (faster trials).

        `cut_run` serves one run of stage A cut in the middle of its `.wandb`
        file (a run in progress).
        """
        self.folder = folder
        self.event_lines = event_lines
        self.cut_run = cut_run
        self.wandb = folder / "wandb"
        self.events = folder / "events"
        runs = sorted((demo_dir / "wandb").glob("*run-*/run-*.wandb"))  # folder names sort by start time
        assert len(runs) >= 5, f"expected the demo's runs under {demo_dir}"
        self.runs = runs
        # Stage A: the first four run files, and of a resumed run (several segment files) its first
        # segment but never its last, so stage B brings a new segment of a run stored in stage A.
        segments: dict[str, list[Path]] = {}
        for p in runs:
            segments.setdefault(p.stem.removeprefix("run-"), []).append(p)
        chosen = set(runs[:4])
        for files in segments.values():
            if len(files) > 1:
                chosen.add(files[0])
                chosen.discard(files[-1])
        self.stage_a_runs = [p for p in runs if p in chosen]
        lines: list[bytes] = []
        for p in sorted(p for p in (demo_dir / "events").iterdir() if p.is_file()):  # file names sort by day
            data = p.read_bytes()
            lines += (gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data).splitlines(keepends=True)
        self.demo_lines = lines  # every line the demo wrote, whatever is served
        split = len(lines) // 2 if event_lines is None else event_lines
        self.archive_lines = lines[:split]
        self.growing_lines = lines[split:] if event_lines is None else lines[split : split + event_lines]
        assert self.archive_lines and self.growing_lines, f"expected event lines under {demo_dir / 'events'}"
        # compressed once: every stage serves the archive byte for byte the same
        self.archive_gz = gzip.compress(b"".join(self.archive_lines), compresslevel=1, mtime=0)
        self.stage_name: str | None = None

    def drop_events_of(self, run_id: str) -> None:
        """Serve no event line that names `run_id`."""
        mark = f'"{run_id}"'.encode()
        self.archive_lines = [line for line in self.archive_lines if mark not in line]
        self.growing_lines = [line for line in self.growing_lines if mark not in line]
        self.archive_gz = gzip.compress(b"".join(self.archive_lines), compresslevel=1, mtime=0)

    @property
    def all_lines(self) -> list[bytes]:
        """Every event line stage B serves."""
        return self.archive_lines + self.growing_lines

    def stage_lines(self, name: str) -> list[bytes]:
        """The event lines the stage serves."""
        return self.archive_lines + (self.growing_lines[: len(self.growing_lines) // 2] if name == "A" else self.growing_lines)

    def stage(self, name: str) -> Inputs:
        """A: 4 run files and part of a resumed run (one file cut mid-file if cut_run), half the growing file.
        B: every run file whole, the whole file."""
        shutil.rmtree(self.folder, ignore_errors=True)
        self.events.mkdir(parents=True)
        chosen = self.stage_a_runs if name == "A" else self.runs
        for i, src in enumerate(chosen):
            dst = self.wandb / src.parent.name / src.name
            dst.parent.mkdir(parents=True)
            data = src.read_bytes()
            if name == "A" and i == 1 and self.cut_run:
                data = data[: len(data) // 2]  # a run still in progress
            dst.write_bytes(data)
        (self.events / ARCHIVE_NAME).write_bytes(self.archive_gz)
        (self.events / GROWING_NAME).write_bytes(b"".join(self.stage_lines(name)[len(self.archive_lines) :]))
        self.stage_name = name
        return self


# --- child processes -------------------------------------------------------------


class Zygote:
    """A `python -c` process that imported the pipeline once and forks one child per ingest or publish."""

    def __init__(self, log_path: Path) -> None:
        self.log = open(log_path, "ab")
        env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
        env.pop(KILL_ENV, None)
        self.proc = subprocess.Popen(
            [sys.executable, "-c", ZYGOTE],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            cwd=str(log_path.parent),
            env=env,
            text=True,
            bufsize=1,
        )

    def _call(self, cmd: dict) -> dict:
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the zygote died (exit {self.proc.poll()}); see {self.log.name}")
        return json.loads(line)

    def ingest(self, root: Path, inputs: Inputs, kill_at: str | None = None, kill_after: float | None = None) -> dict:
        return self._call(
            {"op": "ingest", "root": str(root), "wandb": str(inputs.wandb), "events": str(inputs.events),
             "kill_at": kill_at, "kill_after": kill_after}
        )

    def publish(self, root: Path, kill_at: str | None = None, kill_after: float | None = None) -> dict:
        return self._call({"op": "publish", "root": str(root), "kill_at": kill_at, "kill_after": kill_after})

    def close(self) -> None:
        with contextlib.suppress(Exception):
            assert self.proc.stdin
            self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()

    def __enter__(self) -> Zygote:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# --- what readers see, and what the warehouse holds --------------------------------


def reader_problems(root: Path) -> list[str]:
    """What a reader could trip over right now: unreadable parquet, a snapshot that does not open."""
    from pipelines.answers.sql import open_snapshot

    wh = Warehouse(root)
    problems: list[str] = []
    for table in SCHEMAS:
        d = wh.table_dir(table)
        if not (d / "schema.parquet").exists():
            # The very first ensure() was interrupted: there is no warehouse yet
            # (nothing committed, nothing published); the next one completes it.
            if (wh.batches_dir.exists() and any(wh.batches_dir.glob("*.json"))) or wh.snapshot_db.exists():
                problems.append(f"raw/{table}/schema.parquet is missing in a warehouse that has data")
            continue
        for f in sorted(d.glob("*.parquet")):
            try:
                pq.read_table(f)
            except Exception as exc:
                problems.append(f"raw/{table}/{f.name} is visible but unreadable: {type(exc).__name__}: {exc}")
        try:
            con = duckdb.connect()
            con.execute("select count(*) from read_parquet(?)", [[str(p) for p in wh.committed_files(table)]]).fetchall()
            con.close()
        except Exception as exc:
            problems.append(f"committed files of {table} do not read: {type(exc).__name__}: {exc}")
    if wh.snapshot_db.exists():
        try:
            con = open_snapshot(root)
            try:
                con.execute("select published_at from _snapshot").fetchall()
                views = con.execute("select table_name from information_schema.tables where table_type = 'VIEW'").fetchall()
                for (view,) in views:  # raw_* and exported relations read parquet files: all must be there
                    con.execute(f'select count(*) from "{view}"').fetchall()
            finally:
                con.close()
        except Exception as exc:
            problems.append(f"grpo.duckdb does not open or read: {type(exc).__name__}: {exc}")
    return problems


def leftovers(root: Path) -> dict[str, list[str]]:
    """Files an interrupted writer left: uncommitted batch files, temp files."""
    wh = Warehouse(root)
    committed = {p.stem for p in wh.batches_dir.glob("*.json")} if wh.batches_dir.exists() else set()
    out: dict[str, list[str]] = {"uncommitted": [], "temp": []}
    for table in SCHEMAS:
        d = wh.table_dir(table)
        for p in sorted(d.iterdir()) if d.exists() else []:
            if p.name.endswith(".tmp"):
                out["temp"].append(f"raw/{table}/{p.name}")
            elif p.name.startswith("batch-") and p.name.removeprefix("batch-").rsplit("-", 1)[0] not in committed:
                out["uncommitted"].append(f"raw/{table}/{p.name}")
    if wh.batches_dir.exists():
        out["temp"] += [f"raw/_batches/{p.name}" for p in wh.batches_dir.glob(".*.tmp")]
    if root.exists():
        out["temp"] += [p.name for p in root.glob(".grpo.duckdb.*")]
    if (root / "published").exists():
        out["temp"] += [str(p.relative_to(root)) for p in (root / "published").rglob(".*.tmp")]
    return out


def integrity_problems(root: Path) -> list[str]:
    """After a completed ingest: nothing left over, every committed file present, no duplicate keys."""
    wh = Warehouse(root)
    problems = [f"left behind: {p}" for kind in leftovers(root).values() for p in kind]
    con = duckdb.connect()
    try:
        for table, key in RAW_KEYS.items():
            files = wh.committed_files(table)
            missing = [str(f) for f in files if not f.exists()]
            if missing:
                problems.append(f"{table}: committed files missing: {missing}")
                continue
            cols = ", ".join(key)
            dup = con.execute(
                f"select count(*) from (select {cols} from read_parquet(?) group by all having count(*) > 1)",
                [[str(f) for f in files]],
            ).fetchall()[0][0]
            if dup:
                problems.append(f"{table}: {dup} key(s) stored more than once ({cols})")
    finally:
        con.close()
    return problems


def raw_differences(root: Path, ref_root: Path) -> list[str]:
    """Raw tables of two warehouses as sorted multisets, without batch_id/ingested_at."""
    a, b = Warehouse(root), Warehouse(ref_root)
    con = duckdb.connect()
    out: list[str] = []
    try:
        for table, schema in SCHEMAS.items():
            cols = ", ".join(f'"{c}"' for c in schema.names if c not in VOLATILE_COLUMNS)
            for name, wh in (("a", a), ("b", b)):
                files = ", ".join("'" + str(f).replace("'", "''") + "'" for f in wh.committed_files(table))
                con.execute(f"create or replace view {name} as select {cols} from read_parquet([{files}])")
            na, nb, only_a, only_b = con.execute(
                "select (select count(*) from a), (select count(*) from b),"
                " (select count(*) from (select * from a except all select * from b)),"
                " (select count(*) from (select * from b except all select * from a))"
            ).fetchall()[0]
            if only_a or only_b:
                out.append(f"{table}: {na} rows vs {nb} in the reference; {only_a} extra, {only_b} missing")
    finally:
        con.close()
    return out


def snapshot_differences(db: Path, ref_db: Path) -> list[str]:
    """Every table and view of two published snapshots, as multisets without build-time columns.

    fct_check_history appends one generation of outcomes per dbt build, and a
    build killed after that append leaves one more generation than an
    uninterrupted run: it is compared as a set of distinct rows. Doubles are
    compared to 10 significant digits: DuckDB's parallel aggregates (avg, sum)
    differ in the last bits from one build of the same rows to the next.
    """
    con = duckdb.connect()
    out: list[str] = []
    try:
        con.execute(f"attach '{db}' as a (read_only)")
        con.execute(f"attach '{ref_db}' as b (read_only)")

        def tables(cat: str) -> set[str]:
            return {
                r[0]
                for r in con.execute(
                    "select table_name from information_schema.tables where table_catalog = ?",
                    [cat],
                ).fetchall()
            }

        ta, tb = tables("a"), tables("b")
        if ta != tb:
            out.append(f"tables differ: only here {sorted(ta - tb)}, only in the reference {sorted(tb - ta)}")
        for t in sorted((ta & tb) - {"_snapshot"}):
            cols = [
                (name, dtype)
                for name, dtype in con.execute(
                    "select column_name, data_type from information_schema.columns"
                    " where table_catalog = 'b' and table_name = ? order by ordinal_position",
                    [t],
                ).fetchall()
                if name not in VOLATILE_COLUMNS
            ]
            sel = ", ".join(
                (f"printf('%.10g', \"{c}\") as \"{c}\"" if dtype in ("DOUBLE", "FLOAT") else f'"{c}"') for c, dtype in cols
            )
            distinct = "distinct " if t == "fct_check_history" else ""
            where = " where table_name <> 'fct_check_history'" if t == "_tables" else ""
            qa = f'select {distinct}{sel} from a."{t}"{where}'
            qb = f'select {distinct}{sel} from b."{t}"{where}'
            na, nb, only_a, only_b = con.execute(
                f"select (select count(*) from ({qa})), (select count(*) from ({qb})),"
                f" (select count(*) from ({qa} except all {qb})), (select count(*) from ({qb} except all {qa}))"
            ).fetchall()[0]
            if only_a or only_b:
                out.append(f"{t}: {na} rows vs {nb} in the reference; {only_a} extra, {only_b} missing")
    finally:
        con.close()
    return out


# --- library trials ----------------------------------------------------------------


@dataclasses.dataclass
class Trial:
    kind: str  # hook | timed | publish-hook | publish-timed
    stage: str
    point: str  # the label, or the delay in seconds
    outcome: str  # killed | completed (the kill came after the end)
    seen: str = ""  # what the kill left: committed / N uncommitted files / M temp files
    problems: list[str] = dataclasses.field(default_factory=list)
    seconds: float = 0.0

    @property
    def survived(self) -> bool:
        return not self.problems


def _describe(root: Path, batches_before: int) -> str:
    left = leftovers(root)
    n = len(list(Warehouse(root).batches_dir.glob("*.json"))) if Warehouse(root).batches_dir.exists() else 0
    parts = []
    if n > batches_before:
        parts.append("batch committed")
    if left["uncommitted"]:
        parts.append(f"{len(left['uncommitted'])} uncommitted file(s)")
    if left["temp"]:
        parts.append(f"{len(left['temp'])} temp file(s)")
    return ", ".join(parts) or "nothing written"


class Campaign:
    """Library-level kill trials against one reference; see the module docstring."""

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
        trial.seen = _describe(root, batches_before)
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
        con.execute(f"create table dim_runs as select 'run-' || i as run_id, {generation} as generation from range({n_runs}) t(i)")
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


# --- full `grpo ingest` trials ---------------------------------------------------------


def grpo_env(root: Path, dbt_target: Path) -> dict[str, str]:
    """Environment for `grpo`: this warehouse, dbt's per-run folders outside the working tree."""
    dbt_target.mkdir(parents=True, exist_ok=True)
    parse = PROJECT_ROOT / "target" / "partial_parse.msgpack"
    if parse.exists() and not (dbt_target / parse.name).exists():
        shutil.copyfile(parse, dbt_target / parse.name)  # keeps dbt's partial parsing fast
    env = {
        **os.environ,
        "GRPO_WAREHOUSE": str(root),
        "DBT_TARGET_PATH": str(dbt_target),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        "DAGSTER_DISABLE_TELEMETRY": "1",
        "COLUMNS": "200",
    }
    env.pop("DAGSTER_HOME", None)
    env.pop(KILL_ENV, None)
    return env


def grpo_exe() -> str:
    exe = Path(sys.executable).with_name("grpo")
    return str(exe) if exe.exists() else "grpo"


def grpo_ingest(root: Path, inputs: Inputs, dbt_target: Path, timeout: float = 900) -> tuple[int, dict | None, str]:
    """Run `grpo ingest --json` to the end: (exit code, parsed summary or None, stderr)."""
    proc = subprocess.run(
        [grpo_exe(), "ingest", "--wandb-dir", str(inputs.wandb), "--events", str(inputs.events), "--json"],
        capture_output=True, text=True, env=grpo_env(root, dbt_target), timeout=timeout, cwd=str(root.parent),
    )
    try:
        summary = json.loads(proc.stdout)
    except ValueError:
        summary = None
    return proc.returncode, summary, proc.stderr


def lock_holder(root: Path) -> str:
    try:
        return (root / ".lock").read_text(encoding="utf-8").strip()
    except OSError:
        return ""


def group_commands(pgid: int) -> list[str]:
    """Command lines of the live processes of a process group (Linux /proc)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) != pgid or fields[0] == "Z":
                continue
            out.append((stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"))
        except (OSError, IndexError, ValueError):
            continue
    return out


def _dbt_building(pgid: int) -> bool:
    return any(" build" in c and "/dbt" in c for c in group_commands(pgid))


def kill_grpo_ingest(
    root: Path,
    inputs: Inputs,
    dbt_target: Path,
    phase: str | None,
    delay: float,
    kill_group: bool = False,
    kill_at: str | None = None,
    timeout: float = 900,
) -> dict:
    """Start `grpo ingest`, wait until it is in `phase`, SIGKILL it `delay` s later.

    `phase` is a write-lock purpose, "ingest" or "publish snapshot" (read from
    the `.lock` holder), or "dbt build", which waits for the `dbt build`
    subprocess itself. With `kill_at` (a GRPO_TEST_KILL_AT label) and no phase
    the process kills itself at that point. Only the grpo process is killed
    (as the OOM killer does), unless kill_group: then its dbt child too.
    """
    env = grpo_env(root, dbt_target)
    if kill_at:
        env[KILL_ENV] = kill_at
    proc = subprocess.Popen(
        [grpo_exe(), "ingest", "--wandb-dir", str(inputs.wandb), "--events", str(inputs.events), "--json"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
        cwd=str(root.parent), start_new_session=True,
    )
    want = f"{phase} (pid {proc.pid})"
    t0 = time.monotonic()
    reached = phase is None
    while not reached and proc.poll() is None and time.monotonic() - t0 < timeout:
        reached = _dbt_building(proc.pid) if phase == "dbt build" else lock_holder(root) == want
        if not reached:
            time.sleep(0.01 if phase != "dbt build" else 0.05)
    if phase is None:
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
    if reached:
        time.sleep(delay)
    outcome = "completed"
    if proc.returncode == -signal.SIGKILL:
        outcome = "killed"  # by itself, at kill_at
    elif proc.poll() is None:
        if kill_group:
            os.killpg(proc.pid, signal.SIGKILL)
        else:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        outcome = "killed"
    elif proc.returncode != 0:
        outcome = f"failed (exit {proc.returncode})"
    return {"outcome": outcome, "phase_reached": reached, "seconds": time.monotonic() - t0, "pgid": proc.pid}


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def wait_group_gone(pgid: int, timeout: float = 120) -> float:
    """Wait for the killed grpo's leftover children (dbt) to exit; returns seconds waited."""
    t0 = time.monotonic()
    while group_alive(pgid) and time.monotonic() - t0 < timeout:
        time.sleep(0.05)
    return time.monotonic() - t0


def cli_trial(
    work: Path,
    inputs: Inputs,
    ref_root: Path,
    phase: str | None,
    delay: float,
    n: int,
    kill_group: bool = False,
    kill_at: str | None = None,
) -> Trial:
    """Kill a full `grpo ingest` in a phase (or at a kill point), re-run it, compare raw tables and marts with ref_root."""
    t0 = time.monotonic()
    root = work / f"cli-trial-{n:03d}"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    target = work / f"dbt-target-{n:03d}"
    r = kill_grpo_ingest(root, inputs, target, phase, delay, kill_group=kill_group, kill_at=kill_at)
    point = kill_at if kill_at else f"{phase} +{delay:.2f}s"
    trial = Trial("cli", phase or "hook", point, r["outcome"])
    if not r["phase_reached"] or r["outcome"] != "killed":
        trial.problems.append(f"the kill point {point!r} was never reached ({r['outcome']})")
    trial.seen = _describe(root, 0)
    trial.problems += [f"after the kill: {p}" for p in reader_problems(root)]
    code, summary, err = grpo_ingest(root, inputs, target)
    if code != 0:
        trial.problems.append(
            f"the re-run right after the kill exited {code}: {(summary or {}).get('errors') or err[-500:]}"
        )
        wait_group_gone(r["pgid"])  # a leftover dbt child, if that was the cause
        code, summary, err = grpo_ingest(root, inputs, target)
        if code != 0:
            trial.problems.append(f"a second re-run exited {code} too: {(summary or {}).get('errors') or err[-500:]}")
    if code == 0:
        trial.problems += [f"after the re-run: {p}" for p in reader_problems(root)]
        trial.problems += integrity_problems(root)
        trial.problems += raw_differences(root, ref_root)
        trial.problems += snapshot_differences(root / "grpo.duckdb", ref_root / "grpo.duckdb")
    wait_group_gone(r["pgid"])
    shutil.rmtree(target, ignore_errors=True)
    if trial.survived:
        shutil.rmtree(root, ignore_errors=True)
    trial.seconds = time.monotonic() - t0
    return trial


# --- the long run ----------------------------------------------------------------------


def summarize(trials: list[Trial]) -> str:
    lines = []
    by_kind: dict[str, list[Trial]] = {}
    for t in trials:
        by_kind.setdefault(t.kind, []).append(t)
    for kind, ts in by_kind.items():
        killed = sum(1 for t in ts if t.outcome == "killed")
        survived = sum(1 for t in ts if t.survived)
        seen: dict[str, int] = {}
        for t in ts:
            seen[t.seen] = seen.get(t.seen, 0) + 1
        lines.append(f"{kind:>14}: {len(ts)} tried ({killed} killed mid-run), {survived} survived")
        for s, n in sorted(seen.items(), key=lambda kv: -kv[1]):
            lines.append(f"{'':>16}{n:4d} x kill left: {s}")
    total = len(trials)
    ok = sum(1 for t in trials if t.survived)
    lines.append(f"{'total':>14}: {total} kill points tried, {ok} survived")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kills", type=int, default=200, help="library kill points (ingest hooks + random ingest kills + publish kills)")
    ap.add_argument("--publish-share", type=float, default=0.2, help="share of --kills spent on snapshot publishes")
    ap.add_argument("--cli-kills", type=int, default=0, help="full `grpo ingest` kills (about 2 min each)")
    ap.add_argument("--event-lines", type=int, default=None, help="keep only this many lines per event file (default: all)")
    ap.add_argument("--cut-run", action="store_true", help="stage A serves one run cut mid-file (exposes the in-progress run defect)")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--work", type=Path, default=None, help="work folder (default: a new temp folder)")
    ap.add_argument("--keep", action="store_true", help="keep the work folder")
    args = ap.parse_args(argv)
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    rng = random.Random(seed)
    work = args.work or Path(tempfile.mkdtemp(prefix="grpo-crash-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"seed {seed}, work folder {work}", flush=True)
    t_start = time.monotonic()
    demo = generate_sources(work / "demo")
    trials: list[Trial] = []

    def report(t: Trial) -> None:
        trials.append(t)
        mark = "ok " if t.survived else "FAIL"
        print(f"[{len(trials):4d}] {mark} {t.kind:<13} {t.stage:<8} {t.point:<44} {t.outcome:<9} {t.seen}  ({t.seconds:.1f}s)", flush=True)
        for p in t.problems:
            print(f"         {p}", flush=True)

    camp = Campaign(work, demo, seed=seed, event_lines=args.event_lines, cut_run=args.cut_run)
    try:
        camp.build_reference()
        print(f"reference: ingest A {camp.duration['A']:.2f}s, ingest B {camp.duration['B']:.2f}s", flush=True)
        n_publish = int(args.kills * args.publish_share)
        n_ingest = args.kills - n_publish
        hooks = [*INGEST_HOOKS, CLEANUP_HOOK]
        for i in range(n_ingest):
            if i < len(hooks):
                stage, label = hooks[i]
                pre = "commit.before_record" if (stage, label) == CLEANUP_HOOK else None
                report(camp.hook_trial(stage, label, pre_kill=pre))
            else:
                report(camp.timed_trial())
        if n_publish:
            for t in publish_trials(camp.zygote, work, n_publish, rng):
                report(t)
    finally:
        camp.close()

    if args.cli_kills:
        inputs = Inputs(demo, work / "inputs", args.event_lines).stage("B")
        ref = work / "cli-reference"
        ref.mkdir(parents=True, exist_ok=True)
        code, _, err = grpo_ingest(ref, inputs, work / "dbt-target-ref")
        if code != 0:
            print(f"the uninterrupted `grpo ingest` failed ({code}):\n{err[-2000:]}")
            return 2
        # (phase, delay range, kill point): a lock phase or the dbt subprocess plus a random delay,
        # or a named kill point; "commit.after_record@1" is between the W&B and the events asset.
        plan = [
            ("ingest", (0.0, 1.0), None),
            (None, None, "commit.after_record@1"),
            ("dbt build", (0.5, 10.0), None),
            (None, None, "publish.copying@12"),
            ("publish snapshot", (0.0, 0.5), None),
            (None, None, "publish.before_rename"),
        ]
        for i in range(args.cli_kills):
            phase, window, kill_at = plan[i % len(plan)]
            delay = rng.uniform(*window) if window else 0.0
            report(cli_trial(work, inputs, ref, phase, delay, i + 1, kill_at=kill_at))

    print()
    print(summarize(trials))
    print(f"took {time.monotonic() - t_start:.0f}s")
    failed = [t for t in trials if not t.survived]
    if not args.keep and not failed:
        shutil.rmtree(work, ignore_errors=True)
    elif failed:
        print(f"work folder kept for inspection: {work}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
