"""Benchmark data: a league of GRPO runs as `.wandb` files, a year of Axiom-shaped NDJSON events,
the W&B-style CSV exports an analyst would load, and a 1 % increment for the refresh test.

Everything is deterministic in (scale, seed). The data is written once into
`<workdir>/data-<scale>/` with a `manifest.json` written last; a later run with
the same parameters reuses it (`generate(..., reuse=True)`).

Shapes follow pipelines/demo.py: runs log ~40 train metrics every step and
league Elo (`elo/base_model`, `elo/chaos_bot`, `elo/ckpt_<step>`) every
`EVAL_EVERY` steps; events are rollouts, inference requests, order
extraction, errors (one per failed rollout plus a few more) and component
heartbeats every 30 s.
"""

from __future__ import annotations

import datetime as dt
import hashlib
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
import pyarrow.compute as pc

from bench.wandb_writer import RunRows, RunSpec, json_ints, json_numbers, write_run

GENERATOR_VERSION = 3
PROJECT, ENTITY = "grpo-bench", "bench"
EVAL_EVERY = 50  # league evaluation, and checkpoint save, every this many steps
STEP_S = 26.0  # wall seconds per training step
LANES = 2  # runs training at the same time
RUNS_PER_SWEEP = 5
HEARTBEAT_EVERY_S = 30.0
COMPONENTS = (
    ("rollout-worker", "gpu-node-1", 38.0),
    ("reward-server", "gpu-node-4", 22.0),
    ("vllm-a", "gpu-node-2", 71.0),
    ("vllm-b", "gpu-node-3", 71.0),
)
ENGINES = ("vllm-a", "vllm-b")
WORKERS = tuple(f"worker-{i}" for i in range(8))
ROLLOUT_FAILURE_RATE = 0.004
# Shares of the per-run events (heartbeats are separate, every 30 s per component).
KIND_SHARE = {"rollout": 0.50, "inference": 0.33, "extraction": 0.165}
ERRORS = (
    ("rollout-worker", "ParseError", "could not parse orders from completion"),
    ("reward-server", "RewardTimeout", "reward request timed out after 30s"),
    ("inference", "RequestTimeout", "generation request timed out"),
    ("rollout-worker", "OutOfMemoryError", "CUDA out of memory while scoring group"),
)


@dataclass(frozen=True)
class Scale:
    name: str
    runs: int
    steps: int
    events: int
    runs_per_sweep: int = RUNS_PER_SWEEP


SCALES = {
    "tiny": Scale("tiny", runs=6, steps=300, events=20_000, runs_per_sweep=3),
    "medium": Scale("medium", runs=50, steps=5_000, events=5_000_000),
    "full": Scale("full", runs=500, steps=5_000, events=50_000_000),
}

