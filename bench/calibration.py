#!/usr/bin/env python
"""Calibration of the learning verdict: simulated runs with a known truth through the real dbt models.

    uv run python bench/calibration.py --out calibration.json           # the full grid, 200 runs a cell
    uv run python bench/calibration.py --runs 400 --out calibration.json
    uv run python bench/calibration.py --textbook      # the textbook interval, for comparison
    uv run python bench/calibration.py --sweeps --out sweep_ties.json   # the sweep tie rule

Every simulated run is a league's Elo log as a trainer writes it (`elo/base_model`,
`elo/chaos_bot`, `elo/ckpt_<step>` at each evaluation), stored as raw history rows
exactly as the ingest stores them, then built by `dbt build` (the same models,
macros and vars as a real warehouse) and read back from `fct_learning_verdicts` and
`fct_gap_trends`. The rating noise of every player is AR(1), as an online rating's
is (each update starts from the previous rating), with lag-1 correlation phi and
standard deviation sd.

Cells: phi in {0, 0.5, 0.8, 0.95} x sd in {10, 25} x {16, 40} evaluations, and per
cell
* flat runs (nobody changes strength) with 1, 5, 10 or 20 equally strong
  checkpoints: the share called `learning` is the false-positive rate, the share
  whose gap is `growing` the gap's bias;
* learning runs (base_model falls 150 Elo over the run, chaos_bot 90, each new
  checkpoint stronger than the last by as much): the share called `learning` is
  the power.
Shares come with Wilson 95 % intervals. Targets (issue #9 of this project): false
`learning` <= 5 % with the interval's upper bound <= 8 % for phi <= 0.8; power >= 80 %
for base_model falling 150 Elo over 16 evaluations at phi 0.8, sd 25; equally strong
checkpoints `growing` <= 5 %.

`--sweeps` calibrates the sweep ranking's tie rule instead: sweeps of 3, 6 or 10
runs of exactly equal strength (flat leagues as above, 5 checkpoints each),
built up to `fct_sweep_rankings`; a sweep in which any pair of runs is *not* a
tie has a false separation. Target: at most 5 % of sweeps (family-wise), upper
bound of the interval at most 8 %, for phi <= 0.8.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute

PROJECT_ROOT = Path(__file__).resolve().parent.parent
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

from pipelines.raw.layer import Warehouse  # noqa: E402
from pipelines.raw.schemas import HISTORY, RUNS, SCHEMAS  # noqa: E402

PHIS = (0.0, 0.5, 0.8, 0.95)
SDS = (10.0, 25.0)
N_EVALS = (16, 40)
FLAT_CHECKPOINTS = (1, 5, 10, 20)
LEARNING_CHECKPOINTS = 5
EVAL_EVERY = 25  # training steps between evaluations
BASE_DROP = 150.0  # Elo base_model loses over a learning run
T0 = dt.datetime(2026, 1, 5, tzinfo=dt.UTC)
TARGETS = {"false_learning_max": 0.05, "false_learning_upper_max": 0.08, "power_min": 0.80, "gap_growing_max": 0.05}


@dataclass(frozen=True)
class Cell:
    kind: str  # flat | learning
    phi: float
    sd: float
    n_evals: int
    checkpoints: int

    @property
    def name(self) -> str:
        return f"{self.kind}-phi{self.phi:g}-sd{self.sd:g}-n{self.n_evals}-k{self.checkpoints}"


def grid(phis=PHIS, sds=SDS, n_evals=N_EVALS, flat_checkpoints=FLAT_CHECKPOINTS) -> list[Cell]:
    cells = []
    for phi in phis:
        for sd in sds:
            for n in n_evals:
                cells += [Cell("flat", phi, sd, n, k) for k in flat_checkpoints]
                cells.append(Cell("learning", phi, sd, n, LEARNING_CHECKPOINTS))
    return cells


def ar1(rng: np.random.Generator, n: int, phi: float, sd: float) -> np.ndarray:
    """Stationary AR(1) noise with lag-1 correlation phi and standard deviation sd."""
    out = np.empty(n)
    out[0] = rng.normal(0.0, sd)
    eps = rng.normal(0.0, sd * np.sqrt(1.0 - phi * phi), n)
    for i in range(1, n):
        out[i] = phi * out[i - 1] + eps[i]
    return out


def simulate_run(cell: Cell, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """player -> Elo at each evaluation (NaN before a checkpoint exists)."""
    n = cell.n_evals
    progress = np.arange(n) / (n - 1)
    drop = BASE_DROP if cell.kind == "learning" else 0.0
    elo = {
        "base_model": 1000.0 - drop * progress + ar1(rng, n, cell.phi, cell.sd),
        "chaos_bot": 800.0 - 0.6 * drop * progress + ar1(rng, n, cell.phi, cell.sd),
    }
    # checkpoints enter at evenly spaced evaluations after the first; each is rated from then on
    entries = np.unique(np.linspace(1, n - 1, cell.checkpoints).round().astype(int))
    for entry in entries:
        values = np.full(n, np.nan)
        strength = 1000.0 + drop * entry / (n - 1)  # equally strong when flat
        values[entry:] = strength + ar1(rng, n - entry, cell.phi, cell.sd)
        elo[f"ckpt_{int(entry * EVAL_EVERY)}"] = values
    return elo


def raw_rows(cells: list[Cell], runs: int, seed: int) -> tuple[list[dict], pa.Table, dict[str, Cell]]:
    """(run meta rows, history rows, run id -> cell) for `runs` runs of every cell."""
    rng = np.random.default_rng(seed)
    metas, cell_of = [], {}
    cols: dict[str, list] = {"run_id": [], "step": [], "wall_time": [], "key": [], "value": []}
    for c, cell in enumerate(cells):
        for r in range(runs):
            run_id = f"c{c:03d}r{r:04d}"
            cell_of[run_id] = cell
            elo = simulate_run(cell, rng)
            steps = np.arange(cell.n_evals) * EVAL_EVERY
            for player, values in elo.items():
                ok = ~np.isnan(values)
                k = int(ok.sum())
                cols["run_id"] += [run_id] * k
                cols["step"] += steps[ok].tolist()
                cols["wall_time"] += [T0 + dt.timedelta(seconds=int(s)) for s in steps[ok]]
                cols["key"] += [f"elo/{player}"] * k
                cols["value"] += values[ok].tolist()
            metas.append({
                "run_id": run_id, "run_name": f"{cell.name}-{r}", "project": "calibration", "entity": "bench",
                "run_group": cell.name, "job_type": "train", "sweep_id": None, "tags": [], "notes": None,
                "host": None, "config_json": json.dumps(asdict(cell)), "summary_json": "{}", "state": "finished",
                "exit_code": 0, "started_at": T0, "runtime_s": 1.0, "last_step": int(steps[-1]), "source": "calibration",
                "fingerprint": run_id,
            })  # fmt: skip
    schema = pa.schema([f for f in SCHEMAS[HISTORY] if f.name != "batch_id"])
    return metas, pa.table(cols, schema=schema), cell_of


def build(
    root: Path,
    metas: list[dict],
    history: pa.Table,
    dbt_vars: dict[str, Any] | None = None,
    select: str = "+fct_learning_verdicts",
) -> float:
    """Store the rows as one raw batch and run the real dbt build of the learning marts; returns seconds."""
    wh = Warehouse(root).ensure()
    batch = wh.batch()
    batch.write(
        RUNS,
        pa.Table.from_pylist(
            metas, schema=pa.schema([f for f in SCHEMAS[RUNS] if f.name not in ("batch_id", "ingested_at")])
        ),
    )
    batch.write(HISTORY, history)
    batch.commit()
    dbt = str(Path(sys.executable).with_name("dbt"))
    target = root / "dbt_target"
    env = {**os.environ, "GRPO_WAREHOUSE": str(root), "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
    t0 = time.perf_counter()
    proc = subprocess.run(
        [dbt, "build", "--project-dir", str(PROJECT_ROOT), "--profiles-dir", str(PROJECT_ROOT),
         "--target-path", str(target), "--log-path", str(target / "logs"),
         "--select", select, "--exclude", "test_type:unit",
         *(["--vars", json.dumps(dbt_vars)] if dbt_vars else [])],
        env=env, cwd=PROJECT_ROOT, capture_output=True, text=True,
    )  # fmt: skip
    if proc.returncode != 0:
        raise RuntimeError(f"dbt build failed:\n{proc.stdout[-6000:]}\n{proc.stderr[-2000:]}")
    return time.perf_counter() - t0


def wilson(successes: int, n: int) -> list[float]:
    """Wilson score 95 % interval of a binomial share."""
    from scipy import stats

    return [float(x) for x in stats.binomtest(successes, n).proportion_ci(0.95, method="wilson")]


SWEEP_SIZES = (3, 6, 10)


@dataclass(frozen=True)
class SweepCell:
    phi: float
    sd: float
    n_evals: int
    size: int
    winner: bool = False  # one run learns (its final gap ~300 Elo above the others'), the rest are flat

    @property
    def name(self) -> str:
        return f"sweep-{'winner' if self.winner else 'equal'}-phi{self.phi:g}-sd{self.sd:g}-n{self.n_evals}-runs{self.size}"


def sweep_grid(phis=(0.0, 0.5, 0.8, 0.95), sds=(25.0,), n_evals=(16,), sizes=SWEEP_SIZES) -> list[SweepCell]:
    return [
        SweepCell(phi, sd, n, k, w) for w in (False, True) for phi in phis for sd in sds for n in n_evals for k in sizes
    ]


def sweep_rows(cells: list[SweepCell], sweeps: int, seed: int) -> tuple[list[dict], pa.Table, dict[str, SweepCell]]:
    """`sweeps` sweeps of every cell, each of `size` equally strong flat runs (one run group per sweep)."""
    metas: list[dict] = []
    history: list[pa.Table] = []
    sweep_cell: dict[str, SweepCell] = {}
    rng_seed = seed
    for c, cell in enumerate(cells):
        flat = Cell("flat", cell.phi, cell.sd, cell.n_evals, LEARNING_CHECKPOINTS)
        learning = Cell("learning", cell.phi, cell.sd, cell.n_evals, LEARNING_CHECKPOINTS)
        for w in range(sweeps):
            group = f"s{c:02d}w{w:04d}"
            sweep_cell[group] = cell
            if cell.winner:  # run 0 learns, the others are flat
                m1, h1, _ = raw_rows([learning], 1, rng_seed)
                m2, h2, _ = raw_rows([flat], cell.size - 1, rng_seed + 10_000_000)
                m2 = [{**meta, "run_id": meta["run_id"] + "f"} for meta in m2]
                h2 = h2.set_column(0, "run_id", pa.compute.binary_join_element_wise(h2["run_id"], pa.scalar("f"), ""))
                m, h = m1 + m2, pa.concat_tables([h1, h2])
            else:
                m, h, _ = raw_rows([flat], cell.size, rng_seed)
            rng_seed += 1
            renamed = {}
            for k, meta in enumerate(m):
                renamed[meta["run_id"]] = f"{group}r{k:02d}"
                meta.update(run_id=f"{group}r{k:02d}", run_name=f"{group}-{k}", run_group=group, fingerprint=f"{group}r{k:02d}",
                            config_json=json.dumps({"run": k}))  # fmt: skip
            history.append(h.set_column(0, "run_id", pa.array([renamed[r] for r in h["run_id"].to_pylist()])))
            metas += m
    return metas, pa.concat_tables(history), sweep_cell


def read_sweep_outcomes(root: Path, sweep_cell: dict[str, SweepCell]) -> list[dict[str, Any]]:
    import duckdb

    con = duckdb.connect(str(Warehouse(root).build_db), read_only=True)
    try:
        apart = dict(con.execute(
            "select sweep_key, bool_or(len(tied_with) < count_with_gap - 1) from ("
            " select sweep_key, tied_with, count(gap_final) over (partition by sweep_key) as count_with_gap"
            " from fct_sweep_rankings where gap_final is not null) group by sweep_key"
        ).fetchall())  # fmt: skip
        # the learning run (the sweep's run 00) ranked first and tied with nobody
        found = dict(con.execute(
            "select sweep_key, bool_or(rank = 1 and len(tied_with) = 0 and run_id like '%r00')"
            " from fct_sweep_rankings group by sweep_key"
        ).fetchall())  # fmt: skip
    finally:
        con.close()
    by_cell: dict[SweepCell, list[str]] = {}
    for group, cell in sweep_cell.items():
        by_cell.setdefault(cell, []).append(group)
    out = []
    for cell, groups in by_cell.items():
        n = len(groups)
        if cell.winner:
            hits = sum(bool(found.get(g)) for g in groups)
            out.append({**asdict(cell), "cell": cell.name, "sweeps": n,
                        "winner_found_share": hits / n, "winner_found_ci95": wilson(hits, n)})  # fmt: skip
            continue
        separated = sum(bool(apart.get(g)) for g in groups)
        out.append({**asdict(cell), "cell": cell.name, "sweeps": n,
                    "false_separation_share": separated / n, "false_separation_ci95": wilson(separated, n)})  # fmt: skip
    return sorted(out, key=lambda c: (c["winner"], c["phi"], c["sd"], c["n_evals"], c["size"]))


def calibrate_sweeps(cells: list[SweepCell], sweeps: int, seed: int, workdir: Path) -> dict[str, Any]:
    """Simulate `sweeps` sweeps of equally strong runs per cell, build to fct_sweep_rankings, count false separations."""
    t0 = time.perf_counter()
    metas, history, sweep_cell = sweep_rows(cells, sweeps, seed)
    seconds_build = build(workdir, metas, history, select="+fct_sweep_rankings")
    outcomes = read_sweep_outcomes(workdir, sweep_cell)
    breaks = [
        c["cell"]
        for c in outcomes
        if not c["winner"]
        and c["phi"] <= 0.8
        and (
            c["false_separation_share"] > TARGETS["false_learning_max"]
            or c["false_separation_ci95"][1] > TARGETS["false_learning_upper_max"]
        )
    ]
    return {
        "sweeps_per_cell": sweeps, "seed": seed, "runs": len(metas), "history_rows": history.num_rows,
        "dbt_build_s": round(seconds_build, 1), "total_s": round(time.perf_counter() - t0, 1),
        "verdict": {"false_separation_max": TARGETS["false_learning_max"], "upper_max": TARGETS["false_learning_upper_max"],
                    "false_separation_ok": not breaks, "false_separation_breaks": breaks},
        "cells": outcomes,
    }  # fmt: skip


def read_outcomes(root: Path, cell_of: dict[str, Cell]) -> list[dict[str, Any]]:
    import duckdb

    con = duckdb.connect(str(Warehouse(root).build_db), read_only=True)
    try:
        verdicts = dict(con.execute("select run_id, verdict from fct_learning_verdicts").fetchall())
        gaps = dict(con.execute("select run_id, trend from fct_gap_trends").fetchall())
    finally:
        con.close()
    by_cell: dict[Cell, list[str]] = {}
    for run_id, cell in cell_of.items():
        by_cell.setdefault(cell, []).append(run_id)
    out = []
    for cell, ids in by_cell.items():
        n = len(ids)
        learning = sum(verdicts.get(r) == "learning" for r in ids)
        growing = sum(gaps.get(r) == "growing" for r in ids)
        out.append({
            **asdict(cell), "cell": cell.name, "runs": n,
            "learning_share": learning / n, "learning_ci95": wilson(learning, n),
            "gap_growing_share": growing / n, "gap_growing_ci95": wilson(growing, n),
        })  # fmt: skip
    return sorted(out, key=lambda c: (c["kind"], c["phi"], c["sd"], c["n_evals"], c["checkpoints"]))


def judge(cells: list[dict[str, Any]]) -> dict[str, Any]:
    """Which targets hold, and the cells that break them."""
    flat = [c for c in cells if c["kind"] == "flat" and c["phi"] <= 0.8]
    false_learning = [
        c["cell"]
        for c in flat
        if c["learning_share"] > TARGETS["false_learning_max"]
        or c["learning_ci95"][1] > TARGETS["false_learning_upper_max"]
    ]
    growing = [c["cell"] for c in flat if c["gap_growing_share"] > TARGETS["gap_growing_max"]]
    power_cells = [
        c for c in cells if c["kind"] == "learning" and c["phi"] == 0.8 and c["sd"] == 25.0 and c["n_evals"] == 16
    ]
    weak = [c["cell"] for c in power_cells if c["learning_share"] < TARGETS["power_min"]]
    return {
        "targets": TARGETS,
        "false_learning_ok": not false_learning, "false_learning_breaks": false_learning,
        "gap_growing_ok": not growing, "gap_growing_breaks": growing,
        "power_ok": bool(power_cells) and not weak, "power_breaks": weak,
    }  # fmt: skip


def calibrate(
    cells: list[Cell], runs: int, seed: int, workdir: Path, dbt_vars: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Simulate `runs` runs per cell, build them with the real models (vars overridden by `dbt_vars`), judge."""
    t0 = time.perf_counter()
    metas, history, cell_of = raw_rows(cells, runs, seed)
    seconds_build = build(workdir, metas, history, dbt_vars)
    outcomes = read_outcomes(workdir, cell_of)
    return {
        "runs_per_cell": runs, "seed": seed, "dbt_vars": dbt_vars or {}, "history_rows": history.num_rows, "runs": len(metas),
        "dbt_build_s": round(seconds_build, 1), "total_s": round(time.perf_counter() - t0, 1),
        "verdict": judge(outcomes), "cells": outcomes,
    }  # fmt: skip


