"""A realistic demo league: W&B runs written offline by the real `wandb` library, plus 24 h of events.

`generate_demo(out_dir)` needs no network and no credentials. It writes

* ``out_dir/wandb/offline-run-*/run-<id>.wandb``: two sweeps of three GRPO runs
  (``lr-sweep-1..3``, ``kl-sweep-1..3``, sweep = W&B group) and a short
  ``smoke-test-1``, each logging train metrics every step and league Elo every
  25 steps; ``kl-sweep-1`` was preempted twice and resumed
  (``wandb.init(id=..., resume="allow")``), so it has three run folders, and
  its config gains ``resume_from_checkpoint`` at each resume;
* ``out_dir/events/*.ndjson[.gz]``: Axiom-shaped rollout, inference,
  extraction, error and heartbeat events over the 24 hours ending at `now`,
  with a few deliberately bad lines, and the league's games (event ``game``:
  seven seats drawn from base_model, chaos_bot and the checkpoints saved so
  far, at every checkpoint evaluation; each player's strength is its logged
  Elo relative to base_model, so the ratings fitted from the games agree with
  the logged ones);
* ``out_dir/demo-manifest.json``: what was generated and what the warehouse
  should conclude from it (verdicts, the slow hour, the extraction problem,
  the silent component...).

Every series is designed so its intended verdict holds under the rules in
``dbt_project.yml`` (checked for seeds 0-39): the references' noise is
autocorrelated like an online Elo rating's and made orthogonal to a straight
line before it is added (so a flat series fits a slope of exactly zero and a
trending one exactly the slope of its noise-free curve), and each run's checkpoint Elo is
shifted so its final gap is exactly the designed one (so the tie stays a tie
and the clear winner stays clear). `demo_runs()` returns the same series
without writing anything.
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "DemoEventFacts",
    "DemoManifest",
    "DemoRun",
    "demo_runs",
    "generate_demo",
    "write_demo_events",
]

PROJECT_ROOT = Path(__file__).resolve().parent.parent
MANIFEST_NAME = "demo-manifest.json"
WANDB_SUBDIR = "wandb"
EVENTS_SUBDIR = "events"
# wandb's own config, cache and data dirs, kept inside out_dir so nothing lands in ~.
WANDB_HOME_SUBDIR = ".wandb-home"

DEMO_PROJECT = "grpo-demo"
DEMO_ENTITY = "demo"
EVAL_EVERY = 25
CHECKPOINT_EVERY = 100
FINAL_GAP_WINDOW = 5  # mirrors var final_gap_window: the designed final gap is over these evals
BASE_MODEL = "base_model"
FIXED_REFERENCES = (BASE_MODEL, "chaos_bot")
GAMES_PER_EVAL = 150  # league games at each checkpoint evaluation (4 evaluations x 150 > min_games_for_verdict)
GAME_SEATS = 7  # Diplomacy has seven
SMOKE_STEPS = 3 * EVAL_EVERY  # three evaluation points: below var min_eval_points
MIN_STEPS = 2 * CHECKPOINT_EVERY  # fewer leaves too few checkpoint evals for a learning verdict

TRAIN_KEYS = ("train/kl", "train/grad_norm", "train/reward_mean", "train/loss", "train/learning_rate",
              "train/entropy", "train/clip_ratio", "train/response_length")
ELO_PREFIX = "elo/"

HOUR = 3600.0
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
EXTRACTION_PROBLEM_RUN = "lr-sweep-1"
# Preempted twice and resumed from its checkpoints at these shares of its steps: three segments.
RESUMED_RUN = "kl-sweep-1"
RESUMED_AT = (0.375, 0.75)
# Lag-1 autocorrelation of the fixed references' rating noise: an online rating starts each
# update from the previous one (the marts' trends allow for it, see macros/trend.sql).
ELO_NOISE_PHI = 0.6
PREEMPTED_EXIT_CODE = 143  # SIGTERM, as a cluster scheduler preempts a job
HEARTBEAT_EVERY_S = 30.0
ROLLOUTS_PER_MIN = 3.0
INFERENCE_PER_MIN = 2.0
EXTRACTIONS_PER_MIN = 1.0
NORMAL_ERROR_RATE = 0.003
WANDB_WORKERS = 2
WANDB_TIMEOUT_S = 300
_DONE_MARK = "grpo-demo logged run: "


# --- the generated runs ---------------------------------------------------------


@dataclass
class DemoRun:
    """One generated W&B run: identity, config, intent, and the exact numbers it logged."""

    run_id: str
    name: str
    sweep: str  # the W&B group
    config: dict[str, Any]
    intended_verdict: str  # learning | not_learning | unstable | insufficient_data
    # Mean over the last FINAL_GAP_WINDOW evals of (newest checkpoint Elo at that
    # eval) minus base_model Elo; None without checkpoints.
    final_gap: float | None
    steps: np.ndarray = field(repr=False)  # training steps logged (1..n)
    train: dict[str, np.ndarray] = field(repr=False)  # TRAIN_KEYS -> values aligned with `steps`
    eval_steps: np.ndarray = field(repr=False)
    elo: dict[str, np.ndarray] = field(repr=False)  # player -> Elo aligned with eval_steps, NaN before it exists
    wandb_file: Path | None = None  # the newest segment's file
    # A resumed run's segments: (first step, config keys changed at that resume); one entry when never resumed.
    segments: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    wandb_files: list[Path] = field(default_factory=list)  # every segment's file, oldest first

    @property
    def checkpoints(self) -> list[str]:
        return [p for p in self.elo if p.startswith("ckpt_")]

    def gap(self) -> tuple[np.ndarray, np.ndarray]:
        """(eval steps with a checkpoint, newest checkpoint minus base_model Elo at each)."""
        ckpts = sorted(self.checkpoints, key=lambda c: int(c.removeprefix("ckpt_")))
        if not ckpts:
            return np.array([], dtype=np.int64), np.array([], dtype=float)
        stacked = np.vstack([self.elo[c] for c in ckpts])
        has = ~np.all(np.isnan(stacked), axis=0)
        newest = np.array([stacked[~np.isnan(stacked[:, j]), j][-1] for j in np.flatnonzero(has)])
        return self.eval_steps[has], newest - self.elo[BASE_MODEL][has]

    def history_rows(self) -> list[tuple[int, dict[str, float]]]:
        """What `run.log` receives: one dict per step, Elo in the same dict on eval steps."""
        eval_at = {int(s): i for i, s in enumerate(self.eval_steps)}
        rows = []
        for i, step in enumerate(self.steps.tolist()):
            row = {k: float(v[i]) for k, v in self.train.items()}
            j = eval_at.get(step)
            if j is not None:
                for player, values in self.elo.items():
                    if not math.isnan(values[j]):
                        row[ELO_PREFIX + player] = round(float(values[j]), 2)
            rows.append((step, row))
        return rows

    def to_dict(self, include_series: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "run_id": self.run_id,
            "name": self.name,
            "sweep": self.sweep,
            "group": self.sweep,
            "config": self.config,
            "intended_verdict": self.intended_verdict,
            "final_gap": self.final_gap,
            "n_steps": int(len(self.steps)),
            "n_eval_points": int(len(self.eval_steps)),
            "checkpoints": self.checkpoints,
            "wandb_file": str(self.wandb_file) if self.wandb_file else None,
            "wandb_files": [str(p) for p in self.wandb_files],
            "segments": [{"first_step": first, "config_changes": changes} for first, changes in self.segments],
        }
        if include_series:
            out["steps"] = self.steps.tolist()
            out["train"] = {k: _json_floats(v) for k, v in self.train.items()}
            out["eval_steps"] = self.eval_steps.tolist()
            out["elo"] = {k: _json_floats(v) for k, v in self.elo.items()}
        return out


@dataclass(frozen=True)
class _Plan:
    name: str
    sweep: str
    verdict: str
    learning_rate: float
    kl_coef: float
    final_gap: float  # designed final gap (Elo); for not_learning: checkpoints this far above base
    ref_decline: float  # base_model drop over the run along the progress curve (Elo); 0 = flat
    kl_level: float  # typical KL late in the run
    reward_gain: float  # reward_mean rise over the run


# Two sweeps of three: lr-sweep has a clear winner (lr-sweep-2) and an
# unstable high-LR run; kl-sweep has a statistical tie between its best two and
# a too-strong KL penalty that stops learning. The smoke test is too short.
_PLANS = (
    _Plan("lr-sweep-1", "lr-sweep", "learning", 5e-7, 0.05, 150.0, 70.0, 0.035, 0.20),
    _Plan("lr-sweep-2", "lr-sweep", "learning", 1e-6, 0.05, 240.0, 120.0, 0.05, 0.40),
    _Plan("lr-sweep-3", "lr-sweep", "unstable", 3e-6, 0.05, 170.0, 90.0, 0.06, 0.30),
    _Plan("kl-sweep-1", "kl-sweep", "learning", 8e-7, 0.01, 205.0, 100.0, 0.06, 0.33),
    _Plan("kl-sweep-2", "kl-sweep", "learning", 8e-7, 0.05, 202.0, 100.0, 0.045, 0.32),
    _Plan("kl-sweep-3", "kl-sweep", "not_learning", 8e-7, 0.5, 4.0, 0.0, 0.004, 0.0),
    _Plan("smoke-test-1", "smoke-test", "insufficient_data", 1e-6, 0.05, 0.0, 0.0, 0.03, 0.0),
)


def demo_run_id(seed: int, name: str) -> str:
    """A stable 8-character W&B run id for (seed, run name)."""
    digest = int.from_bytes(hashlib.sha256(f"grpo-demo:{seed}:{name}".encode()).digest()[:8], "big")
    alphabet = "0123456789abcdefghijklmnopqrstuvwxyz"
    chars = []
    for _ in range(8):
        digest, r = divmod(digest, 36)
        chars.append(alphabet[r])
    return "".join(chars)


def demo_runs(seed: int = 7, steps: int = 400) -> list[DemoRun]:
    """The demo's runs with every logged number, deterministic in (seed, steps); writes nothing."""
    if steps < MIN_STEPS:
        raise ValueError(f"steps must be at least {MIN_STEPS} (got {steps}): fewer leaves no learning signal to show")
    runs = []
    for index, plan in enumerate(_PLANS):
        rng = np.random.default_rng([seed, index])
        n = SMOKE_STEPS if plan.verdict == "insufficient_data" else steps
        runs.append(_make_run(plan, demo_run_id(seed, plan.name), n, seed, rng))
    return runs