# (name, base, trend over the run, noise sd, decimals or None for full precision, integer?)
TRAIN_METRICS: tuple[tuple[str, float, float, float, int | None, bool], ...] = (
    ("train/loss", 0.04, -0.03, 0.012, None, False),
    ("train/kl", 0.02, 0.03, 0.004, None, False),
    ("train/grad_norm", 3.0, -0.5, 0.6, None, False),
    ("train/reward_mean", 0.2, 0.3, 0.025, None, False),
    ("train/reward_std", 0.3, -0.05, 0.02, None, False),
    ("train/learning_rate", 0.0, 0.0, 0.0, None, False),  # filled from the schedule
    ("train/entropy", 1.2, -0.4, 0.05, None, False),
    ("train/clip_ratio", 0.02, 0.0, 0.005, None, False),
    ("train/completion_length_mean", 420.0, 60.0, 25.0, 2, False),
    ("train/completion_length_max", 1400.0, 200.0, 120.0, 0, True),
    ("train/completion_length_min", 60.0, 10.0, 12.0, 0, True),
    ("train/epoch", 0.0, 3.0, 0.0, 4, False),
    ("train/frac_reward_zero_std", 0.15, -0.1, 0.03, None, False),
    ("train/num_tokens", 2.4e5, 4e4, 1.5e4, 0, True),
    ("train/advantages_mean", 0.0, 0.0, 0.01, None, False),
    ("train/advantages_std", 0.95, 0.0, 0.03, None, False),
    ("train/ratio_mean", 1.0, 0.0, 0.002, None, False),
    ("train/ratio_max", 1.25, 0.0, 0.05, None, False),
    ("train/pg_loss", 0.01, -0.01, 0.01, None, False),
    ("train/kl_coef", 0.0, 0.0, 0.0, None, False),  # the run's kl_coef
    ("rewards/format_reward/mean", 0.8, 0.15, 0.03, None, False),
    ("rewards/format_reward/std", 0.2, -0.1, 0.02, None, False),
    ("rewards/orders_reward/mean", 0.3, 0.3, 0.03, None, False),
    ("rewards/orders_reward/std", 0.25, 0.0, 0.02, None, False),
    ("rewards/win_reward/mean", 0.1, 0.2, 0.03, None, False),
    ("rewards/win_reward/std", 0.3, 0.0, 0.02, None, False),
    ("rollout/duration_s", 40.0, 5.0, 6.0, 3, False),
    ("rollout/tokens_per_s", 1850.0, 50.0, 120.0, 1, False),
    ("rollout/batch_size", 64.0, 0.0, 0.0, 0, True),
    ("rollout/queue_s", 0.25, 0.0, 0.1, 3, False),
    ("rollout/error_rate", 0.004, 0.0, 0.002, 5, False),
    ("rollout/extraction_rate", 0.98, 0.01, 0.01, 5, False),
    ("perf/step_time_s", 26.0, 0.0, 1.5, 3, False),
    ("perf/gen_time_s", 17.0, 0.0, 1.2, 3, False),
    ("perf/train_time_s", 8.0, 0.0, 0.5, 3, False),
    ("perf/mfu", 0.38, 0.0, 0.02, 4, False),
    ("perf/gpu_mem_gb", 61.0, 2.0, 1.5, 2, False),
    ("perf/gpu_util", 82.0, 0.0, 6.0, 1, False),
    ("perf/samples_per_s", 2.46, 0.0, 0.1, 4, False),
)
FIXED_REFERENCES = ("base_model", "chaos_bot")


# --- the plan -------------------------------------------------------------------


def run_id_for(seed: int, index: int) -> str:
    digest = int.from_bytes(hashlib.sha256(f"grpo-bench:{seed}:{index}".encode()).digest()[:8], "big")
    chars = []
    for _ in range(8):
        digest, r = divmod(digest, 36)
        chars.append("0123456789abcdefghijklmnopqrstuvwxyz"[r])
    return "".join(chars)


@dataclass(frozen=True)
class PlannedRun:
    index: int
    run_id: str
    name: str
    group: str
    steps: int
    start: float  # epoch seconds
    increment: bool = False

    @property
    def end(self) -> float:
        return self.start + self.steps * STEP_S


@dataclass(frozen=True)
class Plan:
    scale: Scale
    seed: int
    t_end: float  # end of the base event window (epoch seconds, whole hour)
    t_start: float
    runs: tuple[PlannedRun, ...]
    increment_runs: tuple[PlannedRun, ...]
    increment_end: float

    @property
    def duration_s(self) -> float:
        return self.scale.steps * STEP_S


def make_plan(scale: Scale, seed: int, t_end: float) -> Plan:
    """Runs train two at a time, staggered by half a run, back to back until `t_end`."""
    d = scale.steps * STEP_S
    slots = math.ceil(scale.runs / LANES)
    span = (slots + 0.5) * d
    t_start = t_end - span
    runs = []
    for i in range(scale.runs):
        lane, slot = i % LANES, i // LANES
        g, k = divmod(i, scale.runs_per_sweep)
        runs.append(
            PlannedRun(i, run_id_for(seed, i), f"sweep-{g:03d}-{k + 1}", f"sweep-{g:03d}", scale.steps,
                       t_start + slot * d + lane * d / 2 + 60.0)
        )
    # The increment: 1 % more history points as new runs that start after t_end.
    n_inc = max(1, round(0.01 * scale.runs))
    inc_steps = max(1, round(0.01 * scale.runs * scale.steps / n_inc))
    inc_runs = []
    for j in range(n_inc):
        i = scale.runs + j
        inc_runs.append(PlannedRun(i, run_id_for(seed, i), f"incr-{j + 1:03d}", "incr", inc_steps, t_end + 60.0 + j, True))
    increment_end = max(r.end for r in inc_runs) + 60.0
    return Plan(scale, seed, t_end, t_start, tuple(runs), tuple(inc_runs), increment_end)


