"""A run resumed after a preemption is one run: every segment is read and merged.

Runs are written by the real `wandb` library offline, each segment with
`wandb.init(id=RUN_ID, resume="allow")`, so every segment has its own run
folder and `.wandb` file. Expected values come from what the specs logged
(a step logged by two segments takes the later segment's values), never from
the reader.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pytest

from pipelines.ingest.ingest_sources import ingest
from pipelines.raw.layer import Warehouse
from pipelines.raw.schemas import HISTORY, HISTORY_OTHER, RESTATED
from pipelines.sources.wandb_local import LocalRunSource
from tests.fakes.wandb_server import FakeRun, FakeWandbServer
from tests.wandb_fixtures import record_spans, write_runs

RESUMED, REWOUND, RESTARTED = "resumd01", "rewind01", "restrt01"
PAUSE_S = 1.2  # wandb names a run folder by the second it starts in


def segment_steps(lo: int, hi: int, seed: int) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    steps = []
    for s in range(lo, hi):
        data: dict[str, Any] = {"train/kl": float(rng.exponential(0.05)), "train/grad_norm": float(rng.lognormal())}
        if s % 10 == 0:
            data["elo/base_model"] = round(1000.0 - s / 2 + float(rng.normal(0, 5)), 2)
            data["elo/chaos_bot"] = round(900.0 - s / 4 + float(rng.normal(0, 5)), 2)
        if s % 20 == 0:
            data["phase"] = f"segment seeded {seed}"
        steps.append({"step": s, "data": data})
    return steps


def segment(run_id: str, name: str, folder: Path, lo: int, hi: int, seed: int, config: dict, exit_code: int, **extra):
    return {
        "dir": str(folder),
        "init": {"id": run_id, "resume": "allow", "project": "grpo-test", "name": name, "group": "resume-tests",
                 "config": config},
        "steps": segment_steps(lo, hi, seed),
        "exit_code": exit_code,
        "pause_s": PAUSE_S,
        **extra,
    }  # fmt: skip


@dataclass(frozen=True)
class League:
    dir_a: Path  # segments 1 and 2 of the resumed run, both segments of the others
    dir_b: Path  # segment 3 of the resumed run
    specs: dict[str, list[dict[str, Any]]]  # run id -> its segments' specs, in the order they ran

    def files(self, run_id: str) -> list[Path]:
        """The run's segment files, oldest first (folder names start with the second the segment began)."""
        found = [*self.dir_a.glob(f"wandb/offline-run-*-{run_id}/run-{run_id}.wandb"),
                 *self.dir_b.glob(f"wandb/offline-run-*-{run_id}/run-{run_id}.wandb")]  # fmt: skip
        return sorted(found, key=lambda p: p.parent.name)

    def expected(self, run_id: str) -> tuple[dict[tuple[int, str], float], dict[tuple[int, str], Any]]:
        """(numeric, other) values per (step, key): each step as the last segment that logged it logged it."""
        by_step: dict[int, dict[str, Any]] = {}
        for spec in self.specs[run_id]:
            for row in spec["steps"]:
                by_step[row["step"]] = row["data"]
        numeric, other = {}, {}
        for step, data in by_step.items():
            for key, value in data.items():
                (numeric if isinstance(value, (int, float)) else other)[(step, key)] = value
        return numeric, other


@pytest.fixture(scope="module")
def league(tmp_path_factory) -> League:
    root = tmp_path_factory.mktemp("resumed")
    a, b = root / "node-a", root / "node-b"
    base = {"lr": 1e-6, "kl_coef": 0.05}
    specs = {
        RESUMED: [
            segment(RESUMED, "resumed-run", a, 0, 60, 1, base, 143, summary={"best_reward": 0.4}),
            segment(RESUMED, "resumed-run", a, 60, 130, 2, {**base, "lr": 5e-7, "resumed_at": 60}, 143),
            segment(RESUMED, "resumed-run", b, 130, 200, 3, {**base, "lr": 5e-7, "resumed_at": 130}, 0,
                    summary={"final_reward": 0.7}),
        ],
        # preempted at step 79, resumed from the checkpoint of step 60: steps 60-79 are logged twice
        REWOUND: [
            segment(REWOUND, "rewound-run", a, 0, 80, 4, base, 143),
            segment(REWOUND, "rewound-run", a, 60, 140, 5, base, 0),
        ],
        # resumed offline without step=: the second segment starts again at step 0
        RESTARTED: [
            segment(RESTARTED, "restarted-run", a, 0, 10, 6, base, 143),
            segment(RESTARTED, "restarted-run", a, 0, 10, 7, base, 0),
        ],
    }  # fmt: skip
    write_runs([s for segs in specs.values() for s in segs], root / "work")
    league = League(a, b, specs)
    for run_id, segs in specs.items():
        assert len(league.files(run_id)) == len(segs), f"wandb wrote one file per segment of {run_id}"
    return league


