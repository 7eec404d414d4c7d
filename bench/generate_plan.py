"""The league plan of the benchmark data: scales, run ids, and when each run trains (two
lanes, back to back, plus the 1 % increment).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

STEP_S = 26.0  # wall seconds per training step
LANES = 2  # runs training at the same time
RUNS_PER_SWEEP = 5


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
            PlannedRun(
                i,
                run_id_for(seed, i),
                f"sweep-{g:03d}-{k + 1}",
                f"sweep-{g:03d}",
                scale.steps,
                t_start + slot * d + lane * d / 2 + 60.0,
            )
        )
    # The increment: 1 % more history points as new runs that start after t_end.
    n_inc = max(1, round(0.01 * scale.runs))
    inc_steps = max(1, round(0.01 * scale.runs * scale.steps / n_inc))
    inc_runs = []
    for j in range(n_inc):
        i = scale.runs + j
        inc_runs.append(
            PlannedRun(i, run_id_for(seed, i), f"incr-{j + 1:03d}", "incr", inc_steps, t_end + 60.0 + j, True)
        )
    increment_end = max(r.end for r in inc_runs) + 60.0
    return Plan(scale, seed, t_end, t_start, tuple(runs), tuple(inc_runs), increment_end)