# --- one run's history ----------------------------------------------------------


def _progress(step: np.ndarray, n: int) -> np.ndarray:
    tau = 0.6 * n
    return (1.0 - np.exp(-step / tau)) / (1.0 - math.exp(-n / tau))


def _null_where(text: pa.Array, keep: np.ndarray) -> pa.Array:
    return pc.if_else(pa.array(keep), text, pa.scalar(None, pa.string()))


def run_config(plan: Plan, run: PlannedRun) -> dict[str, Any]:
    lrs = (5e-7, 1e-6, 2e-6, 3e-6, 5e-6)
    g = run.index // plan.scale.runs_per_sweep
    k = run.index % plan.scale.runs_per_sweep
    return {
        "algo": "grpo",
        "model": {"base": "Qwen/Qwen2.5-7B-Instruct", "dtype": "bfloat16", "max_seq_len": 4096},
        "learning_rate": lrs[k % len(lrs)],
        "kl_coef": (0.01, 0.02, 0.05, 0.1)[g % 4],
        "batch_size": 64,
        "group_size": 8,
        "total_steps": run.steps,
        "seed": plan.seed * 1000 + run.index,
        "optimizer": {"name": "adamw", "betas": [0.9, 0.999], "weight_decay": 0.0, "warmup_steps": 20},
        "eval": {"every_steps": EVAL_EVERY, "league": list(FIXED_REFERENCES), "games_per_pair": 40},
        "checkpoint_every": EVAL_EVERY,
        "reward": {"name": "diplomacy_orders", "format_bonus": 0.1},
    }


@dataclass
class GeneratedRun:
    spec: RunSpec
    rows: RunRows
    numeric: dict[str, np.ndarray]  # key -> float values per step (NaN = not logged)
    timestamp: np.ndarray
    runtime: np.ndarray


def make_run(plan: Plan, run: PlannedRun) -> GeneratedRun:
    """Every number one run logs, deterministic in (seed, run index)."""
    rng = np.random.default_rng([plan.seed, 1, run.index])
    n = run.steps
    steps = np.arange(1, n + 1, dtype=np.int64)
    progress = _progress(steps, n)
    config = run_config(plan, run)
    learning = rng.uniform(-0.2, 1.0)  # < 0: a run that does not learn
    unstable = rng.random() < 0.1

    numeric: dict[str, np.ndarray] = {}
    text: dict[str, pa.Array] = {}
    for name, base, trend, sd, decimals, integer in TRAIN_METRICS:
        if name == "train/learning_rate":
            warmup = np.minimum(1.0, steps / 20.0)
            cosine = 0.1 + 0.45 * (1.0 + np.cos(np.pi * (steps - 1) / max(n - 1, 1)))
            values = config["learning_rate"] * warmup * cosine
        elif name == "train/kl_coef":
            values = np.full(n, config["kl_coef"])
        else:
            values = base + trend * progress * (learning if "reward" in name else 1.0) + rng.normal(0.0, sd, n)
            if name == "train/epoch":
                values = 3.0 * steps / n
            elif sd > 0 and base > 0:
                values = np.abs(values)
        if unstable and name in ("train/kl", "train/grad_norm"):
            at = int(0.6 * n)
            window = slice(at, min(n, at + 10))
            values[window] = values[window] * (12.0 if name == "train/kl" else 30.0)
        if decimals is not None:
            values = np.round(values, decimals)
        numeric[name] = values
        text[name] = json_ints(values) if integer else json_numbers(values)

    # League Elo at evaluation steps: fixed references fall as the policy learns,
    # checkpoints enter at their save step with the policy's strength then.
    is_eval = steps % EVAL_EVERY == 0
    eval_steps = steps[is_eval]
    eval_rows = np.flatnonzero(is_eval)
    ep = progress[is_eval]
    decline = 150.0 * max(learning, 0.0)
    rise = max(0.0, 260.0 * learning - decline)
    elo: dict[str, np.ndarray] = {}
    elo["base_model"] = 1000.0 - decline * ep + rng.normal(0.0, 8.0, len(ep))
    elo["chaos_bot"] = 820.0 - 0.6 * decline * ep + rng.normal(0.0, 8.0, len(ep))
    for j, c in enumerate(eval_steps.tolist()):
        present = np.arange(len(ep)) >= j
        values = np.full(len(ep), np.nan)
        values[present] = 1000.0 + rise * ep[j] + 0.15 * decline * (ep[present] - ep[j]) + rng.normal(0.0, 8.0, present.sum())
        elo[f"ckpt_{c}"] = values
    for player, values in elo.items():
        full = np.full(n, np.nan)
        full[eval_rows] = np.round(values, 2)
        key = "elo/" + player
        numeric[key] = full
        logged = ~np.isnan(full)
        text[key] = _null_where(json_numbers(np.nan_to_num(full)), logged)

    runtime = steps * STEP_S + rng.uniform(0.0, 2.0, n)
    timestamp = np.round(run.start + runtime, 6)
    crashed = rng.random() < 0.03 and not run.increment
    spec = RunSpec(
        run_id=run.run_id,
        name=run.name,
        group=run.group,
        project=PROJECT,
        entity=ENTITY,
        config=config,
        start_time=run.start,
        host=f"gpu-node-{1 + run.index % 16}",
        exit_code=1 if crashed else 0,
        runtime_s=int(runtime[-1]) + 5,
    )
    rows = RunRows(steps=steps, timestamp=json_numbers(timestamp), runtime=json_numbers(runtime), columns=text)
    return GeneratedRun(spec, rows, numeric, timestamp, runtime)


