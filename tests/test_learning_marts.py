"""The learning marts tell learning from noise: checked against numpy/scipy on the generated data.

One module-scoped warehouse holds every test run and is built with one
`dbt build`. Expected values are computed here, independently, from the
arrays the runs were generated from (scipy.stats.linregress + t.ppf for trends,
numpy.percentile for p95), never read back from the marts.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from dataclasses import dataclass, field

import numpy as np
import pytest
from scipy import stats

from pipelines.raw.layer import Warehouse
from pipelines.raw.schemas import HISTORY, RUNS
from pipelines.settings import dbt_vars
from tests.dbt_harness import dbt_build, query, write_raw
from tests.independent_stats import ar1_mean_variance_factor, ar1_trend_fit

T0 = dt.datetime(2026, 1, 5, 9, 0, tzinfo=dt.UTC)
EVAL_STEPS = np.arange(0, 1000, 50)  # 20 evaluation steps
TRAIN_STEPS = np.arange(0, 1000, 5)  # 200 training steps
CHECKPOINT_EVERY = 100
SELECT = [
    "--select",
    "+fct_sweep_rankings +fct_sweep_config_variation +fct_superseded_checkpoints "
    "+fct_elo_trajectory +fct_metric_summaries +stg_wandb__history_other",
    # the learning run logs one NaN grad norm: counted and reported, but here not a reason to call it
    # unstable (the default, true, is covered by the verdict unit tests)
    "--vars",
    "{non_finite_is_unstable: false}",
]


@dataclass
class Run:
    run_id: str
    run_name: str
    run_group: str | None = None
    sweep_id: str | None = None
    config: dict = field(default_factory=dict)
    elo: dict[str, dict[int, float]] = field(default_factory=dict)  # player -> step -> elo
    metrics: dict[str, dict[int, float]] = field(default_factory=dict)  # key -> step -> value

    def meta_row(self, state: str = "finished") -> dict:
        return {
            "run_id": self.run_id,
            "run_name": self.run_name,
            "project": "grpo",
            "entity": "lab",
            "run_group": self.run_group,
            "job_type": "train",
            "sweep_id": self.sweep_id,
            "tags": ["test"],
            "notes": None,
            "host": "node-1",
            "config_json": json.dumps(self.config),
            "summary_json": "{}",
            "state": state,
            "exit_code": 0,
            "started_at": T0,
            "runtime_s": 3600.0,
            "last_step": int(TRAIN_STEPS[-1]),
            "source": "test",
        }

    def history_rows(self) -> list[dict]:
        rows = []
        series = {f"elo/{player}": points for player, points in self.elo.items()} | self.metrics
        for key, points in series.items():
            for step, value in points.items():
                rows.append(
                    {
                        "run_id": self.run_id,
                        "step": int(step),
                        "wall_time": T0 + dt.timedelta(seconds=int(step)),
                        "key": key,
                        "value": float(value),
                    }
                )
        return rows


def league(
    rng: np.random.Generator,
    *,
    base_slope: float,
    bot_slope: float,
    checkpoint_gain: float,
    noise: float = 8.0,
    steps: np.ndarray = EVAL_STEPS,
    checkpoint_offset: float = 0.0,
) -> dict[str, dict[int, float]]:
    """Elo per player and evaluation step.

    base_model and random_bot are fixed references: their Elo moves only because
    the league around them gets stronger (slope < 0 when the policy learns).
    ckpt_<c> is rated from step c on, around 1200 + checkpoint_gain * c.
    """
    elo: dict[str, dict[int, float]] = {
        "base_model": {int(s): 1200 + base_slope * s + rng.normal(0, noise) for s in steps},
        "random_bot": {int(s): 1000 + bot_slope * s + rng.normal(0, noise) for s in steps},
    }
    for c in range(0, int(steps[-1]) + 1, CHECKPOINT_EVERY):
        elo[f"ckpt_{c}"] = {
            int(s): 1200 + checkpoint_gain * c + checkpoint_offset + rng.normal(0, noise) for s in steps if s >= c
        }
    return elo


def training_metrics(
    rng: np.random.Generator, *, kl_key: str = "train/kl", reward_slope: float = 0.0004
) -> dict[str, dict[int, float]]:
    return {
        kl_key: {int(s): abs(0.02 + rng.normal(0, 0.005)) for s in TRAIN_STEPS},
        "train/grad_norm": {int(s): abs(2.0 + rng.normal(0, 0.5)) for s in TRAIN_STEPS},
        "train/reward_mean": {int(s): 0.2 + reward_slope * s + rng.normal(0, 0.05) for s in TRAIN_STEPS},
        "train/loss": {int(s): 1.0 - 0.0002 * s + rng.normal(0, 0.02) for s in TRAIN_STEPS},
    }


def make_runs() -> dict[str, Run]:
    rng = np.random.default_rng(20260105)
    runs: dict[str, Run] = {}

    learn = Run("r-learn", "learn-1", run_group="lr-sweep", config={"lr": 1e-6, "model": {"name": "qwen"}})
    learn.elo = league(rng, base_slope=-0.15, bot_slope=-0.05, checkpoint_gain=0.2)
    learn.metrics = training_metrics(rng)
    learn.metrics["kl"] = {int(s): 9.0 for s in TRAIN_STEPS[:10]}  # a later alias: must lose to train/kl
    learn.metrics["train/grad_norm"][500] = math.nan  # counted as non-finite, kept out of p95
    learn.metrics["train/loss"][505] = math.inf
    runs["learn"] = learn

    # Same league as learn, checkpoints 3 Elo stronger: indistinguishable final gaps.
    twin = Run("r-twin", "learn-2", run_group="lr-sweep", config={"lr": 2e-6, "model": {"name": "qwen"}})
    twin.elo = {
        player: {s: v + (3.0 if player.startswith("ckpt_") else 0.0) for s, v in points.items()}
        for player, points in learn.elo.items()
    }
    twin.metrics = training_metrics(rng)
    runs["twin"] = twin

    flat = Run("r-flat", "flat-1", run_group="lr-sweep", config={"lr": 1e-9, "model": {"name": "qwen"}})
    flat.elo = league(rng, base_slope=0.0, bot_slope=0.0, checkpoint_gain=0.0)
    flat.metrics = training_metrics(rng, reward_slope=0.0)
    runs["flat"] = flat

    unstable = Run("r-unstable", "unstable-1", run_group="lr-sweep", config={"lr": 1e-4, "model": {"name": "qwen"}})
    unstable.elo = league(rng, base_slope=-0.15, bot_slope=-0.05, checkpoint_gain=0.1)
    unstable.metrics = training_metrics(rng, kl_key="objective/kl")
    for s in (300, 305, 600):
        unstable.metrics["objective/kl"][s] = 0.5
    runs["unstable"] = unstable

    short = Run("r-short", "short-7")
    short.elo = league(rng, base_slope=-0.5, bot_slope=-0.2, checkpoint_gain=0.5, steps=EVAL_STEPS[:3])
    short.metrics = training_metrics(rng)
    runs["short"] = short

    swept = Run("r-swept", "eager-sun-12", sweep_id="sw123", run_group="ignored-group")
    runs["swept"] = swept
    return runs


def gap_series(run: Run) -> tuple[np.ndarray, np.ndarray]:
    """(steps, newest checkpoint's Elo - base_model Elo) where both exist."""
    steps, gaps = [], []
    for s, base in sorted(run.elo["base_model"].items()):
        ckpts = sorted((int(p[5:]), pts[s]) for p, pts in run.elo.items() if p.startswith("ckpt_") and s in pts)
        if ckpts:
            steps.append(s)
            gaps.append(ckpts[-1][1] - base)
    return np.array(steps, dtype=float), np.array(gaps)


def fit(x: np.ndarray, y: np.ndarray, phi_floor: float) -> dict[str, float]:
    return ar1_trend_fit(x, y, phi_floor)


def label(f: dict[str, float], n: int, min_change: float, min_points: int, up: str, down: str) -> str:
    if n < max(min_points, 3):
        return "insufficient_data"
    if f["lo"] > 0 and f["fitted"] >= min_change:
        return up
    if f["hi"] < 0 and f["fitted"] <= -min_change:
        return down
    return "stable"


@pytest.fixture(scope="module")
def rules() -> dict:
    v = dbt_vars()
    return {
        "min_change": float(v["min_elo_change"]),
        "min_points": int(v["min_eval_points"]),
        "window": int(v["final_gap_window"]),
        "kl_spike": float(v["kl_spike_min"]),
        "kl_allowed": int(v["kl_spike_steps_allowed"]),
        "grad_max": float(v["grad_norm_max"]),
        "elo_phi_floor": float(v["elo_noise_phi_floor"]),
        "reward_phi_floor": float(v["reward_noise_phi_floor"]),
    }


@pytest.fixture(scope="module")
def runs() -> dict[str, Run]:
    return make_runs()


@pytest.fixture(scope="module")
def wh(tmp_path_factory, runs) -> Warehouse:
    wh = Warehouse(tmp_path_factory.mktemp("learning_wh"))
    learn = runs["learn"]
    # A first batch with a stale run version (the run was still running):
    # staging must keep the latest version. History never repeats a step
    # (ingest takes only steps after the stored ones), so it is not re-sent.
    write_raw(wh, {RUNS: [learn.meta_row(state="running")]})
    write_raw(
        wh,
        {
            RUNS: [run.meta_row() for run in runs.values()],
            HISTORY: [row for run in runs.values() for row in run.history_rows()],
        },
    )
    dbt_build(wh, *SELECT)
    return wh


def one(wh: Warehouse, sql: str, params: list) -> dict:
    rows = query(wh, sql, params)
    assert len(rows) == 1, rows
    return rows[0]


# --- trends ------------------------------------------------------------------------


@pytest.mark.parametrize("run_key", ["learn", "flat", "unstable"])
@pytest.mark.parametrize("player", ["base_model", "random_bot"])
def test_reference_slope_and_ci_match_an_independent_ar1_corrected_fit(wh, runs, rules, run_key, player):
    run = runs[run_key]
    points = sorted(run.elo[player].items())
    x = np.array([s for s, _ in points], dtype=float)
    y = np.array([v for _, v in points])
    expected = fit(x, y, rules["elo_phi_floor"])

    got = one(wh, "select * from fct_reference_trends where run_id = ? and player = ?", [run.run_id, player])

    assert got["n_points"] == len(x)
    assert got["first_elo"] == pytest.approx(y[0]) and got["last_elo"] == pytest.approx(y[-1])
    assert got["slope_per_100_steps"] == pytest.approx(expected["slope"], rel=1e-9)
    assert got["noise_phi"] == pytest.approx(expected["phi"])
    assert got["slope_ci95_lo"] == pytest.approx(expected["lo"], rel=1e-7)
    assert got["slope_ci95_hi"] == pytest.approx(expected["hi"], rel=1e-7)
    assert got["fitted_change"] == pytest.approx(expected["fitted"], rel=1e-9)
    assert got["trend"] == label(expected, len(x), rules["min_change"], rules["min_points"], "rising", "declining")


def test_the_latest_run_version_wins_and_history_is_stored_once(wh, runs):
    learn = runs["learn"]
    got = one(
        wh,
        "select elo from fct_elo_trajectory where run_id = ? and player = 'base_model' and step = 0",
        [learn.run_id],
    )
    assert got["elo"] == pytest.approx(learn.elo["base_model"][0])
    assert one(wh, "select state from dim_runs where run_id = ?", [learn.run_id])["state"] == "finished"
    dup = query(wh, "select run_id, step, metric_key from stg_wandb__history group by all having count(*) > 1", [])
    assert dup == []


def test_gap_trend_and_final_gap_match_numpy(wh, runs, rules):
    for key in ("learn", "flat", "unstable"):
        run = runs[key]
        x, gaps = gap_series(run)
        expected = fit(x, gaps, rules["elo_phi_floor"])
        tail = gaps[-rules["window"] :]

        got = one(wh, "select * from fct_gap_trends where run_id = ?", [run.run_id])

        assert got["n_points"] == len(x)
        assert got["gap_first"] == pytest.approx(gaps[0]) and got["gap_last"] == pytest.approx(gaps[-1])
        assert got["gap_final"] == pytest.approx(tail.mean(), rel=1e-9)
        # the mean of autocorrelated points: the fit's noise sd and phi, Var = sigma^2 * sum(phi^|i-j|) / n^2
        factor = ar1_mean_variance_factor(expected["phi"], len(tail))
        assert got["gap_final_variance_factor"] == pytest.approx(factor, rel=1e-9)
        assert got["gap_final_se"] == pytest.approx(expected["noise_sd"] * math.sqrt(factor), rel=1e-7)
        assert got["slope_per_100_steps"] == pytest.approx(expected["slope"], rel=1e-9)
        assert got["slope_ci95_lo"] == pytest.approx(expected["lo"], rel=1e-7)
        assert got["trend"] == label(expected, len(x), rules["min_change"], rules["min_points"], "growing", "shrinking")


def test_reward_slope_and_ci_match_an_independent_ar1_corrected_fit_over_two_hundred_steps(wh, runs, rules):
    run = runs["learn"]
    points = sorted(run.metrics["train/reward_mean"].items())
    x = np.array([s for s, _ in points], dtype=float)
    expected = fit(x, np.array([v for _, v in points]), rules["reward_phi_floor"])

    got = one(wh, "select * from fct_training_stability where run_id = ?", [run.run_id])

    assert got["reward_key"] == "train/reward_mean"
    assert got["reward_slope_per_100_steps"] == pytest.approx(expected["slope"], rel=1e-9)
    assert got["reward_ci95_lo"] == pytest.approx(expected["lo"], rel=1e-7)
    assert got["reward_ci95_hi"] == pytest.approx(expected["hi"], rel=1e-7)
    assert got["reward_trend"] == "rising"


# --- stability ---------------------------------------------------------------------


def test_nan_grad_norm_is_counted_as_non_finite_and_kept_out_of_p95(wh, runs, rules):
    run = runs["learn"]
    grad = np.array(list(run.metrics["train/grad_norm"].values()))
    kl = np.array(list(run.metrics["train/kl"].values()))
    all_values = np.concatenate([np.array(list(m.values())) for m in run.metrics.values()])

    got = one(wh, "select * from fct_training_stability where run_id = ?", [run.run_id])

    assert got["non_finite_grad_norm"] == 1
    assert got["non_finite_values"] == int((~np.isfinite(all_values)).sum()) == 2
    assert got["grad_norm_p95"] == pytest.approx(np.percentile(grad[np.isfinite(grad)], 95), rel=1e-12)
    assert got["grad_norm_max"] == pytest.approx(np.nanmax(grad))
    assert got["grad_norm_over_steps"] == int((grad[np.isfinite(grad)] >= rules["grad_max"]).sum()) == 0
    assert got["kl_key"] == "train/kl"  # listed before "kl", which the run also logged
    assert got["kl_p95"] == pytest.approx(np.percentile(kl, 95), rel=1e-12)
    assert got["kl_mean"] == pytest.approx(kl.mean(), rel=1e-12)


def test_kl_spikes_are_counted_under_whichever_alias_the_run_logged(wh, runs, rules):
    run = runs["unstable"]
    kl = np.array(list(run.metrics["objective/kl"].values()))

    got = one(wh, "select * from fct_training_stability where run_id = ?", [run.run_id])

    assert got["kl_key"] == "objective/kl"
    assert got["kl_spike_steps"] == int((kl > rules["kl_spike"]).sum()) == 3
    assert got["kl_p95"] == pytest.approx(np.percentile(kl, 95), rel=1e-12)
    assert got["has_kl_spikes"] is True


def test_metric_summaries_count_non_finite_values_and_summarise_the_rest(wh, runs):
    loss = runs["learn"].metrics["train/loss"]
    values = np.array([v for _, v in sorted(loss.items())])
    finite = values[np.isfinite(values)]

    got = one(
        wh,
        "select * from fct_metric_summaries where run_id = ? and metric_key = 'train/loss'",
        [runs["learn"].run_id],
    )

    assert (got["n_values"], got["non_finite"]) == (len(values), 1)
    assert got["mean_value"] == pytest.approx(finite.mean(), rel=1e-12)
    assert (got["min_value"], got["max_value"]) == (pytest.approx(finite.min()), pytest.approx(finite.max()))
    assert got["first_value"] == pytest.approx(finite[0]) and got["last_value"] == pytest.approx(finite[-1])


# --- verdicts ----------------------------------------------------------------------


def test_a_run_whose_fixed_references_fall_while_checkpoints_pull_ahead_is_learning(wh, runs):
    got = one(wh, "select * from fct_learning_verdicts where run_id = ?", [runs["learn"].run_id])
    assert got["verdict"] == "learning", got["reason"]
    assert got["base_model_trend"] == "declining" and got["gap_trend"] == "growing"
    assert "base_model" in got["reason"]
    # its NaN grad norm is never dropped silently
    assert got["non_finite_stability_values"] == 1 and "1 non-finite" in got["stability_evidence"]


def test_a_flat_noisy_run_is_not_learning(wh, runs):
    got = one(wh, "select * from fct_learning_verdicts where run_id = ?", [runs["flat"].run_id])
    assert got["verdict"] == "not_learning", got["reason"]
    assert got["n_references_declining"] == 0
    assert got["reason"].startswith("No fixed reference declined clearly")


def test_a_learning_run_with_kl_spikes_is_unstable(wh, runs):
    got = one(wh, "select * from fct_learning_verdicts where run_id = ?", [runs["unstable"].run_id])
    assert got["verdict"] == "unstable", got["reason"]
    assert got["kl_spike_steps"] == 3
    assert "KL above" in got["reason"]


def test_too_few_evaluation_points_give_insufficient_data(wh, runs, rules):
    got = one(wh, "select * from fct_learning_verdicts where run_id = ?", [runs["short"].run_id])
    assert got["n_eval_points"] == 3 < rules["min_points"]
    assert got["verdict"] == "insufficient_data"
    never_rated = one(wh, "select * from fct_learning_verdicts where run_id = ?", [runs["swept"].run_id])
    assert (never_rated["verdict"], never_rated["n_eval_points"]) == ("insufficient_data", 0)


# --- sweeps ------------------------------------------------------------------------


def test_sweep_membership_falls_back_from_sweep_id_to_group_to_name_prefix(wh, runs):
    got = {r["run_id"]: (r["sweep_key"], r["sweep_source"]) for r in query(wh, "select * from dim_runs")}
    assert got[runs["swept"].run_id] == ("sw123", "sweep_id")
    assert got[runs["learn"].run_id] == ("lr-sweep", "group")
    assert got[runs["short"].run_id] == ("short", "name_prefix")


def test_sweep_ranking_orders_by_final_gap_and_ties_every_pair_a_bonferroni_test_on_pooled_noise_cannot_separate(
    wh, runs, rules
):
    members = [runs[k] for k in ("learn", "twin", "flat", "unstable")]
    finals, fits = {}, {}
    for run in members:
        x, gaps = gap_series(run)
        fits[run.run_name] = ar1_trend_fit(x, gaps, rules["elo_phi_floor"])
        tail = gaps[-rules["window"] :]
        finals[run.run_name] = (tail.mean(), ar1_mean_variance_factor(fits[run.run_name]["phi"], len(tail)))
    order = sorted(finals, key=lambda name: -finals[name][0])
    pairs = len(order) * (len(order) - 1) // 2
    # the league's noise, pooled over the sweep's runs by their degrees of freedom
    pooled_df = sum(f["df"] for f in fits.values())
    pooled_sd = math.sqrt(sum(f["df"] * f["noise_sd"] ** 2 for f in fits.values()) / pooled_df)
    t = stats.t.ppf(1 - 0.025 / pairs, math.floor(pooled_df))  # 5 % family-wise over all pairs

    def ties(a: str, b: str) -> bool:
        (ga, va), (gb, vb) = finals[a], finals[b]
        return abs(ga - gb) < t * pooled_sd * math.sqrt(va + vb)

    expected_tied = {name: [other for other in order if other != name and ties(name, other)] for name in order}

    got = query(wh, "select * from fct_sweep_rankings where sweep_key = 'lr-sweep' order by rank")

    assert [r["run_name"] for r in got] == order
    assert [r["rank"] for r in got] == [1, 2, 3, 4]
    assert {r["run_name"]: r["tied_with"] for r in got} == expected_tied  # every tie, in rank order
    assert {r["run_name"]: r["is_tie"] for r in got} == {k: bool(v) for k, v in expected_tied.items()}
    # the twin differs from learn-1 by exactly 3 Elo in every checkpoint: a tie by construction
    assert "learn-2" in expected_tied["learn-1"]


def test_sweep_config_variation_lists_only_keys_that_differ(wh):
    got = query(wh, "select * from fct_sweep_config_variation where sweep_key = 'lr-sweep'")
    assert [r["config_key"] for r in got] == ["lr"]
    assert got[0]["n_runs"] == 4 and got[0]["n_distinct_values"] == 4


def test_a_checkpoint_is_superseded_when_a_newer_checkpoint_is_first_rated(wh, runs):
    elo = runs["learn"].elo
    got = one(
        wh,
        "select * from fct_superseded_checkpoints where run_id = ? and player = 'ckpt_100'",
        [runs["learn"].run_id],
    )
    assert got["superseded_at_step"] == CHECKPOINT_EVERY * 2
    assert got["elo_at_superseded"] == pytest.approx(elo["ckpt_100"][200])
    assert got["elo_last"] == pytest.approx(elo["ckpt_100"][int(EVAL_STEPS[-1])])
    assert got["n_points_after"] == int((EVAL_STEPS > 200).sum())
    newest = query(
        wh,
        "select * from fct_superseded_checkpoints where run_id = ? and player = 'ckpt_900'",
        [runs["learn"].run_id],
    )
    assert newest == []