def history_dict(table) -> dict[tuple[int, str], float]:
    out = {}
    for step, key, value in zip(*(table.column(c).to_pylist() for c in ("step", "key", "value"))):
        assert (step, key) not in out, f"step {step} {key} twice"
        out[(step, key)] = value
    return out


def other_dict(table) -> dict[tuple[int, str], Any]:
    return {
        (s, k): json.loads(v) for s, k, v in zip(*(table.column(c).to_pylist() for c in ("step", "key", "value_json")))
    }


def read(dirs: list[Path], run_id: str, after_step: int | None = None):
    source = LocalRunSource(dirs)
    (ref,) = [r for r in source.runs() if r.run_id == run_id]
    return ref, source.read(ref, after_step)


# --- reading -----------------------------------------------------------------------


def test_every_segment_of_a_resumed_run_is_read_as_one_run(league: League) -> None:
    ref, got = read([league.dir_a, league.dir_b], RESUMED)
    numeric, other = league.expected(RESUMED)
    assert history_dict(got.history) == numeric
    assert len({s for s, _ in numeric}) == 200
    assert other_dict(got.other) == other
    meta = got.meta
    assert meta.last_step == 199
    assert (meta.state, meta.exit_code) == ("finished", 0)  # the last segment's
    assert meta.config == {"lr": 5e-7, "kl_coef": 0.05, "resumed_at": 130}  # folded, later keys win
    assert meta.summary["best_reward"] == 0.4 and meta.summary["final_reward"] == 0.7
    assert meta.summary["train/kl"] == league.specs[RESUMED][-1]["steps"][-1]["data"]["train/kl"]
    assert meta.source.split(" + ") == [str(p) for p in league.files(RESUMED)]
    assert got.warnings == []
    assert "2 earlier segment" in ref.label


def test_the_order_of_dirs_and_the_latest_run_link_change_nothing(league: League) -> None:
    latest = league.dir_a / "wandb" / "latest-run"
    assert latest.is_symlink()
    _, one_way = read([league.dir_a, league.dir_b], RESUMED)
    _, other_way = read([league.dir_b, latest, league.dir_a / "wandb"], RESUMED)
    assert history_dict(other_way.history) == history_dict(one_way.history)
    assert other_way.meta == one_way.meta


def test_a_copy_of_a_segment_counts_once_with_a_warning(league: League, tmp_path: Path) -> None:
    second = league.files(RESUMED)[1]
    copy = tmp_path / "backup" / "wandb" / second.parent.name / second.name
    copy.parent.mkdir(parents=True)
    shutil.copyfile(second, copy)
    _, got = read([league.dir_a, league.dir_b, tmp_path / "backup"], RESUMED)
    assert history_dict(got.history) == league.expected(RESUMED)[0]
    assert any("copies of one segment" in w and str(copy) in w for w in got.warnings), got.warnings


def test_segments_that_log_the_same_steps_keep_the_later_values_and_say_so(league: League) -> None:
    _, got = read([league.dir_a], REWOUND)
    assert history_dict(got.history) == league.expected(REWOUND)[0]
    first, second = league.files(REWOUND)
    (warning,) = got.warnings
    assert "steps 60-79 (20 steps)" in warning and str(first) in warning and str(second) in warning
    assert "later segment" in warning


def test_a_segment_that_starts_again_at_step_0_is_named_as_such(league: League) -> None:
    _, got = read([league.dir_a], RESTARTED)
    assert history_dict(got.history) == league.expected(RESTARTED)[0]
    assert any("starts again at step 0" in w for w in got.warnings), got.warnings