def run_file_path(root: Path, run: PlannedRun) -> Path:
    stamp = dt.datetime.fromtimestamp(run.start, dt.UTC).strftime("%Y%m%d_%H%M%S")
    return root / f"offline-run-{stamp}-{run.run_id}" / f"run-{run.run_id}.wandb"


def history_points(run: PlannedRun) -> int:
    n_evals = run.steps // EVAL_EVERY
    elo_points = sum(j + len(FIXED_REFERENCES) for j in range(1, n_evals + 1))
    return run.steps * len(TRAIN_METRICS) + elo_points


def _write_run_job(args: tuple[Plan, PlannedRun, str, str | None]) -> dict[str, Any]:
    plan, run, wandb_root, export_root = args
    g = make_run(plan, run)
    path = run_file_path(Path(wandb_root), run)
    path.parent.mkdir(parents=True, exist_ok=True)
    size = write_run(path, g.spec, g.rows)
    if export_root is not None:
        write_history_export(Path(export_root) / f"{run.name}.csv", g)
    points = int(sum(int(np.count_nonzero(~np.isnan(v))) for v in g.numeric.values()))
    return {"run_id": run.run_id, "name": run.name, "path": str(path), "bytes": size, "points": points, "state": "crashed" if g.spec.exit_code else "finished"}


def write_history_export(path: Path, g: GeneratedRun) -> None:
    """The run's history as W&B's CSV export has it: one row per step, one column per key."""
    import pyarrow.csv as pacsv

    path.parent.mkdir(parents=True, exist_ok=True)
    cols = {"_step": pa.array(g.rows.steps), "_runtime": pa.array(g.runtime), "_timestamp": pa.array(g.timestamp)}
    for key in sorted(g.numeric):
        v = g.numeric[key]
        cols[key] = pa.array(v, mask=np.isnan(v))
    pacsv.write_csv(pa.table(cols), path)


# --- events ------------------------------------------------------------------------


