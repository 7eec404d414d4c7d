"""The demo's operational events: rollouts (with the slow hour and the engine that dies), the errors
of failed rollouts, inference requests, order extraction (with one run's bad hours) and component
heartbeats (one goes silent)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from pipelines.demo.event_timeline import (
    HOUR,
    EventLines,
    Timeline,
    arrivals,
    epoch_ms,
    fixed_digits,
    iso_ms,
)
from pipelines.demo.league_truth import DemoRun

ENGINES = ("vllm-a", "vllm-b")
WORKERS = tuple(f"worker-{i}" for i in range(8))
# (component, host, typical gpu memory GB); the last one goes silent.
HEARTBEAT_COMPONENTS = (
    ("rollout-worker", "gpu-node-1", 38.0),
    ("reward-server", "gpu-node-4", 22.0),
    ("vllm-a", "gpu-node-2", 71.0),
    ("vllm-b", "gpu-node-3", 71.0),
)
SILENT_COMPONENT = "vllm-b"
HEARTBEAT_EVERY_S = 30.0
ROLLOUTS_PER_MIN = 3.0
INFERENCE_PER_MIN = 2.0
EXTRACTIONS_PER_MIN = 1.0
NORMAL_ERROR_RATE = 0.003


@dataclass
class Rollouts:
    t: np.ndarray
    run_id: np.ndarray
    rollout_id: np.ndarray
    duration_s: np.ndarray
    engine: np.ndarray
    worker: np.ndarray
    failure: np.ndarray  # 0 ok, 1 background failure, 2 the engine died

    def lines(self) -> EventLines:
        t_ms = epoch_ms(self.t)
        rows = zip(
            iso_ms(t_ms), self.run_id.tolist(), self.rollout_id.tolist(), fixed_digits(self.duration_s, 3),
            (self.failure > 0).tolist(), self.engine.tolist(), self.worker.tolist(),
        )  # fmt: skip
        return EventLines(
            "rollout",
            t_ms,
            [
                f'{{"_time":"{ti}","event":"rollout","run_id":"{ri}","rollout_id":"{rid}","duration_s":{d},'
                f'"status":"{"error" if failed else "ok"}","engine":"{ENGINES[e]}","worker":"{WORKERS[w]}"}}'
                for ti, ri, rid, d, failed, e, w in rows
            ],
        )


def draw_rollouts(rng: np.random.Generator, windows, tl: Timeline) -> Rollouts:
    times, ids = arrivals(rng, ROLLOUTS_PER_MIN, windows)
    spacing = round(1 / NORMAL_ERROR_RATE)
    failures, rollout_ids = [], []
    for (run, _, _), t in zip(windows, times):
        # Background failures are evenly spaced (one per `spacing` rollouts of a
        # run), so no run-hour crosses the error-rate target by chance, and kept
        # out of the partial first and last hours, where one failure is a big share.
        failure = np.zeros(len(t), dtype=np.int8)
        if run.intended_verdict != "insufficient_data" and len(t) > spacing:
            idx = np.arange(int(rng.integers(0, spacing)), len(t), spacing)
            failure[idx[(t[idx] >= tl.full_from) & (t[idx] < tl.full_to)]] = 1
        failures.append(failure)
        rollout_ids.append(np.char.add(f"{run.run_id}-r", np.char.zfill(np.arange(len(t)).astype(str), 6)))
    t = np.concatenate(times)
    n = len(t)
    engine = rng.integers(0, len(ENGINES), n)
    engine[t >= tl.incident_end] = 0
    failure = np.concatenate(failures)
    failure[(engine == 1) & (t >= tl.incident_at) & (t < tl.incident_end)] = 2
    median = np.where(tl.in_slow_hour(t), 105.0, 40.0)
    duration = median * rng.lognormal(0.0, 0.3, n)
    duration = np.where(failure > 0, rng.uniform(0.3, 3.0, n), duration)  # failures fail fast
    return Rollouts(
        t=t,
        run_id=np.concatenate(ids),
        rollout_id=np.concatenate(rollout_ids),
        duration_s=np.round(duration, 3),  # as written, so the facts match the files
        engine=engine,
        worker=rng.integers(0, len(WORKERS), n),
        failure=failure,
    )


_BACKGROUND_ERRORS = (
    ("rollout-worker", "ParseError", "could not parse orders from completion"),
    ("reward-server", "RewardTimeout", "reward request timed out after 30s"),
    ("inference", "RequestTimeout", "generation request timed out"),
    ("rollout-worker", "OutOfMemoryError", "CUDA out of memory while scoring group"),
)
_ENGINE_DIED = ("inference", "EngineDeadError", "vllm-b: connection refused (engine not responding)")
_RETRIED = ("reward-server", "RewardModelRetry", "reward model returned 503; retried")


def error_lines(rng: np.random.Generator, rollouts: Rollouts, run_ids: list[str], tl: Timeline) -> EventLines:
    """One error per failed rollout (with its rollout_id), plus a few that failed nothing."""
    failed = np.flatnonzero(rollouts.failure)
    pick = rng.integers(0, len(_BACKGROUND_ERRORS), len(failed))
    rows = [
        (
            int(epoch_ms(rollouts.t[i])) + 5,
            _ENGINE_DIED if rollouts.failure[i] == 2 else _BACKGROUND_ERRORS[k],
            str(rollouts.run_id[i]),
            str(rollouts.rollout_id[i]),
        )
        for i, k in zip(failed.tolist(), pick.tolist())
    ]
    extra = 12
    extra_t = epoch_ms(np.sort(rng.uniform(tl.start + 60, tl.end - 60, extra)))
    rows += [(int(ms), _RETRIED, str(rid), None) for ms, rid in zip(extra_t, rng.choice(run_ids, extra))]
    t_ms = np.array([r[0] for r in rows], dtype=np.int64)
    return EventLines(
        "error",
        t_ms,
        [
            f'{{"_time":"{ti}","level":"error","run_id":"{rid}","component":"{comp}","error_type":"{etype}",'
            f'"message":"{msg}"' + (f',"rollout_id":"{roll}"}}' if roll else "}")
            for ti, (_, (comp, etype, msg), rid, roll) in zip(iso_ms(t_ms), rows)
        ],
    )


def inference_lines(rng: np.random.Generator, windows, tl: Timeline) -> EventLines:
    """Requests to two engines; everything is slower in the slow hour, vllm-b gets nothing once dead."""
    times, ids = arrivals(rng, INFERENCE_PER_MIN, windows)
    t, run_id = np.concatenate(times), np.concatenate(ids)
    n = len(t)
    engine = rng.integers(0, len(ENGINES), n)
    engine[t >= tl.incident_at] = 0
    slow = tl.in_slow_hour(t)
    factor = np.where(slow, 3.0, 1.0)
    latency = rng.lognormal(math.log(2.4), 0.25, n) * factor
    tokens = rng.normal(1850.0, 120.0, n) / factor
    batch = rng.choice([8, 16, 32, 64], n)
    queue = rng.exponential(0.25, n) * np.where(slow, 12.0, 1.0)
    t_ms = epoch_ms(t)
    rows = zip(
        iso_ms(t_ms),
        run_id.tolist(),
        engine.tolist(),
        fixed_digits(latency, 3),
        fixed_digits(tokens, 1),
        batch.tolist(),
        fixed_digits(queue, 3),
    )
    return EventLines(
        "inference",
        t_ms,
        [
            f'{{"_time":"{ti}","event":"inference","run_id":"{ri}","engine":"{ENGINES[e]}","latency_s":{la},'
            f'"tokens_per_s":{tp},"batch_size":{bs},"queue_s":{q}}}'
            for ti, ri, e, la, tp, bs, q in rows
        ],
    )


def extraction_lines(rng: np.random.Generator, windows, tl: Timeline, problem_run: DemoRun) -> tuple[EventLines, float]:
    """~99 % of expected orders extracted, ~60 % for `problem_run` in the extraction hours; returns that rate."""
    times, ids = arrivals(rng, EXTRACTIONS_PER_MIN, windows)
    t, run_id = np.concatenate(times), np.concatenate(ids)
    expected = rng.poisson(34, len(t)) + 6
    hour = np.floor(t / HOUR) * HOUR
    problem = (run_id == problem_run.run_id) & np.isin(hour, tl.extraction_hours)
    extracted = rng.binomial(expected, np.where(problem, 0.6, 0.99))
    t_ms = epoch_ms(t)
    lines = [
        f'{{"_time":"{ti}","event":"extraction","run_id":"{ri}","orders_expected":{a},"orders_extracted":{b}}}'
        for ti, ri, a, b in zip(iso_ms(t_ms), run_id.tolist(), expected.tolist(), extracted.tolist())
    ]
    return EventLines("extraction", t_ms, lines), float(extracted[problem].sum() / expected[problem].sum())


def heartbeat_lines(rng: np.random.Generator, tl: Timeline) -> tuple[EventLines, int]:
    """Every 30 s per component until the window ends, or until vllm-b dies; returns its last one (ms)."""
    t_parts, lines = [], []
    silent_last = 0
    for comp, host, mem in HEARTBEAT_COMPONENTS:
        stop = tl.incident_at if comp == SILENT_COMPONENT else tl.end
        t = np.arange(tl.start + rng.uniform(0, HEARTBEAT_EVERY_S), stop, HEARTBEAT_EVERY_S)
        t = np.clip(t + rng.uniform(-0.4, 0.4, len(t)), tl.start, stop - 0.001)
        util = np.clip(rng.normal(55.0 if comp == "reward-server" else 82.0, 6.0, len(t)), 0, 100)
        gpu_mem = np.clip(rng.normal(mem, 1.5, len(t)), 0, 80)
        t_ms = epoch_ms(t)
        t_parts.append(t_ms)
        lines += [
            f'{{"_time":"{ti}","event":"heartbeat","component":"{comp}","host":"{host}","status":"ok",'
            f'"gpu_util":{u},"gpu_mem_gb":{m}}}'
            for ti, u, m in zip(iso_ms(t_ms), fixed_digits(util, 1), fixed_digits(gpu_mem, 2))
        ]
        if comp == SILENT_COMPONENT:
            silent_last = int(t_ms.max())
    return EventLines("heartbeat", np.concatenate(t_parts), lines), silent_last
