"""The benchmark data set for a scale and seed: runs (`generate_runs`), events
(`generate_events`), CSV exports and the 1 % increment written under
`<workdir>/data-<scale>/` with a `manifest.json` written last and reused by a later run
with the same parameters, and the runs read back with the project's reader.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import shutil
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from bench.generate_events import event_files, write_events_job
from bench.generate_plan import SCALES, Scale, make_plan
from bench.generate_runs import (
    ENTITY,
    PROJECT,
    make_run,
    write_run_job,
    write_runs_export,
)

GENERATOR_VERSION = 3


# --- the whole data set ----------------------------------------------------------


@dataclass
class DataSet:
    root: Path
    scale: str
    seed: int
    t_end: float
    wandb_dir: Path
    events_dir: Path
    exports_dir: Path
    increment_wandb_dir: Path
    increment_events_dir: Path
    runs: list[dict[str, Any]]
    increment_runs: list[dict[str, Any]]
    history_points: int
    events: int
    events_by_kind: dict[str, int]
    increment_history_points: int
    increment_events: int
    wandb_bytes: int
    events_bytes: int
    seconds: dict[str, float]
    reused: bool = False

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        for k, v in d.items():
            if isinstance(v, Path):
                d[k] = str(v)
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> DataSet:
        d = dict(d)
        for k in ("root", "wandb_dir", "events_dir", "exports_dir", "increment_wandb_dir", "increment_events_dir"):
            d[k] = Path(d[k])
        return cls(**d)

    @property
    def t_end_iso(self) -> str:
        return dt.datetime.fromtimestamp(self.t_end, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _params(scale: Scale, seed: int) -> dict[str, Any]:
    return {"version": GENERATOR_VERSION, "scale": asdict(scale), "seed": seed}


def generate(
    root: Path,
    scale_name: str,
    *,
    seed: int = 7,
    workers: int = 2,
    reuse: bool = True,
    t_end: float | None = None,
    say: Callable[[str], None] = lambda _m: None,
) -> DataSet:
    """Write (or reuse) the data set for `scale_name` under `root`."""
    scale = SCALES[scale_name]
    root = Path(root).resolve()
    manifest = root / "manifest.json"
    if reuse and manifest.exists():
        saved = json.loads(manifest.read_text())
        if saved.get("params") == _params(scale, seed):
            data = DataSet.from_json(saved["data"])
            data.reused = True
            say(f"reusing the {scale_name} data set in {root} (generated {saved.get('generated_at')})")
            return data
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    if t_end is None:
        t_end = math.floor(time.time() / 3600) * 3600.0
    plan = make_plan(scale, seed, t_end)
    wandb_dir, events_dir, exports_dir = root / "wandb", root / "events", root / "exports"
    inc_wandb, inc_events = root / "increment" / "wandb", root / "increment" / "events"
    for d in (wandb_dir, events_dir, exports_dir / "history", inc_wandb, inc_events):
        d.mkdir(parents=True, exist_ok=True)
    seconds: dict[str, float] = {}
    # fork: workers inherit the imported modules (wandb's protobuf classes take seconds to import);
    # nothing here has started threads yet.
    ctx = get_context("fork" if os.name == "posix" else "spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        t0 = time.perf_counter()
        say(f"writing {len(plan.runs)} runs x {scale.steps} steps as .wandb files (+ CSV exports), {workers} workers")
        runs = list(
            pool.map(write_run_job, [(plan, r, str(wandb_dir), str(exports_dir / "history")) for r in plan.runs])
        )
        seconds["wandb"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        files = event_files(plan)
        say(f"writing ~{scale.events:,} events in {len(files)} daily NDJSON files")
        ev = list(pool.map(write_events_job, [(plan, f, str(events_dir)) for f in files]))
        seconds["events"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        inc_runs = list(pool.map(write_run_job, [(plan, r, str(inc_wandb), None) for r in plan.increment_runs]))
        inc_ev = list(
            pool.map(write_events_job, [(plan, f, str(inc_events)) for f in event_files(plan, increment=True)])
        )
        seconds["increment"] = time.perf_counter() - t0
    write_runs_export(exports_dir / "runs.csv", plan, runs)

    by_kind: dict[str, int] = {}
    for e in ev:
        for k, v in e["counts"].items():
            by_kind[k] = by_kind.get(k, 0) + v
    data = DataSet(
        root=root,
        scale=scale_name,
        seed=seed,
        t_end=t_end,
        wandb_dir=wandb_dir,
        events_dir=events_dir,
        exports_dir=exports_dir,
        increment_wandb_dir=inc_wandb,
        increment_events_dir=inc_events,
        runs=runs,
        increment_runs=inc_runs,
        history_points=sum(r["points"] for r in runs),
        events=sum(e["events"] for e in ev),
        events_by_kind=by_kind,
        increment_history_points=sum(r["points"] for r in inc_runs),
        increment_events=sum(e["events"] for e in inc_ev),
        wandb_bytes=sum(r["bytes"] for r in runs),
        events_bytes=sum(e["bytes"] for e in ev),
        seconds={k: round(v, 3) for k, v in seconds.items()},
    )
    manifest.write_text(
        json.dumps(
            {
                "params": _params(scale, seed),
                "generated_at": dt.datetime.now(dt.UTC).isoformat(),
                "data": data.to_json(),
            },
            indent=1,
        )
    )
    return data


# --- validation --------------------------------------------------------------------


def validate_against_reader(data: DataSet, max_runs: int | None = None) -> dict[str, Any]:
    """Read written runs back with the project's reader and compare with what was generated, exactly."""
    from pipelines.sources.wandb_segment_reader import read_run_file

    plan = make_plan(SCALES[data.scale], data.seed, data.t_end)
    checked, points = 0, 0
    for run, meta in list(zip(plan.runs, data.runs))[: max_runs or None]:
        g = make_run(plan, run)
        read = read_run_file(meta["path"])
        problems = list(read.warnings)
        m = read.meta
        want = {
            "run_id": run.run_id,
            "run_name": run.name,
            "run_group": run.group,
            "project": PROJECT,
            "entity": ENTITY,
            "job_type": "train",
            "last_step": run.steps,
            "state": "finished" if g.spec.exit_code == 0 else "crashed",
            "exit_code": g.spec.exit_code,
        }
        for k, v in want.items():
            if getattr(m, k) != v:
                problems.append(f"meta {k}: read {getattr(m, k)!r}, wrote {v!r}")
        if dict(m.config) != g.spec.config:
            problems.append("config differs")
        last = {k: float(v[~np.isnan(v)][-1]) for k, v in g.numeric.items()}
        for k, v in last.items():
            if m.summary.get(k) != v:
                problems.append(f"summary {k}: read {m.summary.get(k)!r}, wrote {v!r}")
        if m.summary.get("_step") != run.steps:
            problems.append("summary _step")
        h = read.history
        if read.other.num_rows:
            problems.append(f"{read.other.num_rows} non-numeric rows")
        keys = h.column("key").to_numpy(zero_copy_only=False)
        steps = h.column("step").to_numpy()
        values = h.column("value").to_numpy()
        wall = h.column("wall_time").cast(pa.int64()).to_numpy()
        expect_wall = np.rint(g.timestamp * 1e6).astype(np.int64)
        if len(keys) != sum(int(np.count_nonzero(~np.isnan(v))) for v in g.numeric.values()):
            problems.append(f"history rows: read {len(keys)}")
        for key, v in g.numeric.items():
            sel = keys == key
            logged = ~np.isnan(v)
            order = np.argsort(steps[sel], kind="stable")
            if not (
                np.array_equal(steps[sel][order], np.flatnonzero(logged) + 1)
                and np.array_equal(values[sel][order], v[logged])
                and np.array_equal(wall[sel][order], expect_wall[logged])
            ):
                problems.append(f"history {key} differs")
        if problems:
            raise AssertionError(f"{meta['path']}: the reader does not read back what was written: {problems[:10]}")
        checked += 1
        points += len(keys)
    return {"runs_checked": checked, "points_checked": points}