def _make_run(plan: _Plan, run_id: str, n: int, seed: int, rng: np.random.Generator) -> DemoRun:
    step = np.arange(1, n + 1)
    progress = _progress(step, n)
    eval_steps = step[step % EVAL_EVERY == 0]
    eval_progress = _progress(eval_steps, n)
    learning = plan.verdict in ("learning", "unstable")

    # Fixed references lose rating as the policy beats them; noise is detrended so
    # the fitted change is exactly the designed one.
    elo: dict[str, np.ndarray] = {}
    ref_sd = 5.0 if learning else 10.0  # with autocorrelated noise, the references' decline stays clear
    elo[BASE_MODEL] = 1000.0 - plan.ref_decline * eval_progress + _flat_noise(rng, eval_steps, ref_sd)
    elo["chaos_bot"] = 820.0 - 0.6 * plan.ref_decline * eval_progress + _flat_noise(rng, eval_steps, ref_sd)

    # A checkpoint enters the league at its save step with the policy's strength
    # then, and drifts up a little as the references it beats deflate.
    rise = max(plan.final_gap - plan.ref_decline, 0.0)
    for c in eval_steps[eval_steps % CHECKPOINT_EVERY == 0]:
        present = eval_steps >= c
        p_c = float(_progress(np.array([c]), n)[0])
        values = np.full(len(eval_steps), np.nan)
        if learning:
            drift = 0.15 * plan.ref_decline * (eval_progress[present] - p_c)
            values[present] = 1000.0 + rise * p_c + drift + rng.normal(0.0, 6.0, present.sum())
        else:
            # No progress: checkpoints play level with base_model.
            values[present] = elo[BASE_MODEL][present] + plan.final_gap + rng.normal(0.0, 4.0, present.sum())
        elo[f"ckpt_{int(c)}"] = values

    run = DemoRun(
        run_id=run_id,
        name=plan.name,
        sweep=plan.sweep,
        config=_config(plan, n, seed),
        intended_verdict=plan.verdict,
        final_gap=None,
        steps=step,
        # the policy series draw from their own generator: the other series stay as they were
        train={**_train_series(plan, step, progress, rng),
               **_policy_series(plan, step, progress, np.random.default_rng([seed, 1000 + _PLANS.index(plan)]))},
        eval_steps=eval_steps,
        elo=elo,
    )
    run.segments = [(1, {})]
    if plan.name == RESUMED_RUN:
        resumes = [int(round(n * share)) for share in RESUMED_AT]
        run.segments += [(k + 1, {"resume_from_checkpoint": f"checkpoints/step_{k}"}) for k in resumes]
        run.config = {**run.config, **run.segments[-1][1]}  # what the run's config says in the end
    if run.checkpoints and not learning:
        # The best of more checkpoints is higher by chance alone; shift each eval
        # step's checkpoints so the gap has no fitted trend at all.
        gx, gap = run.gap()
        xc = gx - gx.mean()
        tilt = xc * (xc @ (gap - gap.mean())) / (xc @ xc)
        rows = np.searchsorted(eval_steps, gx)
        for c in run.checkpoints:
            elo[c][rows] -= tilt
    if run.checkpoints:
        _, gap = run.gap()
        shift = plan.final_gap - float(np.mean(gap[-FINAL_GAP_WINDOW:]))
        for c in run.checkpoints:
            elo[c] = elo[c] + shift
        _, gap = run.gap()
        run.final_gap = round(float(np.mean(gap[-FINAL_GAP_WINDOW:])), 6)
    for player in elo:
        elo[player] = np.round(elo[player], 2)  # what run.log writes
    return run


