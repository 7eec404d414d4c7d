"""Game-based ratings (pipelines/ratings/bradley_terry.py, issue #16), against independent computations.

Expected values come from tests/independent_stats.py (logistic regression over
FastChat-style pairwise rows with scipy.optimize) or from the simulation's known
truth, never from the module's own output. The coverage simulation over 200
leagues is slow (`-m slow`); a fixed-seed subset of it runs by default.
"""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
from scipy import stats

from pipelines.ratings import bradley_terry as bt
from tests.independent_stats import logistic_bt_elo, pairwise_rows

PLAYERS = ["base_model", "chaos_bot", "ckpt_100", "ckpt_200", "ckpt_300", "random_bot"]


def league_games(seed: int, n_games: int, seats: int, strength_elo: dict[str, float], ties: bool = False):
    """Games as lists of (player, score): score = strength + Gumbel noise (BT pairwise),
    rounded to integers when `ties` (so some pairs draw)."""
    rng = np.random.default_rng(seed)
    names = list(strength_elo)
    games = []
    for _ in range(n_games):
        who = rng.choice(len(names), seats, replace=False)
        perf = np.array([strength_elo[names[i]] / bt.ELO_PER_NAT for i in who]) + rng.gumbel(size=seats)
        if ties:
            perf = np.round(perf)
        games.append([(names[i], float(v)) for i, v in zip(who, perf)])
    return games


def to_games(games, higher_is_better=True, ids=None):
    gid, pl, val = [], [], []
    for n, seats in enumerate(games):
        for p, v in seats:
            gid.append(ids[n] if ids else f"g{n:05d}")
            pl.append(p)
            val.append(v)
    return bt.Games.from_seats(gid, pl, val, higher_is_better=higher_is_better)


TRUE = {
    "base_model": 0.0,
    "chaos_bot": 120.0,
    "ckpt_100": -60.0,
    "ckpt_200": 40.0,
    "ckpt_300": 90.0,
    "random_bot": -250.0,
}


@pytest.mark.parametrize("seats,ties", [(2, False), (4, True), (6, False)])
def test_fit_equals_logistic_regression_over_pairwise_rows(seats, ties):
    games = league_games(1, 400, seats, TRUE, ties=ties)
    expected = logistic_bt_elo(pairwise_rows(games), "base_model")
    f = bt.fit(to_games(games))
    for p in PLAYERS:
        assert f.rating[f.index(p)] == pytest.approx(expected[p], abs=1e-6)
    assert f.rating[f.index("base_model")] == 1000.0


def test_ranks_lower_is_better_and_configurable_anchor():
    games = league_games(2, 300, 5, TRUE)
    # ranks: 1 = best
    ranked = [[(p, float(r + 1)) for r, (p, _) in enumerate(sorted(g, key=lambda s: -s[1]))] for g in games]
    expected = logistic_bt_elo(pairwise_rows(ranked, higher_is_better=False), "chaos_bot", 1500.0)
    f = bt.fit(to_games(ranked, higher_is_better=False), anchor="chaos_bot", anchor_rating=1500.0)
    for p in PLAYERS:
        assert f.rating[f.index(p)] == pytest.approx(expected[p], abs=1e-6)


def test_shuffled_game_order_gives_the_same_ratings_and_intervals():
    games = league_games(3, 300, 4, TRUE, ties=True)
    a = bt.fit(to_games(games), rounds=50, seed=7)
    order = list(range(len(games)))
    random.Random(5).shuffle(order)
    shuffled = [list(reversed(games[i])) for i in order]  # games and seats within a game reordered
    b = bt.fit(to_games(shuffled, ids=[f"g{i:05d}" for i in order]), rounds=50, seed=7)
    np.testing.assert_allclose(a.rating, b.rating, atol=1e-9)
    np.testing.assert_allclose(a.boot, b.boot, atol=1e-9)


def test_a_bootstrap_round_is_the_fit_of_resampled_games():
    """Round k equals the independent fit of the games drawn (with replacement, whole games) by seed k."""
    games = league_games(4, 200, 4, TRUE)
    g = to_games(games)
    f = bt.fit(g, rounds=3, seed=11)
    seeds = np.random.SeedSequence(11).spawn(3)
    for k in range(3):
        drawn = np.random.default_rng(seeds[k]).integers(0, len(games), len(games))
        # game ids sort as the list order here, so index i of `games` is game i
        resampled = [games[i] for i in drawn]
        expected = logistic_bt_elo(pairwise_rows(resampled), "base_model")
        for p in PLAYERS:
            assert f.boot[k, f.index(p)] == pytest.approx(expected[p], abs=1e-6)


def test_a_player_who_never_lost_is_infinite_not_a_huge_number():
    games = [
        [("base_model", 1.0), ("ckpt_1", 2.0)],
        [("base_model", 1.0), ("ckpt_1", 3.0)],
        [("base_model", 2.0), ("chaos_bot", 1.0)],
        [("base_model", 1.0), ("chaos_bot", 2.0)],
        [("island", 1.0), ("other_island", 2.0)],
        [("island", 2.0), ("other_island", 1.0)],
    ]
    f = bt.fit(to_games(games))
    assert f.rating[f.index("ckpt_1")] == math.inf
    assert f.rating[f.index("chaos_bot")] == pytest.approx(1000.0, abs=1e-9)  # one win each
    assert math.isnan(f.rating[f.index("island")])


