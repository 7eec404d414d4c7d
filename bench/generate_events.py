"""The benchmark's events: Axiom-shaped NDJSON lines (rollouts, errors, inference,
extraction, heartbeats) in daily files, built with numpy and Arrow kernels.
"""

from __future__ import annotations

import datetime as dt
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from bench.generate_plan import STEP_S, Plan, PlannedRun

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
        rate = (
            max(0.01 * plan.scale.events - inc_hb, 0.0)
            / inc_seconds
            / (1.0 + ROLLOUT_FAILURE_RATE * KIND_SHARE["rollout"])
        )
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
        _join(
            '{"_time":"',
            iso_ms(t_ms),
            '","event":"rollout","run_id":"',
            rid,
            '","rollout_id":"',
            rollout_id,
            '","duration_s":',
            _fixed(duration, 3),
            ',"status":"',
            _pick(("ok", "error"), failed.astype(int)),
            '","engine":"',
            _pick(ENGINES, rng.integers(0, 2, n)),
            '","worker":"',
            _pick(WORKERS, rng.integers(0, 8, n)),
            '"}\n',
        ),
    )
    fi = np.flatnonzero(failed)
    e_ms = t_ms[fi] + 5
    which = rng.integers(0, len(ERRORS), len(fi))
    add(
        "error",
        e_ms,
        _join(
            '{"_time":"',
            iso_ms(e_ms),
            '","level":"error","run_id":"',
            rid.take(pa.array(fi)),
            '","component":"',
            _pick([e[0] for e in ERRORS], which),
            '","error_type":"',
            _pick([e[1] for e in ERRORS], which),
            '","message":"',
            _pick([e[2] for e in ERRORS], which),
            '","rollout_id":"',
            rollout_id.take(pa.array(fi)),
            '"}\n',
        ),
    )
    # inference requests
    t, who = arrivals(KIND_SHARE["inference"])
    n = len(t)
    t_ms = np.round(t * 1000).astype(np.int64)
    add(
        "inference",
        t_ms,
        _join(
            '{"_time":"',
            iso_ms(t_ms),
            '","event":"inference","run_id":"',
            _pick(run_ids, who),
            '","engine":"',
            _pick(ENGINES, rng.integers(0, 2, n)),
            '","latency_s":',
            _fixed(rng.lognormal(math.log(2.4), 0.25, n), 3),
            ',"tokens_per_s":',
            _fixed(np.abs(rng.normal(1850.0, 120.0, n)), 1),
            ',"batch_size":',
            _pick(("8", "16", "32", "64"), rng.integers(0, 4, n)),
            ',"queue_s":',
            _fixed(rng.exponential(0.25, n), 3),
            "}\n",
        ),
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
        _join(
            '{"_time":"',
            iso_ms(t_ms),
            '","event":"extraction","run_id":"',
            _pick(run_ids, who),
            '","orders_expected":',
            pc.cast(pa.array(expected), pa.string()),
            ',"orders_extracted":',
            pc.cast(pa.array(extracted), pa.string()),
            "}\n",
        ),
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
            _join(
                '{"_time":"',
                iso_ms(t_ms),
                f'","event":"heartbeat","component":"{comp}","host":"{host}","status":"ok","gpu_util":',
                _fixed(util, 1),
                ',"gpu_mem_gb":',
                _fixed(gmem, 2),
                "}\n",
            ),
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


def write_events_job(args: tuple[Plan, EventFile, str]) -> dict[str, Any]:
    plan, f, out_dir = args
    lines, counts = make_event_lines(plan, f)
    path = Path(out_dir) / f.name
    size = _write_lines(path, lines)
    return {"path": str(path), "bytes": size, "events": len(lines), "counts": counts}
