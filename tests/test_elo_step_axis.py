"""The Elo step axis: ratings sit on the step metric a run defined for them, and the log calls of one evaluation pair up.

Real offline runs written by the `wandb` library: a TRL-style run that calls
`define_metric("elo/*", step_metric="train/global_step")` and logs each
player's rating in its own `wandb.log` call; the same league logged without any
definition (separate calls again); and a control that logs every rating in one
call. Expected gaps, steps and slopes come from the generated numbers (numpy),
never from the warehouse.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pytest
from fakes.wandb_server import FakeRun, FakeWandbServer

from pipelines.sources.base import RunRef
from pipelines.sources.wandb_api import WandbApiRunSource
from pipelines.sources.wandb_local import LocalRunSource
from tests.wandb_fixtures import write_runs

GRPO = str(Path(sys.executable).with_name("grpo"))
EVAL_EVERY = 25  # global steps between evaluations
N_EVALS = 16
TRAIN_CALLS_PER_EVAL = 5  # log calls of training metrics between evaluations (global step moves 5 per call)


def league(seed: int) -> dict[str, np.ndarray]:
    """Ratings at each evaluation: base_model falls 150 Elo, chaos_bot stays, the newest checkpoint climbs."""
    rng = np.random.default_rng(seed)
    k = np.arange(1, N_EVALS + 1)
    return {
        "base_model": 1000 - 10.0 * k + rng.normal(0, 3, N_EVALS),
        "chaos_bot": 900 + rng.normal(0, 3, N_EVALS),
        "ckpt": 1000 + 12.0 * k + rng.normal(0, 3, N_EVALS),
    }


def spec(run_id: str, folder: Path, ratings: dict[str, np.ndarray], how: str) -> dict[str, Any]:
    """One run's log calls. how: 'defined' (define_metric + separate calls), 'separate' or 'together'."""
    steps: list[dict[str, Any]] = []
    for e in range(N_EVALS):
        for t in range(TRAIN_CALLS_PER_EVAL):
            gs = e * EVAL_EVERY + t * (EVAL_EVERY // TRAIN_CALLS_PER_EVAL)
            steps.append({"data": {"train/global_step": gs, "train/loss": 1.0 / (gs + 1)}})
        gs = (e + 1) * EVAL_EVERY
        players = {
            "elo/base_model": float(ratings["base_model"][e]),
            "elo/chaos_bot": float(ratings["chaos_bot"][e]),
            f"elo/ckpt_{gs}": float(ratings["ckpt"][e]),
        }
        if how == "together":
            steps.append({"data": {"train/global_step": gs, **players}})
        else:
            if how == "defined":
                steps.append({"data": {"train/global_step": gs, "train/loss": 1.0 / (gs + 1)}})
            steps += [{"data": {key: value}} for key, value in players.items()]
    out = {"dir": str(folder), "init": {"id": run_id, "project": "axis", "name": run_id}, "steps": steps}
    if how == "defined":
        out["define_metrics"] = [
            {"name": "train/global_step"},
            {"name": "elo/*", "step_metric": "train/global_step"},
        ]
    return out


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("elo_axis")
    runs = root / "runs"
    ratings = {"defined": league(1), "separate": league(1), "together": league(1)}
    write_runs([spec(f"axis{how}", runs, ratings[how], how) for how in ratings], root / "writer")
    wh = root / "wh"
    env = {**os.environ, "GRPO_WAREHOUSE": str(wh)}
    proc = subprocess.run(
        [GRPO, "ingest", "--wandb-dir", str(runs)], capture_output=True, text=True, env=env, timeout=600
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return {"wh": wh, "ratings": ratings, "runs": runs}


def rows(wh: Path, sql: str, params: list) -> list[tuple]:
    con = duckdb.connect(str(wh / "grpo.duckdb"), read_only=True)
    try:
        return con.execute(sql, params).fetchall()
    finally:
        con.close()


def test_the_reader_keeps_the_step_metric_a_run_defined(built) -> None:
    source = LocalRunSource([built["runs"]])
    metas = {ref.run_id: source.read(ref, None).meta for ref in source.runs()}
    assert metas["axisdefined"].step_metrics == (("elo/*", "train/global_step"),)
    assert metas["axisseparate"].step_metrics == ()


def test_ratings_of_a_run_that_defined_an_elo_step_metric_sit_on_its_global_steps_and_pair_up(built) -> None:
    got = rows(built["wh"], "select step, gap from fct_checkpoint_gaps where run_id = ? order by step", ["axisdefined"])
    r = built["ratings"]["defined"]
    assert [s for s, _ in got] == [(e + 1) * EVAL_EVERY for e in range(N_EVALS)]
    np.testing.assert_allclose([g for _, g in got], r["ckpt"] - r["base_model"], rtol=1e-12)
    axis = rows(
        built["wh"], "select distinct step_metric from int_elo_ratings_classified where run_id = ?", ["axisdefined"]
    )
    assert axis == [("train/global_step",)]


def test_separate_log_calls_without_a_definition_pair_up_at_the_first_call_of_each_evaluation(built) -> None:
    got = rows(
        built["wh"], "select step, gap from fct_checkpoint_gaps where run_id = ? order by step", ["axisseparate"]
    )
    r = built["ratings"]["separate"]
    per_eval = TRAIN_CALLS_PER_EVAL + 3  # training calls, then one call per player
    first_rating_call = [e * per_eval + TRAIN_CALLS_PER_EVAL for e in range(N_EVALS)]
    assert [s for s, _ in got] == first_rating_call
    np.testing.assert_allclose([g for _, g in got], r["ckpt"] - r["base_model"], rtol=1e-12)


def test_the_reference_trend_is_fitted_on_the_defined_axis(built) -> None:
    r = built["ratings"]["defined"]
    x = np.array([(e + 1) * EVAL_EVERY for e in range(N_EVALS)], dtype=float)
    expected = np.polyfit(x, r["base_model"], 1)[0] * 100
    (slope,) = rows(
        built["wh"],
        "select slope_per_100_steps from fct_reference_trends where run_id = ? and player = 'base_model'",
        ["axisdefined"],
    )[0]
    assert slope == pytest.approx(expected, rel=1e-9)


def test_the_three_ways_of_logging_one_league_give_the_same_verdict_and_gaps(built) -> None:
    verdicts = dict(
        rows(built["wh"], "select run_id, verdict from fct_learning_verdicts where run_id like 'axis%'", [])
    )
    assert verdicts["axisdefined"] == verdicts["axisseparate"] == verdicts["axistogether"] == "learning"
    gaps = {
        run: [
            g for (g,) in rows(built["wh"], "select gap from fct_checkpoint_gaps where run_id = ? order by step", [run])
        ]
        for run in ("axisdefined", "axisseparate", "axistogether")
    }
    np.testing.assert_allclose(gaps["axisdefined"], gaps["axistogether"], rtol=1e-12)
    np.testing.assert_allclose(gaps["axisseparate"], gaps["axistogether"], rtol=1e-12)


@pytest.fixture
def server(monkeypatch):
    key = "local-" + "k" * 40
    srv = FakeWandbServer(api_key=key, entity="ent").start()
    monkeypatch.setenv("WANDB_BASE_URL", srv.url)
    monkeypatch.setenv("WANDB_API_KEY", key)
    yield srv
    srv.stop()


def test_the_api_source_reads_the_step_metrics_the_sdk_uploaded_into_the_config(server) -> None:
    # `_wandb.m` as the SDK's sender uploads it: MetricRecords by field number, the
    # step metric as a 1-based index into the same list (5) or by name (4), globs expanded.
    definitions = [
        {"1": "train/global_step", "6": [3], "7": []},
        {"1": "elo/base_model", "5": 1, "6": [1, 3], "7": []},
        {"1": "elo/ckpt_100", "4": "train/global_step", "6": [1, 3], "7": []},
        {"1": "train/loss", "6": [3], "7": []},
    ]
    server.add_run(
        "proj", FakeRun("apiaxis", metric_definitions=definitions, history=[{"_step": 0, "train/loss": 1.0}])
    )
    meta = WandbApiRunSource("ent/proj").read(RunRef("apiaxis", "ent/proj/apiaxis"), None).meta
    assert dict(meta.step_metrics) == {"elo/base_model": "train/global_step", "elo/ckpt_100": "train/global_step"}