def _table(result: dict[str, Any]) -> str:
    lines = [f"{'cell':34} {'runs':>5}  {'learning':>8} {'95 % CI':>15}  {'gap growing':>11} {'95 % CI':>15}"]
    for c in result["cells"]:
        lo, hi = c["learning_ci95"]
        glo, ghi = c["gap_growing_ci95"]
        lines.append(f"{c['cell']:34} {c['runs']:>5}  {c['learning_share']:8.1%} [{lo:5.1%}, {hi:5.1%}]  "
                     f"{c['gap_growing_share']:11.1%} [{glo:5.1%}, {ghi:5.1%}]")  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=200, help="simulated runs per cell (default 200)")
    ap.add_argument("--seed", type=int, default=20261206)
    ap.add_argument("--out", type=Path, help="write the result as JSON here")
    ap.add_argument(
        "--textbook",
        action="store_true",
        help="the textbook interval (independent noise, trend_autocorrelation false), for comparison",
    )
    ap.add_argument("--sweeps", action="store_true", help="calibrate the sweep ranking's tie rule instead")
    args = ap.parse_args(argv)
    if args.sweeps:
        with tempfile.TemporaryDirectory(prefix="grpo-calibration-") as tmp:
            result = calibrate_sweeps(sweep_grid(), args.runs, args.seed, Path(tmp))
        for c in result["cells"]:
            what = "winner_found" if c["winner"] else "false_separation"
            lo, hi = c[what + "_ci95"]
            print(f"{c['cell']:44} {c['sweeps']:>5}  {what:16} {c[what + '_share']:6.1%} [{lo:5.1%}, {hi:5.1%}]")
        print(json.dumps(result["verdict"], indent=2))
        if args.out:
            args.out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
        return 0 if result["verdict"]["false_separation_ok"] else 1
    overrides = {"trend_autocorrelation": False, "elo_noise_phi_floor": 0} if args.textbook else None
    with tempfile.TemporaryDirectory(prefix="grpo-calibration-") as tmp:
        result = calibrate(grid(), args.runs, args.seed, Path(tmp), overrides)
    print(_table(result))
    print(json.dumps(result["verdict"], indent=2))
    if args.out:
        args.out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    v = result["verdict"]
    return 0 if v["false_learning_ok"] and v["gap_growing_ok"] and v["power_ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
