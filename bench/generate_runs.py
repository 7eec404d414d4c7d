"""One benchmark run's history: the metrics and league Elo it logs, its `.wandb` file, and
the W&B-style CSV exports (history per run, runs table).
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from bench.generate_plan import STEP_S, Plan, PlannedRun
from bench.wandb_writer import RunRows, RunSpec, json_ints, json_numbers, write_run

PROJECT, ENTITY = "grpo-bench", "bench"
EVAL_EVERY = 50  # league evaluation, and checkpoint save, every this many steps

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
        values[present] = (
            1000.0 + rise * ep[j] + 0.15 * decline * (ep[present] - ep[j]) + rng.normal(0.0, 8.0, present.sum())
        )
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


def write_run_job(args: tuple[Plan, PlannedRun, str, str | None]) -> dict[str, Any]:
    plan, run, wandb_root, export_root = args
    g = make_run(plan, run)
    path = run_file_path(Path(wandb_root), run)
    path.parent.mkdir(parents=True, exist_ok=True)
    size = write_run(path, g.spec, g.rows)
    if export_root is not None:
        write_history_export(Path(export_root) / f"{run.name}.csv", g)
    points = int(sum(int(np.count_nonzero(~np.isnan(v))) for v in g.numeric.values()))
    return {
        "run_id": run.run_id,
        "name": run.name,
        "path": str(path),
        "bytes": size,
        "points": points,
        "state": "crashed" if g.spec.exit_code else "finished",
    }


def write_history_export(path: Path, g: GeneratedRun) -> None:
    """The run's history as W&B's CSV export has it: one row per step, one column per key."""
    import pyarrow.csv as pacsv

    path.parent.mkdir(parents=True, exist_ok=True)
    cols = {"_step": pa.array(g.rows.steps), "_runtime": pa.array(g.runtime), "_timestamp": pa.array(g.timestamp)}
    for key in sorted(g.numeric):
        v = g.numeric[key]
        cols[key] = pa.array(v, mask=np.isnan(v))
    pacsv.write_csv(pa.table(cols), path)


def write_runs_export(path: Path, plan: Plan, runs: list[dict[str, Any]]) -> None:
    """The project's runs table as W&B's CSV export has it: name, id, group, state, config columns."""
    import pyarrow.csv as pacsv

    state = {r["run_id"]: r["state"] for r in runs}
    rows = []
    for r in plan.runs:
        c = run_config(plan, r)
        rows.append(
            {
                "Name": r.name,
                "ID": r.run_id,
                "Group": r.group,
                "State": state[r.run_id],
                "learning_rate": c["learning_rate"],
                "kl_coef": c["kl_coef"],
                "total_steps": c["total_steps"],
            }
        )
    pacsv.write_csv(pa.Table.from_pylist(rows), path)