def _fixed(values: np.ndarray, decimals: int) -> pa.Array:
    """Non-negative numbers as text with exactly `decimals` decimals (like f"{v:.3f}")."""
    scale = 10**decimals
    scaled = np.round(np.asarray(values, dtype=np.float64) * scale).astype(np.int64)
    whole = pc.cast(pa.array(scaled // scale), pa.string())
    if decimals == 0:
        return whole
    frac = pc.utf8_lpad(pc.cast(pa.array(scaled % scale), pa.string()), width=decimals, padding="0")
    return pc.binary_join_element_wise(whole, frac, ".")


def iso_ms(t_ms: np.ndarray) -> pa.Array:
    """`YYYY-MM-DDTHH:MM:SS.mmmZ` for epoch milliseconds, built as fixed-width bytes."""
    t_ms = np.asarray(t_ms, dtype=np.int64)
    n = len(t_ms)
    day = t_ms // 86_400_000
    ms = t_ms - day * 86_400_000
    out = np.empty((n, 24), dtype=np.uint8)
    days, inverse = np.unique(day, return_inverse=True)
    prefixes = np.frombuffer(
        "".join(str(np.datetime64(int(d), "D")) + "T" for d in days.tolist()).encode(), dtype=np.uint8
    ).reshape(len(days), 11)
    out[:, :11] = prefixes[inverse]
    hh, rem = np.divmod(ms, 3_600_000)
    mm, rem = np.divmod(rem, 60_000)
    ss, mmm = np.divmod(rem, 1000)
    zero = ord("0")
    for col, (v, width) in zip((11, 14, 17, 20), ((hh, 2), (mm, 2), (ss, 2), (mmm, 3))):
        for k in range(width):
            out[:, col + k] = zero + (v // 10 ** (width - 1 - k)) % 10
    out[:, 13] = out[:, 16] = ord(":")
    out[:, 19] = ord(".")
    out[:, 23] = ord("Z")
    offsets = np.arange(n + 1, dtype=np.int32) * 24
    return pa.Array.from_buffers(pa.string(), n, [None, pa.py_buffer(offsets), pa.py_buffer(out.reshape(-1))])


def _join(*parts) -> pa.Array:
    args = [pa.scalar(p) if isinstance(p, str) else p for p in parts]
    return pc.binary_join_element_wise(*args, pa.scalar(""))


def _pick(options: tuple[str, ...] | list[str], idx: np.ndarray) -> pa.Array:
    return pa.array(list(options), pa.string()).take(pa.array(np.asarray(idx, dtype=np.int64)))


@dataclass(frozen=True)
class EventFile:
    index: int
    name: str
    start: float
    end: float
    runs: tuple[PlannedRun, ...]
    run_events: float  # expected per-run events per second of run time


def event_files(plan: Plan, increment: bool = False) -> list[EventFile]:
    """One file per UTC day of the base window (Axiom exports are daily); the increment is one file."""
    runs = plan.increment_runs if increment else plan.runs
    hb_total = len(COMPONENTS) * (plan.t_end - plan.t_start) / HEARTBEAT_EVERY_S
    run_events_total = max(plan.scale.events - hb_total, 0.0)
    run_seconds = sum(r.steps * STEP_S for r in plan.runs)
    rate = run_events_total / run_seconds / (1.0 + ROLLOUT_FAILURE_RATE * KIND_SHARE["rollout"])
    if increment:
        inc_seconds = sum(r.steps * STEP_S for r in runs)
        inc_hb = len(COMPONENTS) * (plan.increment_end - plan.t_end) / HEARTBEAT_EVERY_S
        # 1 % of the base events, heartbeats included
        rate = max(0.01 * plan.scale.events - inc_hb, 0.0) / inc_seconds / (1.0 + ROLLOUT_FAILURE_RATE * KIND_SHARE["rollout"])
        return [EventFile(100_000, "axiom-export-increment.ndjson", plan.t_end, plan.increment_end, runs, rate)]
    files = []
    day0 = math.floor(plan.t_start / 86_400)
    day1 = math.ceil(plan.t_end / 86_400)
    for k, day in enumerate(range(day0, day1)):
        a, b = max(plan.t_start, day * 86_400.0), min(plan.t_end, (day + 1) * 86_400.0)
        if b <= a:
            continue
        name = dt.datetime.fromtimestamp(day * 86_400, dt.UTC).strftime("axiom-export-%Y-%m-%d.ndjson")
        files.append(EventFile(k, name, a, b, runs, rate))
    return files


def make_event_lines(plan: Plan, f: EventFile) -> tuple[pa.Array, dict[str, int]]:
    """The file's NDJSON lines (each ending in a newline), in time order, and counts per kind."""
    rng = np.random.default_rng([plan.seed, 2, f.index])
    parts: list[tuple[np.ndarray, pa.Array]] = []
    counts: dict[str, int] = {}

    def add(kind: str, t_ms: np.ndarray, lines: pa.Array) -> None:
        parts.append((t_ms, lines))
        counts[kind] = counts.get(kind, 0) + len(t_ms)

    def arrivals(share: float) -> tuple[np.ndarray, np.ndarray]:
        times, who = [], []
        for j, r in enumerate(f.runs):
            a, b = max(f.start, r.start), min(f.end, r.end)
            if b <= a:
                continue
            t = rng.uniform(a, b, rng.poisson(f.run_events * share * (b - a)))
            times.append(t)
            who.append(np.full(len(t), j))
        if not times:
            return np.empty(0), np.empty(0, dtype=np.int64)
        return np.concatenate(times), np.concatenate(who)

    run_ids = [r.run_id for r in f.runs]
    # rollouts, and one error event per failed rollout
    t, who = arrivals(KIND_SHARE["rollout"])
    n = len(t)
    t_ms = np.round(t * 1000).astype(np.int64)
    failed = rng.random(n) < ROLLOUT_FAILURE_RATE
    duration = np.where(failed, rng.uniform(0.3, 3.0, n), 40.0 * rng.lognormal(0.0, 0.3, n))
    rid = _pick(run_ids, who)
    rollout_id = _join(rid, "-r", pc.cast(pa.array(f.index * 10_000_000 + np.arange(n)), pa.string()))
    add(
        "rollout",
        t_ms,
        _join('{"_time":"', iso_ms(t_ms), '","event":"rollout","run_id":"', rid, '","rollout_id":"', rollout_id,
              '","duration_s":', _fixed(duration, 3), ',"status":"', _pick(("ok", "error"), failed.astype(int)),
              '","engine":"', _pick(ENGINES, rng.integers(0, 2, n)), '","worker":"', _pick(WORKERS, rng.integers(0, 8, n)),
              '"}\n'),
    )
    fi = np.flatnonzero(failed)
    e_ms = t_ms[fi] + 5
    which = rng.integers(0, len(ERRORS), len(fi))
    add(
        "error",
        e_ms,
        _join('{"_time":"', iso_ms(e_ms), '","level":"error","run_id":"', rid.take(pa.array(fi)), '","component":"',
              _pick([e[0] for e in ERRORS], which), '","error_type":"', _pick([e[1] for e in ERRORS], which),
              '","message":"', _pick([e[2] for e in ERRORS], which), '","rollout_id":"', rollout_id.take(pa.array(fi)), '"}\n'),
    )
    # inference requests
    t, who = arrivals(KIND_SHARE["inference"])
    n = len(t)
    t_ms = np.round(t * 1000).astype(np.int64)
    add(
        "inference",
        t_ms,
        _join('{"_time":"', iso_ms(t_ms), '","event":"inference","run_id":"', _pick(run_ids, who), '","engine":"',
              _pick(ENGINES, rng.integers(0, 2, n)), '","latency_s":', _fixed(rng.lognormal(math.log(2.4), 0.25, n), 3),
              ',"tokens_per_s":', _fixed(np.abs(rng.normal(1850.0, 120.0, n)), 1), ',"batch_size":',
              _pick(("8", "16", "32", "64"), rng.integers(0, 4, n)), ',"queue_s":', _fixed(rng.exponential(0.25, n), 3),
              "}\n"),
    )
    # order extraction
    t, who = arrivals(KIND_SHARE["extraction"])
    n = len(t)
    t_ms = np.round(t * 1000).astype(np.int64)
    expected = rng.poisson(34, n) + 6
    extracted = rng.binomial(expected, 0.985)
    add(
        "extraction",
        t_ms,
        _join('{"_time":"', iso_ms(t_ms), '","event":"extraction","run_id":"', _pick(run_ids, who),
              '","orders_expected":', pc.cast(pa.array(expected), pa.string()), ',"orders_extracted":',
              pc.cast(pa.array(extracted), pa.string()), "}\n"),
    )
    # heartbeats: every 30 s per component, on a grid shared by all files
    for c, (comp, host, mem) in enumerate(COMPONENTS):
        first = math.ceil((f.start - c) / HEARTBEAT_EVERY_S) * HEARTBEAT_EVERY_S + c
        grid = np.arange(first, f.end, HEARTBEAT_EVERY_S)
        n = len(grid)
        t_ms = np.round((grid + rng.uniform(0.0, 0.4, n)) * 1000).astype(np.int64)
        util = np.clip(rng.normal(55.0 if comp == "reward-server" else 82.0, 6.0, n), 0, 100)
        gmem = np.clip(rng.normal(mem, 1.5, n), 0, 80)
        add(
            "heartbeat",
            t_ms,
            _join('{"_time":"', iso_ms(t_ms), f'","event":"heartbeat","component":"{comp}","host":"{host}","status":"ok","gpu_util":',
                  _fixed(util, 1), ',"gpu_mem_gb":', _fixed(gmem, 2), "}\n"),
        )
    t_all = np.concatenate([p[0] for p in parts])
    lines = pa.concat_arrays([p[1] for p in parts])
    order = np.argsort(t_all, kind="stable")
    return lines.take(pa.array(order)), counts


def _write_lines(path: Path, lines: pa.Array) -> int:
    offsets = np.frombuffer(lines.buffers()[1], dtype=np.int32, count=len(lines) + 1, offset=lines.offset * 4)
    data = memoryview(lines.buffers()[2])[int(offsets[0]) : int(offsets[-1])]
    tmp = path.with_name("." + path.name + ".tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)
    return len(data)


def _write_events_job(args: tuple[Plan, EventFile, str]) -> dict[str, Any]:
    plan, f, out_dir = args
    lines, counts = make_event_lines(plan, f)
    path = Path(out_dir) / f.name
    size = _write_lines(path, lines)
    return {"path": str(path), "bytes": size, "events": len(lines), "counts": counts}


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
        runs = list(pool.map(_write_run_job, [(plan, r, str(wandb_dir), str(exports_dir / "history")) for r in plan.runs]))
        seconds["wandb"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        files = event_files(plan)
        say(f"writing ~{scale.events:,} events in {len(files)} daily NDJSON files")
        ev = list(pool.map(_write_events_job, [(plan, f, str(events_dir)) for f in files]))
        seconds["events"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        inc_runs = list(pool.map(_write_run_job, [(plan, r, str(inc_wandb), None) for r in plan.increment_runs]))
        inc_ev = list(pool.map(_write_events_job, [(plan, f, str(inc_events)) for f in event_files(plan, increment=True)]))
        seconds["increment"] = time.perf_counter() - t0
    _write_runs_export(exports_dir / "runs.csv", plan, runs)

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
        json.dumps({"params": _params(scale, seed), "generated_at": dt.datetime.now(dt.UTC).isoformat(), "data": data.to_json()}, indent=1)
    )
    return data


def _write_runs_export(path: Path, plan: Plan, runs: list[dict[str, Any]]) -> None:
    """The project's runs table as W&B's CSV export has it: name, id, group, state, config columns."""
    import pyarrow.csv as pacsv

    state = {r["run_id"]: r["state"] for r in runs}
    rows = []
    for r in plan.runs:
        c = run_config(plan, r)
        rows.append({"Name": r.name, "ID": r.run_id, "Group": r.group, "State": state[r.run_id],
                     "learning_rate": c["learning_rate"], "kl_coef": c["kl_coef"], "total_steps": c["total_steps"]})
    pacsv.write_csv(pa.Table.from_pylist(rows), path)


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
        want = {"run_id": run.run_id, "run_name": run.name, "run_group": run.group, "project": PROJECT,
                "entity": ENTITY, "job_type": "train", "last_step": run.steps,
                "state": "finished" if g.spec.exit_code == 0 else "crashed", "exit_code": g.spec.exit_code}
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
            if not (np.array_equal(steps[sel][order], np.flatnonzero(logged) + 1)
                    and np.array_equal(values[sel][order], v[logged])
                    and np.array_equal(wall[sel][order], expect_wall[logged])):
                problems.append(f"history {key} differs")
        if problems:
            raise AssertionError(f"{meta['path']}: the reader does not read back what was written: {problems[:10]}")
        checked += 1
        points += len(keys)
    return {"runs_checked": checked, "points_checked": points}