def test_superiority_and_difference_interval():
    games = league_games(5, 600, 4, TRUE)
    f = bt.fit(to_games(games), rounds=200, seed=1)
    point, lo, hi = f.difference("ckpt_300", "base_model")
    assert lo < point < hi
    i, b = f.index("ckpt_300"), f.index("base_model")
    assert f.superiority("ckpt_300", "base_model") == pytest.approx(np.mean(f.boot[:, i] > f.boot[:, b]))
    # base_model vs itself: every round a tie
    assert f.superiority("base_model", "base_model") == 0.5


def test_games_needed_narrows_the_interval_as_promised():
    """Two-player games (pairs independent, so the Fisher information is the whole story): after
    playing the games asked for, the ±half-width is met (95 % bootstrap interval within 15 %)."""
    truth = {"base_model": 0.0, "ckpt_1": 60.0, "chaos_bot": 150.0}
    first = bt.fit(to_games(league_games(6, 300, 2, truth)))
    need = first.games_needed("ckpt_1", 20.0)
    # independent: Var of the difference from the inverse Hessian of the rows' log-likelihood, per game
    assert need > 300
    later = bt.fit(to_games(league_games(7, need, 2, truth)), rounds=400, seed=3)
    _, lo, hi = later.difference("ckpt_1", "base_model")
    assert (hi - lo) / 2 == pytest.approx(20.0, rel=0.15)


def test_trend_slope_and_cycles():
    truth = {"base_model": 0.0, "ckpt_100": 0.0, "ckpt_200": 50.0, "ckpt_300": 100.0, "chaos_bot": 30.0}
    f = bt.fit(to_games(league_games(8, 800, 3, truth)), rounds=200, seed=2)
    slope, lo, hi = bt.slope_interval(f, ["ckpt_100", "ckpt_200", "ckpt_300"], [100, 200, 300])
    x = np.array([100.0, 200.0, 300.0])
    expected = stats.linregress(x, [f.rating[f.index(p)] for p in ["ckpt_100", "ckpt_200", "ckpt_300"]]).slope
    assert slope == pytest.approx(expected)
    assert lo < 0.5 < hi  # truth: 50 Elo per 100 steps
    # a rock-paper-scissors league: each beats the next in every game
    rps = [
        [("base_model", 2.0), ("ckpt_1", 1.0)],
        [("ckpt_1", 2.0), ("chaos_bot", 1.0)],
        [("chaos_bot", 2.0), ("base_model", 1.0)],
    ]
    g = bt.fit(to_games(rps * 5))
    assert bt.cycles(g, ["base_model", "chaos_bot", "ckpt_1"]) == [("base_model", "ckpt_1", "chaos_bot")]
    assert bt.cycles(f, ["base_model", "chaos_bot", "ckpt_300"]) == []


def coverage(n_leagues: int, seed: int, rounds: int = 200) -> tuple[int, int]:
    """Intervals of every non-anchor player (vs the known truth) over simulated leagues."""
    rng = np.random.default_rng(seed)
    hit = total = 0
    names = ["base_model", "a", "b", "c", "d", "e"]
    for league in range(n_leagues):
        strength = dict(zip(names, [0.0, *rng.normal(0.0, 150.0, len(names) - 1)]))
        games = league_games(int(rng.integers(1 << 31)), 400, 4, strength)
        f = bt.fit(to_games(games), rounds=rounds, seed=league)
        lo, hi = f.interval()
        for p in names[1:]:
            i = f.index(p)
            hit += bool(lo[i] <= 1000.0 + strength[p] <= hi[i])
            total += 1
    return hit, total


def wilson(k: int, n: int) -> tuple[float, float]:
    z = 1.959963984540054
    c = (k + z * z / 2) / (n + z * z)
    h = z * math.sqrt(k * (n - k) / n + z * z / 4) / (n + z * z)
    return c - h, c + h


def test_coverage_fixed_seed_subset():
    """25 of the leagues (125 intervals): the rate is within the band a 95 % method gives 125
    intervals with probability > 99 % (binomial 0.95: 112..124 → 0.896..0.992)."""
    hit, total = coverage(25, seed=16)
    assert 0.89 <= hit / total <= 0.995, (hit, total)


@pytest.mark.slow
def test_coverage_200_leagues():
    """200 leagues x 5 players = 1000 intervals: 95 % intervals cover the truth 93-97 % of the time."""
    hit, total = coverage(200, seed=16)
    lo, hi = wilson(hit, total)
    print(f"coverage {hit}/{total} = {hit / total:.3f} (Wilson 95 % {lo:.3f}-{hi:.3f})")
    assert 0.93 <= hit / total <= 0.97