# --- incremental ingest --------------------------------------------------------------


def mid_history_cut(data: bytes) -> int:
    """A byte offset inside the middle history record: the file as wandb has written it part way."""
    from wandb.proto.wandb_internal_pb2 import Record

    history = [s for s in record_spans(data) if Record.FromString(s.payload).WhichOneof("record_type") == "history"]
    middle = history[len(history) // 2]
    return (middle.start + middle.end) // 2


def serve(league: League, folder: Path, files: list[Path], cut: Path | None = None) -> Path:
    """The given segment files laid out as wandb lays them out, in one folder; `cut` still being written."""
    shutil.rmtree(folder, ignore_errors=True)
    for src in files:
        dst = folder / "wandb" / src.parent.name / src.name
        dst.parent.mkdir(parents=True)
        data = src.read_bytes()
        dst.write_bytes(data[: mid_history_cut(data)] if src == cut else data)
    return folder


def effective_history(root: Path) -> dict[str, dict[tuple[int, str], float]]:
    """The history a reader should see: stored rows, less those of steps a later batch restated."""
    wh = Warehouse(root)
    files = {t: [str(f) for f in wh.committed_files(t)] for t in (HISTORY, RESTATED)}
    con = duckdb.connect()
    restated = (
        con.sql("select run_id, step, batch_id from read_parquet($f)", params={"f": files[RESTATED]}).fetchall()
        if files[RESTATED] else []
    )  # fmt: skip
    newest = {}
    for run_id, step, batch in restated:
        newest[(run_id, step)] = max(batch, newest.get((run_id, step), ""))
    out: dict[str, dict[tuple[int, str], float]] = {}
    for run_id, step, key, value, batch in con.sql(
        "select run_id, step, key, value, batch_id from read_parquet($f)", params={"f": files[HISTORY]}
    ).fetchall():
        if (run_id, step) in newest and batch < newest[(run_id, step)]:
            continue
        rows = out.setdefault(run_id, {})
        assert (step, key) not in rows, f"{run_id} step {step} {key} stored twice without a restatement"
        rows[(step, key)] = value
    return out


def same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(
        (math.isnan(a[k]) and math.isnan(b[k])) if isinstance(a[k], float) and math.isnan(a[k]) else a[k] == b[k]
        for k in a
    )


def test_segments_arriving_one_by_one_add_only_their_new_steps_and_end_as_one_run(
    league: League, tmp_path: Path
) -> None:
    res, rew = league.files(RESUMED), league.files(REWOUND)
    served, wh = tmp_path / "served", Warehouse(tmp_path / "wh")
    expected = {run_id: league.expected(run_id)[0] for run_id in (RESUMED, REWOUND)}

    def n_steps(spec) -> int:
        return sum(sum(isinstance(v, float) for v in row["data"].values()) for row in spec["steps"])

    serve(league, served, [res[0], rew[0]])
    first = ingest(wh, [LocalRunSource([served])], [])
    assert first.new_history_rows == n_steps(league.specs[RESUMED][0]) + n_steps(league.specs[REWOUND][0])
    assert first.new_runs == 2

    # the second segments appear: only the resumed run's new steps; the rewound run's 80 steps, 20 of them restated
    serve(league, served, [res[0], res[1], rew[0], rew[1]])
    second = ingest(wh, [LocalRunSource([served])], [])
    assert second.new_history_rows == n_steps(league.specs[RESUMED][1]) + n_steps(league.specs[REWOUND][1])
    assert second.restated_steps == 20
    assert any("steps 60-79 (20 steps) were stored" in w for w in second.warnings), second.warnings
    assert effective_history(wh.root)[REWOUND] == expected[REWOUND]

    again = ingest(wh, [LocalRunSource([served])], [])
    assert (again.new_history_rows, again.restated_steps, again.batch_id) == (0, 0, None)

    # the third segment, still being written, then whole
    serve(league, served, [*res, *rew], cut=res[2])
    cut = ingest(wh, [LocalRunSource([served])], [])
    assert 0 < cut.new_history_rows < n_steps(league.specs[RESUMED][2]) and cut.restated_steps == 0
    serve(league, served, [*res, *rew])
    whole = ingest(wh, [LocalRunSource([served])], [])
    assert cut.new_history_rows + whole.new_history_rows == n_steps(league.specs[RESUMED][2])
    assert ingest(wh, [LocalRunSource([served])], []).new_history_rows == 0

    stored = effective_history(wh.root)
    assert same(stored[RESUMED], expected[RESUMED]) and same(stored[REWOUND], expected[REWOUND])
    # a warehouse that read every segment at once holds the same history
    fresh = Warehouse(tmp_path / "fresh")
    ingest(fresh, [LocalRunSource([served])], [])
    assert effective_history(fresh.root) == stored
    other = [str(f) for f in wh.committed_files(HISTORY_OTHER)]
    phases = (
        duckdb.connect()
        .sql("select count(*) from read_parquet($f) where run_id = $r", params={"f": other, "r": RESUMED})
        .fetchall()[0][0]
    )
    assert phases == len(league.expected(RESUMED)[1])


# --- through grpo ingest: the marts, the answers, the warnings ------------------------------

GRPO = str(Path(sys.executable).with_name("grpo"))
KEY = "local-" + "r" * 40
# Marts built from the history; columns that depend on when or how a value arrived are left out.
HISTORY_MARTS = {
    "fct_metric_summaries": ["run_id", "metric_key"],
    "fct_elo_trajectory": ["run_id", "player", "step"],
    "fct_training_stability": ["run_id"],
    "fct_reference_trends": ["run_id", "player"],
    "fct_learning_verdicts": ["run_id"],
}
ARRIVAL_COLUMNS = {"wall_time", "started_at", "source", "ingested_at", "batch_id", "last_seen_at", "state", "runtime_s"}


def grpo(wh: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    full = {**os.environ, "GRPO_WAREHOUSE": str(wh), "COLUMNS": "250", **(env or {})}
    proc = subprocess.run([GRPO, *args], capture_output=True, text=True, env=full, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def mart_rows(wh: Path, table: str, key: list[str]) -> tuple[list[str], list[tuple]]:
    con = duckdb.connect(str(wh / "grpo.duckdb"), read_only=True)
    try:
        cols = [
            c
            for (c,) in con.execute(f"select column_name from (describe {table})").fetchall()
            if c not in ARRIVAL_COLUMNS
        ]
        rows = con.execute(f"select {', '.join(cols)} from {table} order by {', '.join(key)}").fetchall()
        return cols, rows
    finally:
        con.close()


def same_rows(a: list[tuple], b: list[tuple]) -> bool:
    def eq(x, y) -> bool:
        if isinstance(x, float) and isinstance(y, float):
            return (math.isnan(x) and math.isnan(y)) or math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-9)
        if isinstance(x, (list, tuple)) and isinstance(y, (list, tuple)):
            return len(x) == len(y) and all(eq(p, q) for p, q in zip(x, y))
        return x == y

    return len(a) == len(b) and all(eq(r, s) for r, s in zip(a, b))


@pytest.fixture(scope="module")
def built(league: League, tmp_path_factory) -> dict[str, Any]:
    """Warehouses built by `grpo ingest`: segments arriving in two syncs, and all of them in one."""
    root = tmp_path_factory.mktemp("resumed_built")
    served = root / "served"
    res, rew = league.files(RESUMED), league.files(REWOUND)
    serve(league, served, [res[0], rew[0]])
    grpo(root / "staged", "ingest", "--wandb-dir", str(served), "--json")
    serve(league, served, [*res, *rew])
    staged_text = grpo(root / "staged", "ingest", "--wandb-dir", str(served)).stdout
    fresh = json.loads(grpo(root / "fresh", "ingest", "--wandb-dir", str(served), "--json").stdout)
    return {"staged": root / "staged", "fresh": root / "fresh", "staged_text": staged_text, "fresh_summary": fresh}


def test_a_run_resumed_twice_answers_from_its_whole_history(league: League, built) -> None:
    wh = built["staged"]
    metrics = json.loads(grpo(wh, "metrics", "-r", "resumed-run", "--all-metrics", "--json").stdout)
    numeric, _ = league.expected(RESUMED)
    by_key = {m["key"]: m for m in metrics["metrics"]}
    kl = sorted((s, v) for (s, k), v in numeric.items() if k == "train/kl")
    assert by_key["train/kl"]["count"] == len(kl) == 200
    assert by_key["train/kl"]["first"] == pytest.approx(kl[0][1]) and by_key["train/kl"]["last"] == pytest.approx(
        kl[-1][1]
    )
    elo = json.loads(grpo(wh, "elo", "resumed-run", "--json").stdout)
    base = next(r for r in elo["references"] if r["player"] == "base_model")
    logged = sorted((s, v) for (s, k), v in numeric.items() if k == "elo/base_model")
    assert base["n_points"] == len(logged) == 20
    assert base["delta"] == pytest.approx(logged[-1][1] - logged[0][1], abs=0.011)


def test_two_syncs_build_the_same_marts_as_one_sync_of_every_segment(built) -> None:
    for table, key in HISTORY_MARTS.items():
        cols, staged = mart_rows(built["staged"], table, key)
        _, fresh = mart_rows(built["fresh"], table, key)
        assert same_rows(staged, fresh), f"{table} ({cols}) differs:\n{staged[:3]}\n{fresh[:3]}"


def test_what_the_reader_decided_is_printed_and_listed_in_the_json_summary(built) -> None:
    text = " ".join(built["staged_text"].split())  # rich wraps long lines
    assert "warning(s) while reading the sources" in text
    assert "steps 60-79 (20 steps) were stored from an earlier segment" in text
    warnings = built["fresh_summary"]["warnings"]
    assert any(REWOUND in w and "steps 60-79 (20 steps) are in two segments" in w for w in warnings), warnings


def test_the_w_and_b_api_and_the_local_segments_give_the_same_marts(league: League, built, tmp_path: Path) -> None:
    """W&B itself holds a resumed run as one run with every step: served so, it must build what the segments build."""
    numeric, other = league.expected(RESUMED)
    rows: dict[int, dict[str, Any]] = {}
    for (step, key), value in [*numeric.items(), *other.items()]:
        rows.setdefault(step, {"_step": step, "_timestamp": 1_767_225_600.0 + step, "_runtime": float(step)})[key] = (
            value
        )
    _, local = read([league.dir_a, league.dir_b], RESUMED)
    server = FakeWandbServer(api_key=KEY, entity="ent").start()
    try:
        server.add_run("grpo", FakeRun(RESUMED, display_name="resumed-run", group="resume-tests", config=local.meta.config,
                                       summary=dict(local.meta.summary), history=[rows[s] for s in sorted(rows)],
                                       exported_rows=120))  # fmt: skip
        env = {"WANDB_API_KEY": KEY, "WANDB_BASE_URL": server.url, "WANDB_CACHE_DIR": str(tmp_path / "wandb-cache"),
               "WANDB_CONFIG_DIR": str(tmp_path / "wandb-config")}  # fmt: skip
        grpo(tmp_path / "api", "ingest", "--wandb-project", "ent/grpo", "--json", env=env)
    finally:
        server.stop()
    for table, key in HISTORY_MARTS.items():
        cols, from_api = mart_rows(tmp_path / "api", table, key)
        _, from_files = mart_rows(built["fresh"], table, key)
        from_files = [r for r in from_files if r[cols.index("run_id")] == RESUMED]
        assert from_api and same_rows(from_api, from_files), (
            f"{table} ({cols}) differs:\n{from_api[:3]}\n{from_files[:3]}"
        )


def test_an_older_segment_that_grows_after_a_newer_one_was_stored_loses_no_step(league: League, tmp_path: Path) -> None:
    """Files copied out of order: segment 1 arrives half-written next to a whole segment 2, then whole."""
    res = league.files(RESUMED)
    served, wh = tmp_path / "served", Warehouse(tmp_path / "wh")
    serve(league, served, [res[0], res[1]], cut=res[0])
    ingest(wh, [LocalRunSource([served])], [])
    serve(league, served, [res[0], res[1]])
    grown = ingest(wh, [LocalRunSource([served])], [])
    assert grown.new_history_rows > 0
    spec = {**league.specs, RESUMED: league.specs[RESUMED][:2]}
    expected = League(league.dir_a, league.dir_b, spec).expected(RESUMED)[0]
    assert same(effective_history(wh.root)[RESUMED], expected)