def _progress(step: np.ndarray, n: int) -> np.ndarray:
    """Training progress in [0, 1]: fast early, saturating late."""
    tau = 0.6 * n
    return (1.0 - np.exp(-step / tau)) / (1.0 - math.exp(-n / tau))


def _flat_noise(rng: np.random.Generator, x: np.ndarray, sd: float) -> np.ndarray:
    """AR(1) noise (as an online Elo rating's) with its least-squares line removed, rescaled to `sd`."""
    noise = sd * _ar1(rng, len(x), ELO_NOISE_PHI)
    xc = x - x.mean()
    noise = noise - noise.mean() - xc * (xc @ noise) / (xc @ xc)
    std = noise.std(ddof=1)
    return noise * (sd / std) if std > 0 else noise


def _train_series(plan: _Plan, step: np.ndarray, progress: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    n = len(step)
    learning = plan.verdict in ("learning", "unstable")
    # KL grows smoothly to its late level; AR(1) noise keeps it smooth.
    kl = plan.kl_level * (0.45 + 0.55 * progress) * (1.0 + 0.12 * _ar1(rng, n, 0.8))
    kl = np.clip(kl, 0.3 * plan.kl_level, 0.09)
    grad_norm = np.clip(rng.lognormal(math.log(3.0 if learning else 2.0), 0.3, n), 1.0, 10.0)
    reward = 0.18 + plan.reward_gain * progress + rng.normal(0.0, 0.025, n)
    loss = 0.04 * (1.0 - progress) + rng.normal(0.0, 0.012, n)
    warmup = np.minimum(1.0, step / 20.0)
    cosine = 0.1 + 0.9 * 0.5 * (1.0 + np.cos(np.pi * (step - 1) / max(n - 1, 1)))
    lr = plan.learning_rate * warmup * cosine

    if plan.verdict == "unstable":
        # A ten-step KL blow-up with exploding gradients and one NaN, then recovery.
        start = int(0.58 * n)
        window = np.arange(start, start + 10)
        bump = np.sin(np.linspace(0.15, np.pi - 0.15, len(window)))
        kl[window] = 0.22 + 0.45 * bump + rng.uniform(0.0, 0.03, len(window))
        spikes = window[[3, 4, 6, 7]]
        grad_norm[spikes] = rng.uniform(60.0, 180.0, len(spikes))
        grad_norm[window[5]] = np.nan
        reward[window] -= 0.12 * bump
        loss[window] += 0.3 * bump
    return {
        "train/kl": np.round(kl, 6),
        "train/grad_norm": np.round(grad_norm, 4),
        "train/reward_mean": np.round(np.clip(reward, 0.0, 1.0), 4),
        "train/loss": np.round(loss, 5),
        "train/learning_rate": lr,
    }


def _policy_series(plan: _Plan, step: np.ndarray, progress: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Policy entropy, clip ratio and response length. Entropy drifts down a little as a policy
    learns; the unstable high-learning-rate run's entropy collapses (to a quarter of its early
    value: below var entropy_collapse_fraction), with clipping rising and responses shrinking."""
    n = len(step)
    learning = plan.verdict in ("learning", "unstable")
    drop = 0.78 if plan.verdict == "unstable" else (0.25 if learning else 0.0)
    entropy = 1.1 * (1.0 - drop * progress) * (1.0 + 0.02 * _ar1(rng, n, 0.7))
    clip = 0.02 + (0.05 if plan.verdict == "unstable" else 0.01) * progress + rng.normal(0.0, 0.003, n)
    growth = -120.0 if plan.verdict == "unstable" else (150.0 if learning else 0.0)
    length = 260.0 + growth * progress + rng.normal(0.0, 8.0, n)
    return {
        "train/entropy": np.round(entropy, 5),
        "train/clip_ratio": np.round(np.clip(clip, 0.0, 1.0), 5),
        "train/response_length": np.round(length, 1),
    }


def _ar1(rng: np.random.Generator, n: int, phi: float) -> np.ndarray:
    eps = rng.normal(0.0, math.sqrt(1.0 - phi * phi), n)
    out = np.empty(n)
    out[0] = rng.normal()
    for i in range(1, n):
        out[i] = phi * out[i - 1] + eps[i]
    return out


def _config(plan: _Plan, n: int, seed: int) -> dict[str, Any]:
    return {
        "algo": "grpo",
        "model": {"base": "Qwen/Qwen2.5-7B-Instruct", "dtype": "bfloat16", "max_seq_len": 4096},
        "learning_rate": plan.learning_rate,
        "kl_coef": plan.kl_coef,
        "batch_size": 64,
        "group_size": 8,
        "total_steps": n,
        "seed": seed,
        "optimizer": {"name": "adamw", "betas": [0.9, 0.999], "weight_decay": 0.0, "warmup_steps": 20},
        "eval": {"every_steps": EVAL_EVERY, "league": list(FIXED_REFERENCES), "games_per_pair": 40},
        "checkpoint_every": CHECKPOINT_EVERY,
        "reward": {"name": "diplomacy_orders", "format_bonus": 0.1},
    }


def _json_floats(values: np.ndarray) -> list[float | None]:
    return [None if math.isnan(v) else float(v) for v in values.tolist()]


# --- manifest ------------------------------------------------------------------


@dataclass
class DemoEventFacts:
    """What the generated events are meant to show (times are ISO 8601 UTC, hours are their start)."""

    window_start: str
    window_end: str
    files: list[str]
    lines: int  # every line written, bad ones included
    counts: dict[str, int]  # good events per kind
    bad_lines: int
    bad_line_locations: list[dict[str, Any]]
    slow_hour: str
    slow_hour_p95_s: float
    normal_p95_s_max: float  # the highest hourly rollout p95 outside the slow hour
    error_hour: str
    error_hour_rate: float
    normal_error_rate: float
    extraction_problem: dict[str, Any]  # run_id, run_name, hours, rate over those hours
    silent_component: dict[str, Any]  # component, host, last_heartbeat_at
    components: list[str]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class DemoManifest:
    """Everything `generate_demo` wrote and what the warehouse should conclude from it."""

    out_dir: Path
    wandb_dirs: list[Path]
    events_dir: Path
    seed: int
    now: str
    project: str
    entity: str
    runs: list[DemoRun]
    sweeps: dict[str, dict[str, Any]]
    events: DemoEventFacts
    seconds: float

    def run(self, name: str) -> DemoRun:
        for r in self.runs:
            if r.name == name:
                return r
        raise KeyError(name)

    def to_dict(self, include_series: bool = False) -> dict[str, Any]:
        return {
            "out_dir": str(self.out_dir),
            "wandb_dirs": [str(d) for d in self.wandb_dirs],
            "events_dir": str(self.events_dir),
            "seed": self.seed,
            "now": self.now,
            "project": self.project,
            "entity": self.entity,
            "runs": [r.to_dict(include_series) for r in self.runs],
            "sweeps": self.sweeps,
            "events": self.events.to_dict(),
            "seconds": self.seconds,
        }


def _sweeps(runs: list[DemoRun]) -> dict[str, dict[str, Any]]:
    """Per sweep: runs ranked by designed final gap, and whether the top two are a tie."""
    out: dict[str, dict[str, Any]] = {}
    for run in runs:
        if run.final_gap is None:
            continue
        out.setdefault(run.sweep, {"runs": []})["runs"].append(run)
    result = {}
    for sweep, entry in out.items():
        ranked = sorted(entry["runs"], key=lambda r: r.final_gap, reverse=True)
        top, second = ranked[0], ranked[1]
        # Designed as 3 Elo (tie) or >= 70 Elo (clear winner); any cut in between agrees.
        tie = top.final_gap - second.final_gap < 10.0
        result[sweep] = {
            "runs": [r.name for r in ranked],
            "final_gaps": {r.name: r.final_gap for r in ranked},
            "winner": None if tie else top.name,
            "tie": [top.name, second.name] if tie else None,
        }
    return result


# --- W&B runs --------------------------------------------------------------------


def _wandb_env(out_dir: Path) -> dict[str, str]:
    home = out_dir / WANDB_HOME_SUBDIR
    env = dict(os.environ)
    for key in [k for k in env if k.startswith("WANDB_")]:
        del env[key]  # a user's WANDB_API_KEY, WANDB_BASE_URL... play no part offline
    env.update(
        WANDB_SILENT="true",
        WANDB_MODE="offline",
        WANDB_DIR=str(out_dir),
        WANDB_CONFIG_DIR=str(home / "config"),
        WANDB_CACHE_DIR=str(home / "cache"),
        WANDB_DATA_DIR=str(home / "data"),
        WANDB_ARTIFACT_DIR=str(home / "artifacts"),
        WANDB_DISABLE_GIT="true",
        WANDB_DISABLE_CODE="true",
        PYTHONPATH=os.pathsep.join([str(PROJECT_ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
    )
    return env


def _write_wandb_runs(out_dir: Path, runs: list[DemoRun], say: Callable[[str], None]) -> None:
    """Log every run with the real wandb library in worker processes; sets each run's `wandb_file`.

    wandb keeps process-global state (its service, the current run, settings),
    so runs are never logged in the caller's process: WANDB_WORKERS fresh
    interpreters each log their share one after another.
    """
    by_name = {run.name: run for run in runs}
    env = _wandb_env(out_dir)
    lock = threading.Lock()
    done: list[str] = []
    failures: list[str] = []

    def work(batch: list[DemoRun], spec_dir: Path, worker: int) -> None:
        try:
            log_batch(batch, spec_dir, worker)
        except Exception as exc:  # a thread's exception would otherwise vanish
            with lock:
                failures.append(f"wandb worker {worker}: {exc!r}")

    def log_batch(batch: list[DemoRun], spec_dir: Path, worker: int) -> None:
        paths = []
        for run in batch:
            spec = {
                "dir": str(out_dir),
                "project": DEMO_PROJECT,
                "entity": DEMO_ENTITY,
                "id": run.run_id,
                "name": run.name,
                "group": run.sweep,
                "config": run.config,
                "rows": run.history_rows(),
                "segments": _segment_specs(run),
            }
            path = spec_dir / f"{run.name}.json"
            path.write_text(json.dumps(spec), encoding="utf-8")
            paths.append(str(path))
        with (spec_dir / f"worker-{worker}.stderr").open("w+", encoding="utf-8") as err:
            proc = subprocess.Popen(
                [sys.executable, "-m", "pipelines.demo", "--write-runs", *paths],
                cwd=out_dir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
            )
            assert proc.stdout is not None
            for line in proc.stdout:
                if line.startswith(_DONE_MARK):
                    run = by_name[line[len(_DONE_MARK) :].strip()]
                    with lock:
                        done.append(run.name)
                        say(f"  [{len(done)}/{len(runs)}] {run.name} ({run.run_id}): intended {run.intended_verdict}")
            try:
                code = proc.wait(timeout=WANDB_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                code = proc.wait()
            if code != 0:
                err.seek(0)
                with lock:
                    failures.append(f"wandb worker {worker} exited with {code}:\n{err.read().strip()[-2000:]}")

    home = out_dir / WANDB_HOME_SUBDIR
    home.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="specs-", dir=home) as tmp:
        batches = [runs[i::WANDB_WORKERS] for i in range(WANDB_WORKERS)]
        threads = [
            threading.Thread(target=work, args=(batch, Path(tmp), i), daemon=True) for i, batch in enumerate(batches) if batch
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    if failures:
        raise RuntimeError("writing the demo W&B runs failed: " + "\n".join(failures))
    for run in runs:
        # folder names start with the second the segment began: they sort oldest first
        found = sorted((out_dir / WANDB_SUBDIR).glob(f"offline-run-*-{run.run_id}/run-{run.run_id}.wandb"))
        if len(found) != len(run.segments):
            raise RuntimeError(
                f"expected {len(run.segments)} .wandb file(s) for {run.name} ({run.run_id}), found {len(found)}"
            )
        run.wandb_files = found
        run.wandb_file = found[-1]


def _segment_specs(run: DemoRun) -> list[dict[str, Any]]:
    """Per segment: its first step, the config it starts with, how it ends (preempted but the last)."""
    base = {k: v for k, v in run.config.items() if k not in run.segments[-1][1]}
    out = []
    for i, (first, changes) in enumerate(run.segments):
        last = i == len(run.segments) - 1
        out.append({"first_step": first, "config": {**base, **changes}, "exit_code": 0 if last else PREEMPTED_EXIT_CODE})
    return out


def _log_runs_from_specs(spec_paths: list[Path]) -> None:
    """The worker-process side of `_write_wandb_runs`: log each spec as one offline run, in order."""
    import wandb

    settings = wandb.Settings(
        console="off",
        symlink=False,  # two workers in one dir would race on latest-run and debug.log links
        x_disable_stats=True,
        x_disable_meta=True,
        disable_git=True,
        save_code=False,
    )
    for spec_path in spec_paths:
        spec = json.loads(spec_path.read_text(encoding="utf-8"))
        segments = spec["segments"]
        for i, segment in enumerate(segments):
            if i:  # wandb names a run folder by the second it starts in: the next segment gets its own
                time.sleep(1.02 - time.time() % 1.0)
            until = segments[i + 1]["first_step"] if i + 1 < len(segments) else math.inf
            run = wandb.init(
                mode="offline",
                dir=spec["dir"],
                project=spec["project"],
                entity=spec["entity"],
                id=spec["id"],
                resume="allow",
                name=spec["name"],
                group=spec["group"],
                job_type="train",
                config=segment["config"],
                settings=settings,
            )
            exit_code = 1
            try:
                for step, row in spec["rows"]:
                    if segment["first_step"] <= step < until:
                        run.log(row, step=step)
                exit_code = segment["exit_code"]
            finally:
                run.finish(exit_code=exit_code)
        print(_DONE_MARK + spec["name"], flush=True)


# --- events ------------------------------------------------------------------------


@dataclass(frozen=True)
class _Timeline:
    """When things happen in the 24-hour window (epoch seconds); incidents sit in full clock hours."""

    start: float
    end: float
    full_from: float  # first full hour; background failures stay inside full hours
    full_to: float
    slow_hour: float
    incident_at: float  # vllm-b dies and stops sending heartbeats
    incident_end: float  # the router drops vllm-b; until then its rollouts fail fast
    extraction_hours: tuple[float, ...]
    smoke_start: float

    @classmethod
    def ending(cls, now: dt.datetime) -> _Timeline:
        end = now.timestamp()
        start = end - 24 * HOUR
        top = math.floor(end / HOUR) * HOUR  # start of the current, partial hour
        incident_at = top - 2 * HOUR + 20 * 60
        return cls(
            start=start,
            end=end,
            full_from=math.ceil(start / HOUR) * HOUR,
            full_to=top,
            slow_hour=top - 10 * HOUR,
            incident_at=incident_at,
            incident_end=incident_at + 9 * 60,
            extraction_hours=tuple(top - h * HOUR for h in range(18, 12, -1)),
            smoke_start=top - 21 * HOUR + 10 * 60,
        )

    def in_slow_hour(self, t: np.ndarray) -> np.ndarray:
        return (t >= self.slow_hour) & (t < self.slow_hour + HOUR)


@dataclass
class _Lines:
    """Event lines of one kind with their times in epoch milliseconds, for a global sort."""

    kind: str
    t_ms: np.ndarray
    lines: list[str]


def _iso_ms(t_ms: np.ndarray) -> list[str]:
    return np.char.add(np.datetime_as_string(t_ms.astype("datetime64[ms]"), unit="ms"), "Z").tolist()


def _iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _ms(t: np.ndarray) -> np.ndarray:
    return np.round(t * 1000).astype(np.int64)


def _fmt(values: np.ndarray, digits: int) -> list[str]:
    return [f"{v:.{digits}f}" for v in values.tolist()]


def _arrivals(rng: np.random.Generator, per_min: float, windows: list[tuple[DemoRun, float, float]]):
    """Poisson arrival times per run window: (times, run ids), each sorted within its run."""
    times, ids = [], []
    for run, a, b in windows:
        t = np.sort(rng.uniform(a, b, rng.poisson(per_min * (b - a) / 60)))
        times.append(t)
        ids.append(np.full(len(t), run.run_id))
    return times, ids


@dataclass
class _Rollouts:
    t: np.ndarray
    run_id: np.ndarray
    rollout_id: np.ndarray
    duration_s: np.ndarray
    engine: np.ndarray
    worker: np.ndarray
    failure: np.ndarray  # 0 ok, 1 background failure, 2 the engine died

    def lines(self) -> _Lines:
        t_ms = _ms(self.t)
        rows = zip(
            _iso_ms(t_ms), self.run_id.tolist(), self.rollout_id.tolist(), _fmt(self.duration_s, 3),
            (self.failure > 0).tolist(), self.engine.tolist(), self.worker.tolist(),
        )  # fmt: skip
        return _Lines(
            "rollout",
            t_ms,
            [
                f'{{"_time":"{ti}","event":"rollout","run_id":"{ri}","rollout_id":"{rid}","duration_s":{d},'
                f'"status":"{"error" if failed else "ok"}","engine":"{ENGINES[e]}","worker":"{WORKERS[w]}"}}'
                for ti, ri, rid, d, failed, e, w in rows
            ],
        )


def _rollouts(rng: np.random.Generator, windows, tl: _Timeline) -> _Rollouts:
    times, ids = _arrivals(rng, ROLLOUTS_PER_MIN, windows)
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
    return _Rollouts(
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


def _error_lines(rng: np.random.Generator, rollouts: _Rollouts, run_ids: list[str], tl: _Timeline) -> _Lines:
    """One error per failed rollout (with its rollout_id), plus a few that failed nothing."""
    failed = np.flatnonzero(rollouts.failure)
    pick = rng.integers(0, len(_BACKGROUND_ERRORS), len(failed))
    rows = [
        (
            int(_ms(rollouts.t[i])) + 5,
            _ENGINE_DIED if rollouts.failure[i] == 2 else _BACKGROUND_ERRORS[k],
            str(rollouts.run_id[i]),
            str(rollouts.rollout_id[i]),
        )
        for i, k in zip(failed.tolist(), pick.tolist())
    ]
    extra = 12
    extra_t = _ms(np.sort(rng.uniform(tl.start + 60, tl.end - 60, extra)))
    rows += [(int(ms), _RETRIED, str(rid), None) for ms, rid in zip(extra_t, rng.choice(run_ids, extra))]
    t_ms = np.array([r[0] for r in rows], dtype=np.int64)
    return _Lines(
        "error",
        t_ms,
        [
            f'{{"_time":"{ti}","level":"error","run_id":"{rid}","component":"{comp}","error_type":"{etype}",'
            f'"message":"{msg}"' + (f',"rollout_id":"{roll}"}}' if roll else "}")
            for ti, (_, (comp, etype, msg), rid, roll) in zip(_iso_ms(t_ms), rows)
        ],
    )


def _inference_lines(rng: np.random.Generator, windows, tl: _Timeline) -> _Lines:
    """Requests to two engines; everything is slower in the slow hour, vllm-b gets nothing once dead."""
    times, ids = _arrivals(rng, INFERENCE_PER_MIN, windows)
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
    t_ms = _ms(t)
    rows = zip(
        _iso_ms(t_ms), run_id.tolist(), engine.tolist(), _fmt(latency, 3), _fmt(tokens, 1), batch.tolist(), _fmt(queue, 3)
    )
    return _Lines(
        "inference",
        t_ms,
        [
            f'{{"_time":"{ti}","event":"inference","run_id":"{ri}","engine":"{ENGINES[e]}","latency_s":{la},'
            f'"tokens_per_s":{tp},"batch_size":{bs},"queue_s":{q}}}'
            for ti, ri, e, la, tp, bs, q in rows
        ],
    )


def _extraction_lines(rng: np.random.Generator, windows, tl: _Timeline, problem_run: DemoRun) -> tuple[_Lines, float]:
    """~99 % of expected orders extracted, ~60 % for `problem_run` in the extraction hours; returns that rate."""
    times, ids = _arrivals(rng, EXTRACTIONS_PER_MIN, windows)
    t, run_id = np.concatenate(times), np.concatenate(ids)
    expected = rng.poisson(34, len(t)) + 6
    hour = np.floor(t / HOUR) * HOUR
    problem = (run_id == problem_run.run_id) & np.isin(hour, tl.extraction_hours)
    extracted = rng.binomial(expected, np.where(problem, 0.6, 0.99))
    t_ms = _ms(t)
    lines = [
        f'{{"_time":"{ti}","event":"extraction","run_id":"{ri}","orders_expected":{a},"orders_extracted":{b}}}'
        for ti, ri, a, b in zip(_iso_ms(t_ms), run_id.tolist(), expected.tolist(), extracted.tolist())
    ]
    return _Lines("extraction", t_ms, lines), float(extracted[problem].sum() / expected[problem].sum())


def _heartbeat_lines(rng: np.random.Generator, tl: _Timeline) -> tuple[_Lines, int]:
    """Every 30 s per component until the window ends, or until vllm-b dies; returns its last one (ms)."""
    t_parts, lines = [], []
    silent_last = 0
    for comp, host, mem in HEARTBEAT_COMPONENTS:
        stop = tl.incident_at if comp == SILENT_COMPONENT else tl.end
        t = np.arange(tl.start + rng.uniform(0, HEARTBEAT_EVERY_S), stop, HEARTBEAT_EVERY_S)
        t = np.clip(t + rng.uniform(-0.4, 0.4, len(t)), tl.start, stop - 0.001)
        util = np.clip(rng.normal(55.0 if comp == "reward-server" else 82.0, 6.0, len(t)), 0, 100)
        gpu_mem = np.clip(rng.normal(mem, 1.5, len(t)), 0, 80)
        t_ms = _ms(t)
        t_parts.append(t_ms)
        lines += [
            f'{{"_time":"{ti}","event":"heartbeat","component":"{comp}","host":"{host}","status":"ok",'
            f'"gpu_util":{u},"gpu_mem_gb":{m}}}'
            for ti, u, m in zip(_iso_ms(t_ms), _fmt(util, 1), _fmt(gpu_mem, 2))
        ]
        if comp == SILENT_COMPONENT:
            silent_last = int(t_ms.max())
    return _Lines("heartbeat", np.concatenate(t_parts), lines), silent_last


def game_strengths(run: DemoRun) -> dict[str, float]:
    """Each league member's strength for the demo's games: its logged Elo minus base_model's at the
    same evaluations, averaged over the evaluations it was rated at (base_model: 0)."""
    base = run.elo[BASE_MODEL]
    out = {}
    for player, values in run.elo.items():
        d = values - base
        out[player] = float(np.mean(d[np.isfinite(d)]))
    return out


def _game_lines(rng: np.random.Generator, runs: list[DemoRun], tl: _Timeline) -> _Lines:
    """League games at every checkpoint evaluation of the runs with checkpoints: GAME_SEATS seats
    (fewer when fewer players exist yet) drawn from the fixed references and the checkpoints saved
    so far; a seat's score is its strength plus Gumbel noise (so every pair follows Bradley–Terry
    with the logged Elo differences), scores rounded to whole points, ranks from them (ties share)."""
    times, lines = [], []
    for run in runs:
        if not run.checkpoints:
            continue
        strength = game_strengths(run)
        n = int(run.steps[-1])
        for step in run.eval_steps[run.eval_steps % CHECKPOINT_EVERY == 0].tolist():
            pool = [*FIXED_REFERENCES, *(c for c in run.checkpoints if int(c.removeprefix("ckpt_")) <= step)]
            at = tl.start + (tl.end - tl.start) * step / (n + 1)
            for g in range(GAMES_PER_EVAL):
                seats = rng.choice(len(pool), min(GAME_SEATS, len(pool)), replace=False)
                perf = np.array([strength[pool[i]] for i in seats]) * math.log(10) / 400 + rng.gumbel(size=len(seats))
                score = np.round(10 + 4 * perf).astype(int)
                rank = [1 + int(np.sum(score > s)) for s in score]
                players = ",".join(
                    f'{{"player":"{pool[i]}","score":{int(s)},"rank":{r}}}' for i, s, r in zip(seats, score, rank)
                )
                t = at - 2.0 * (GAMES_PER_EVAL - g)  # the evaluation's games end at its point on the timeline
                times.append(t)
                lines.append(
                    f'{{"_time":"{_iso_ms(np.array([_ms(np.array([t]))[0]]))[0]}","event":"game",'
                    f'"game_id":"{run.run_id}-s{step}-g{g:03d}","run_id":"{run.run_id}","step":{step},"players":[{players}]}}'
                )
    return _Lines("game", _ms(np.array(times)), lines)


def _events(runs: list[DemoRun], now: dt.datetime, rng: np.random.Generator) -> tuple[list[_Lines], dict[str, Any]]:
    """Every event line, and the facts they are meant to show, computed from the generated numbers."""
    tl = _Timeline.ending(now)
    sweep_runs = [r for r in runs if r.intended_verdict != "insufficient_data"]
    windows = [(r, tl.start, tl.end) for r in sweep_runs] + [
        (r, tl.smoke_start, tl.smoke_start + 30 * 60) for r in runs if r.intended_verdict == "insufficient_data"
    ]
    problem_run = next(r for r in runs if r.name == EXTRACTION_PROBLEM_RUN)

    rollouts = _rollouts(rng, windows, tl)
    errors = _error_lines(rng, rollouts, [r.run_id for r in sweep_runs], tl)
    inference = _inference_lines(rng, windows, tl)
    extraction, problem_rate = _extraction_lines(rng, windows, tl, problem_run)
    heartbeats, silent_last = _heartbeat_lines(rng, tl)

    hour = np.floor(rollouts.t / HOUR) * HOUR
    full_hours = np.unique(hour[(hour >= tl.full_from) & (hour < tl.full_to)])
    p95 = {h: float(np.percentile(rollouts.duration_s[hour == h], 95)) for h in full_hours}
    error_rate = {h: float(np.mean(rollouts.failure[hour == h] > 0)) for h in full_hours}
    error_hour = max(error_rate, key=error_rate.__getitem__)
    if error_hour != math.floor(tl.incident_at / HOUR) * HOUR or max(p95, key=p95.__getitem__) != tl.slow_hour:
        raise RuntimeError("demo design broken: the incident hours are not the worst hours")
    facts = {
        "window_start": _iso(tl.start),
        "window_end": _iso(tl.end),
        "slow_hour": _iso(tl.slow_hour),
        "slow_hour_p95_s": round(p95[tl.slow_hour], 3),
        "normal_p95_s_max": round(max(v for h, v in p95.items() if h != tl.slow_hour), 3),
        "error_hour": _iso(error_hour),
        "error_hour_rate": round(error_rate[error_hour], 6),
        "normal_error_rate": round(float(np.mean(rollouts.failure == 1)), 6),
        "extraction_problem": {
            "run_id": problem_run.run_id,
            "run_name": problem_run.name,
            "hours": [_iso(h) for h in tl.extraction_hours],
            "rate": round(problem_rate, 6),
        },
        "silent_component": {
            "component": SILENT_COMPONENT,
            "host": next(h for c, h, _ in HEARTBEAT_COMPONENTS if c == SILENT_COMPONENT),
            "last_heartbeat_at": _iso_ms(np.array([silent_last]))[0],
        },
        "components": [c for c, _, _ in HEARTBEAT_COMPONENTS],
    }
    # drawn last: every other event stays exactly as it was before the games existed
    games = _game_lines(rng, runs, tl)
    return [rollouts.lines(), errors, inference, extraction, heartbeats, games], facts


def _bad_lines(now: dt.datetime) -> list[tuple[str, str]]:
    """Lines an ingester must reject (and count), each with why."""
    t = (now - dt.timedelta(minutes=7)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    return [
        ("truncated_json", f'{{"_time":"{t}","event":"rollout","run_id":"demo","rollout_id":"x","duration_s":4'),
        ("missing_time", '{"event":"rollout","run_id":"demo","rollout_id":"y","duration_s":41.2,"status":"ok"}'),
        ("not_json", "Traceback (most recent call last): worker-3 crashed while flushing logs"),
    ]


def _write_events(events_dir: Path, parts: list[_Lines], now: dt.datetime) -> tuple[list[Path], int, list[dict[str, Any]]]:
    """Write one file per UTC day, lines in time order; return (files, lines written, bad line locations).

    Older days are gzipped as an archive would be (a lone day too, so there is
    always one gzip file); the bad lines go into the newest file, spread out.
    """
    t_ms = np.concatenate([p.t_ms for p in parts])
    lines = [line for p in parts for line in p.lines]
    order = np.argsort(t_ms, kind="stable")
    day = t_ms[order] // 86_400_000
    days = np.unique(day).tolist()
    starts = np.searchsorted(day, days).tolist() + [len(order)]
    events_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    bad_locations: list[dict[str, Any]] = []
    for k, d in enumerate(days):
        chunk = [lines[i] for i in order[starts[k] : starts[k + 1]].tolist()]
        compressed = k < len(days) - 1 or len(days) == 1
        stem = dt.datetime.fromtimestamp(d * 86_400, dt.UTC).strftime("axiom-export-%Y-%m-%d")
        path = events_dir / (f"{stem}.ndjson.gz" if compressed else f"{stem}.ndjson")
        if k == len(days) - 1:
            bad = _bad_lines(now)
            for j, (_, text) in enumerate(bad):
                chunk.insert(len(chunk) * (j + 1) // (len(bad) + 1), text)
            bad_locations = [{"file": path.name, "line": chunk.index(text) + 1, "kind": kind} for kind, text in bad]
        body = ("\n".join(chunk) + "\n").encode()
        if compressed:
            with gzip.open(path, "wb", compresslevel=1) as fh:
                fh.write(body)
        else:
            path.write_bytes(body)
        written.append(path)
    return written, len(lines) + len(bad_locations), bad_locations


# --- entry point ---------------------------------------------------------------------


def _utc_now_minute() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(second=0, microsecond=0)


def _as_utc(now: dt.datetime | None) -> dt.datetime:
    """`now`, or the current minute, in UTC (a naive datetime is taken as UTC)."""
    if now is None:
        return _utc_now_minute()
    return now.replace(tzinfo=dt.UTC) if now.tzinfo is None else now.astimezone(dt.UTC)


def write_demo_events(events_dir: Path, runs: list[DemoRun], now: dt.datetime | None = None, seed: int = 7) -> DemoEventFacts:
    """Write the demo's 24 hours of events ending at `now` for `runs` and return what they are meant to show."""
    now = _as_utc(now)
    parts, facts = _events(runs, now, np.random.default_rng([seed, 1000]))
    files, n_lines, bad_locations = _write_events(Path(events_dir), parts, now)
    return DemoEventFacts(
        files=[str(p) for p in files],
        lines=n_lines,
        counts={p.kind: len(p.lines) for p in parts},
        bad_lines=len(bad_locations),
        bad_line_locations=bad_locations,
        **facts,
    )


