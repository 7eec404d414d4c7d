"""The league's truth: the demo's designed runs (`DemoRun`), their plans, and the simulation of every
number they log — train and policy series per step, league Elo per evaluation — deterministic in
(seed, steps) and shaped so each run's intended verdict holds."""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

EVAL_EVERY = 25
CHECKPOINT_EVERY = 100
FINAL_GAP_WINDOW = 5  # mirrors var final_gap_window: the designed final gap is over these evals
BASE_MODEL = "base_model"
FIXED_REFERENCES = (BASE_MODEL, "chaos_bot")
SMOKE_STEPS = 3 * EVAL_EVERY  # three evaluation points: below var min_eval_points
MIN_STEPS = 2 * CHECKPOINT_EVERY  # fewer leaves too few checkpoint evals for a learning verdict

TRAIN_KEYS = (
    "train/kl",
    "train/grad_norm",
    "train/reward_mean",
    "train/loss",
    "train/learning_rate",
    "train/entropy",
    "train/clip_ratio",
    "train/response_length",
)
ELO_PREFIX = "elo/"
# Preempted twice and resumed from its checkpoints at these shares of its steps: three segments.
RESUMED_RUN = "kl-sweep-1"
RESUMED_AT = (0.375, 0.75)
# Lag-1 autocorrelation of the fixed references' rating noise: an online rating starts each
# update from the previous one (the marts' trends allow for it, see macros/trend.sql).
ELO_NOISE_PHI = 0.6


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
    """The demo's runs with every logged number, deterministic in (seed, steps); writes nothing.

    Every series is designed so its intended verdict holds under the rules in
    ``dbt_project.yml`` (checked for seeds 0-39): the references' noise is
    autocorrelated like an online Elo rating's and made orthogonal to a straight
    line before it is added (so a flat series fits a slope of exactly zero and a
    trending one exactly the slope of its noise-free curve), and each run's checkpoint Elo is
    shifted so its final gap is exactly the designed one (so the tie stays a tie
    and the clear winner stays clear).
    """
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
        train={
            **_train_series(plan, step, progress, rng),
            **_policy_series(plan, step, progress, np.random.default_rng([seed, 1000 + _PLANS.index(plan)])),
        },
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


def _train_series(
    plan: _Plan, step: np.ndarray, progress: np.ndarray, rng: np.random.Generator
) -> dict[str, np.ndarray]:
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


def _policy_series(
    plan: _Plan, step: np.ndarray, progress: np.ndarray, rng: np.random.Generator
) -> dict[str, np.ndarray]:
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
