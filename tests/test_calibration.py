"""The learning verdict is calibrated: simulated runs with a known truth, through the real dbt models.

A fixed-seed subset of bench/calibration.py (the full grid is a documented
command): flat runs whose references and equally strong checkpoints never
change strength, with AR(1) rating noise as online Elo ratings have, and runs
whose base_model falls 150 Elo over 16 evaluations. The shares are counted
from fct_learning_verdicts / fct_gap_trends; the textbook interval (independent
noise) is built from the same runs to show what the correction is for.
"""

from __future__ import annotations

import pytest

from bench import calibration

RUNS = 300
SEED = 7
CELLS = [
    calibration.Cell(kind, phi, 25.0, 16, k)
    for phi in (0.5, 0.8)
    for kind, k in (("flat", 1), ("flat", 10), ("learning", calibration.LEARNING_CHECKPOINTS))
]


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory):
    return {
        c["cell"]: c for c in calibration.calibrate(CELLS, RUNS, SEED, tmp_path_factory.mktemp("calibration"))["cells"]
    }


@pytest.fixture(scope="module")
def textbook(tmp_path_factory):
    overrides = {"trend_autocorrelation": False, "elo_noise_phi_floor": 0}
    result = calibration.calibrate(CELLS, RUNS, SEED, tmp_path_factory.mktemp("textbook"), overrides)
    return {c["cell"]: c for c in result["cells"]}


def test_flat_runs_are_called_learning_at_most_5_percent_of_the_time_even_with_autocorrelated_ratings(calibrated):
    for cell in CELLS:
        if cell.kind == "flat":
            got = calibrated[cell.name]
            assert got["runs"] == RUNS
            assert got["learning_share"] <= 0.05 and got["learning_ci95"][1] <= 0.08, got


def test_equally_strong_checkpoints_do_not_make_the_gap_grow(calibrated):
    for cell in CELLS:
        if cell.kind == "flat":
            assert calibrated[cell.name]["gap_growing_share"] <= 0.05, calibrated[cell.name]


def test_a_base_model_falling_150_elo_over_16_evaluations_is_found_at_least_80_percent_of_the_time(calibrated):
    got = calibrated[calibration.Cell("learning", 0.8, 25.0, 16, calibration.LEARNING_CHECKPOINTS).name]
    assert got["learning_share"] >= 0.80, got


def test_the_textbook_interval_calls_flat_autocorrelated_runs_learning_far_more_often(calibrated, textbook):
    """What the correction is for: the same runs, built with the interval that assumes independent noise."""
    name = calibration.Cell("flat", 0.8, 25.0, 16, 1).name
    assert textbook[name]["learning_share"] > 0.08 > calibrated[name]["learning_share"]


def test_wilson_intervals_match_the_closed_form():
    import math

    for k, n in ((0, 300), (3, 300), (150, 300), (300, 300)):
        p, z = k / n, 1.959963984540054
        centre = (p + z * z / (2 * n)) / (1 + z * z / n)
        half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
        lo, hi = calibration.wilson(k, n)
        assert lo == pytest.approx(max(0.0, centre - half), abs=1e-12) and hi == pytest.approx(
            min(1.0, centre + half), abs=1e-12
        )


def test_answers_judge_rates_on_the_same_wilson_interval_as_scipy():
    from scipy import stats

    from pipelines.answers.judging import judge_p95, judge_rate, wilson

    for k, n in ((0, 50), (0, 1000), (50, 1000), (190, 200), (1, 2000)):
        lo, hi = stats.binomtest(k, n).proportion_ci(0.95, method="wilson")
        assert wilson(k, n) == (pytest.approx(lo, abs=1e-6), pytest.approx(hi, abs=1e-6))
    assert judge_rate(0, 50, 0.01, True, 50)[0] == "inconclusive"  # 0 of 50 does not prove < 1 %
    assert judge_rate(0, 1000, 0.01, True, 50)[0] == "pass"
    assert judge_rate(50, 1000, 0.01, True, 50)[0] == "fail"
    assert judge_rate(0, 30, 0.01, True, 50)[0] == "inconclusive"  # too few rollouts
    assert judge_rate(190, 200, 0.95, False, 100)[0] == "inconclusive"
    assert judge_rate(800, 1000, 0.95, False, 100)[0] == "fail"
    assert judge_rate(0, 0, 0.01, True, 50) == (None, None)
    assert (judge_p95(130.0, 5, 120, 20), judge_p95(130.0, 30, 120, 20), judge_p95(None, 0, 120, 20)) == (
        "inconclusive",
        "fail",
        None,
    )


SWEEPS = 150
SWEEP_CELLS = [calibration.SweepCell(0.8, 25.0, 16, size, winner) for size in (3, 6) for winner in (False, True)]


@pytest.fixture(scope="module")
def sweep_ties(tmp_path_factory):
    result = calibration.calibrate_sweeps(SWEEP_CELLS, SWEEPS, SEED, tmp_path_factory.mktemp("sweeps"))
    return {c["cell"]: c for c in result["cells"]}


def test_sweeps_of_equally_strong_runs_name_no_winner_more_than_5_percent_of_the_time(sweep_ties):
    """All pairs of a sweep are tested at once: any pair called different is a false separation."""
    for cell in SWEEP_CELLS:
        if not cell.winner:
            got = sweep_ties[cell.name]
            assert got["sweeps"] == SWEEPS
            assert got["false_separation_share"] <= 0.05 and got["false_separation_ci95"][1] <= 0.08, got


def test_a_run_that_learns_among_flat_ones_is_named_the_untied_winner(sweep_ties):
    """The power the tie rule keeps: a run ~300 Elo ahead in a sweep of 3 is found at least 80 % of the time."""
    got = sweep_ties[calibration.SweepCell(0.8, 25.0, 16, 3, True).name]
    assert got["winner_found_share"] >= 0.80, got
    assert sweep_ties[calibration.SweepCell(0.8, 25.0, 16, 6, True).name]["winner_found_share"] >= 0.6