def _prepare_out_dir(out_dir: Path) -> None:
    """Create `out_dir`, or clear a previous demo there; never touch a directory we did not make."""
    if out_dir.exists():
        if not out_dir.is_dir():
            raise NotADirectoryError(f"demo output path is a file: {out_dir}")
        entries = list(out_dir.iterdir())
        if entries and not (out_dir / MANIFEST_NAME).exists():
            raise FileExistsError(
                f"{out_dir} is not empty and holds no {MANIFEST_NAME}; choose an empty or new directory for the demo"
            )
        for sub in (WANDB_SUBDIR, EVENTS_SUBDIR, WANDB_HOME_SUBDIR):
            shutil.rmtree(out_dir / sub, ignore_errors=True)
        (out_dir / MANIFEST_NAME).unlink(missing_ok=True)
    out_dir.mkdir(parents=True, exist_ok=True)


def generate_demo(
    out_dir: Path,
    *,
    seed: int = 7,
    now: dt.datetime | None = None,
    steps: int = 400,
    progress: Callable[[str], None] | None = None,
) -> DemoManifest:
    """Write the demo league's W&B runs and events under `out_dir` and return what they are meant to show.

    `now` is the end of the 24-hour event window (default: the current UTC time
    rounded down to the minute; a naive datetime is taken as UTC). Running it
    again on the same `out_dir` replaces the previous demo.
    """
    began = time.perf_counter()
    say = progress or (lambda _msg: None)
    out_dir = Path(out_dir).expanduser().resolve()
    now = _as_utc(now)
    runs = demo_runs(seed, steps)
    _prepare_out_dir(out_dir)

    say(f"writing {len(runs)} W&B runs (offline, {steps} steps each) to {out_dir / WANDB_SUBDIR}")
    (out_dir / WANDB_SUBDIR).mkdir(exist_ok=True)
    _write_wandb_runs(out_dir, runs, say)

    say("writing 24 h of events")
    event_facts = write_demo_events(out_dir / EVENTS_SUBDIR, runs, now, seed)
    say(f"  {event_facts.lines:,} lines in {len(event_facts.files)} files ({event_facts.bad_lines} deliberately bad)")

    manifest = DemoManifest(
        out_dir=out_dir,
        wandb_dirs=[out_dir / WANDB_SUBDIR],
        events_dir=out_dir / EVENTS_SUBDIR,
        seed=seed,
        now=now.isoformat().replace("+00:00", "Z"),
        project=DEMO_PROJECT,
        entity=DEMO_ENTITY,
        runs=runs,
        sweeps=_sweeps(runs),
        events=event_facts,
        seconds=0.0,
    )
    manifest.seconds = round(time.perf_counter() - began, 2)
    (out_dir / MANIFEST_NAME).write_text(json.dumps(manifest.to_dict(), indent=2) + "\n", encoding="utf-8")
    say(f"demo written in {manifest.seconds:.1f} s; manifest at {out_dir / MANIFEST_NAME}")
    return manifest


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "--write-runs":
        _log_runs_from_specs([Path(p) for p in sys.argv[2:]])
    else:
        sys.exit("usage: python -m pipelines.demo --write-runs SPEC.json...  (internal; use generate_demo)")
