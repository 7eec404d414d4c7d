"""Seed-aware sweeps: runs that differ only in their seed are one configuration cell, ranked by the
interquartile mean of their final gaps, with a 95 % interval; checked against scipy and numpy.

Raw history rows (as the ingest stores them) go through the real dbt build. Each run's gap (its only
checkpoint's Elo minus base_model's) is designed: g plus the deviations +d, -d, +d, -d, 0 over its five
evaluations, so its final gap (the mean over the final window of 5) is exactly g; its standard error
allows for autocorrelated noise (the AR(1) fit of tests/independent_stats.py).
"""

from __future__ import annotations

import datetime as dt
import json
import math

import numpy as np
import pytest
from scipy import stats

from pipelines.raw.layer import Warehouse
from pipelines.raw.schemas import HISTORY, RUNS
from pipelines.settings import dbt_vars
from tests.dbt_harness import dbt_build, query, write_raw
from tests.independent_stats import ar1_mean_variance_factor, ar1_trend_fit

T0 = dt.datetime(2026, 1, 5, tzinfo=dt.UTC)
DEV = np.array([1.0, -1.0, 1.0, -1.0, 0.0])
# (run, config, final gap, deviation size d)
RUNS_OF_SWEEP = [
    ("a-1", {"lr": 1e-6, "seed": 1}, 100.0, 4.0),
    ("a-2", {"lr": 1e-6, "seed": 2}, 110.0, 4.0),
    ("a-3", {"lr": 1e-6, "seed": 3}, 120.0, 4.0),
    ("a-4", {"lr": 1e-6, "seed": 4}, 400.0, 4.0),
    ("a-5", {"lr": 1e-6, "seed": 5}, 130.0, 4.0),
    ("b-1", {"lr": 2e-6, "seed": 1}, 10.0, 4.0),
    ("b-2", {"lr": 2e-6, "seed": 2}, 14.0, 4.0),
    ("c-1", {"lr": 3e-6, "random_seed": 9}, 60.0, 8.0),
]


def rows():
    metas, history = [], []
    for name, config, gap, d in RUNS_OF_SWEEP:
        run_id = name.replace("-", "")
        metas.append({
            "run_id": run_id, "run_name": name, "project": "p", "entity": "e", "run_group": "seedsweep",
            "job_type": "train", "sweep_id": None, "tags": [], "notes": None, "host": None,
            "config_json": json.dumps(config), "summary_json": "{}", "state": "finished", "exit_code": 0,
            "started_at": T0, "runtime_s": 1.0, "last_step": 400, "source": "test",
        })  # fmt: skip
        for i, step in enumerate(range(0, 500, 100)):
            base = 1000.0 - 30.0 * i
            for key, value in (("elo/base_model", base), ("elo/ckpt_0", base + gap + d * DEV[i])):
                history.append({"run_id": run_id, "step": step, "wall_time": T0 + dt.timedelta(seconds=step),
                                "key": key, "value": value})  # fmt: skip
    return metas, history


@pytest.fixture(scope="module")
def cells(tmp_path_factory) -> dict[str, dict]:
    wh = Warehouse(tmp_path_factory.mktemp("seeds"))
    metas, history = rows()
    write_raw(wh, {RUNS: metas, HISTORY: history})
    dbt_build(wh, "--select", "+fct_sweep_cells", "--exclude", "test_type:unit")
    return {tuple(sorted(r["run_names"]))[0][0]: r for r in query(wh, "select * from fct_sweep_cells")}


def test_runs_that_differ_only_in_a_seed_key_are_one_cell(cells):
    assert {k: sorted(c["run_names"]) for k, c in cells.items()} == {
        "a": ["a-1", "a-2", "a-3", "a-4", "a-5"], "b": ["b-1", "b-2"], "c": ["c-1"]}  # fmt: skip
    assert (cells["a"]["n_seeds"], cells["b"]["n_seeds"], cells["c"]["n_seeds"]) == (5, 2, 1)
    assert cells["c"]["is_single_seed"] and not cells["a"]["is_single_seed"]


def test_cells_rank_by_the_interquartile_mean_as_scipy_trims_it(cells):
    for key in "abc":
        gaps = [g for name, _, g, _ in RUNS_OF_SWEEP if name.startswith(key)]
        assert cells[key]["gap_final_iqm"] == pytest.approx(stats.trim_mean(gaps, 0.25), rel=1e-9)
        assert cells[key]["gap_final_mean"] == pytest.approx(np.mean(gaps), rel=1e-9)
    assert [cells[k]["rank"] for k in "acb"] == [1, 2, 3]  # the outlier seed 400 does not carry cell a


def test_a_single_seed_cell_has_the_t_interval_of_its_final_gap(cells):
    _, _, gap, d = RUNS_OF_SWEEP[-1]
    x = np.arange(0, 500, 100, dtype=float)
    fit = ar1_trend_fit(x, gap + d * DEV, float(dbt_vars()["elo_noise_phi_floor"]))
    se = fit["noise_sd"] * math.sqrt(ar1_mean_variance_factor(fit["phi"], len(DEV)))
    t = stats.t.ppf(0.975, max(1, math.floor(fit["df"] + 1e-9)))
    assert cells["c"]["gap_final_ci95_lo"] == pytest.approx(gap - t * se, rel=1e-6)
    assert cells["c"]["gap_final_ci95_hi"] == pytest.approx(gap + t * se, rel=1e-6)


def test_a_multi_seed_cells_bootstrap_interval_agrees_with_numpys(cells):
    rounds = int(dbt_vars()["sweep_bootstrap_rounds"])
    rng = np.random.default_rng(0)
    for key in "ab":
        gaps = np.array([g for name, _, g, _ in RUNS_OF_SWEEP if name.startswith(key)])
        resamples = rng.choice(gaps, size=(20 * rounds, len(gaps)), replace=True)
        iqm = stats.trim_mean(resamples, 0.25, axis=1)
        lo, hi = np.percentile(iqm, [2.5, 97.5])
        got = cells[key]
        spread = gaps.max() - gaps.min()
        assert gaps.min() <= got["gap_final_ci95_lo"] <= got["gap_final_iqm"] <= got["gap_final_ci95_hi"] <= gaps.max()
        # a percentile of 1,000 resamples against one of 20,000: a few percent of the data's range apart at most
        assert (
            abs(got["gap_final_ci95_lo"] - lo) <= 0.08 * spread and abs(got["gap_final_ci95_hi"] - hi) <= 0.08 * spread
        )


def test_cells_whose_intervals_overlap_cannot_be_separated(cells):
    def overlap(x, y):
        return x["gap_final_ci95_lo"] <= y["gap_final_ci95_hi"] and y["gap_final_ci95_lo"] <= x["gap_final_ci95_hi"]

    ids = {k: c["cell_id"] for k, c in cells.items()}
    for k, c in cells.items():
        want = sorted(ids[o] for o in cells if o != k and overlap(c, cells[o]))
        assert sorted(c["tied_with"]) == want and c["is_tie"] == bool(want)
