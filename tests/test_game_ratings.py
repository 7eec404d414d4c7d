"""League games through the real dbt models (issue #16): the game event kind in both shapes,
rejected games with their reasons, and fct_game_ratings / fct_game_learning against an
independent logistic regression over the pairwise rows (tests/independent_stats.py).
"""

from __future__ import annotations

import datetime as dt
import json
import math

import numpy as np
import pytest

from pipelines.raw.layer import Warehouse
from tests.dbt_harness import dbt_build, query, write_raw
from tests.independent_stats import logistic_bt_elo, pairwise_rows
from tests.test_pipeline_marts import EventLog

T0 = dt.datetime(2024, 5, 1, 10, 0, tzinfo=dt.UTC)
ELO = 400.0 / math.log(10.0)
# strengths (Elo vs base_model); the policy improves with its checkpoint step
TRUTH = {
    "base_model": 0.0,
    "chaos_bot": 150.0,
    "random_bot": -200.0,
    "ckpt_100": -40.0,
    "ckpt_200": 40.0,
    "ckpt_300": 120.0,
}
STEPS = {100: ["ckpt_100"], 200: ["ckpt_100", "ckpt_200"], 300: ["ckpt_100", "ckpt_200", "ckpt_300"]}


def runs_rows(*run_ids: str) -> list[dict]:
    return [
        {
            "run_id": r,
            "run_name": r,
            "project": "grpo",
            "entity": "lab",
            "run_group": "grpo",
            "tags": [],
            "config_json": "{}",
            "summary_json": "{}",
            "state": "finished",
            "started_at": T0,
            "last_step": 300,
            "source": "test",
        }
        for r in run_ids
    ]


def simulate(seed: int, n_per_step: int) -> list[tuple[str, int, list[tuple[str, int, int]]]]:
    """(game_id, step, [(player, score, rank)]) games of 5 seats from the players of each step."""
    rng = np.random.default_rng(seed)
    games = []
    for step, ckpts in STEPS.items():
        pool = ["base_model", "chaos_bot", "random_bot", *ckpts]
        for n in range(n_per_step):
            who = rng.choice(pool, min(5, len(pool)), replace=False)
            perf = np.array([TRUTH[p] / ELO for p in who]) + rng.gumbel(size=len(who))
            score = np.round(perf * 2).astype(int)  # integer scores: some draws
            rank = 1 + np.array([np.sum(score > s) for s in score])  # equal scores share a rank
            games.append((f"s{step}-g{n:03d}", step, [(str(p), int(s), int(r)) for p, s, r in zip(who, score, rank)]))
    return games


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    wh = Warehouse(tmp_path_factory.mktemp("games_wh")).ensure()
    log = EventLog()
    games = simulate(1, 60)
    at = T0
    for gid, step, seats in games:
        at += dt.timedelta(seconds=10)
        log.add(
            at,
            event="game",
            run_id="run-a",
            game_id=gid,
            step=step,
            players=[{"player": p, "score": s, "rank": r} for p, s, r in seats],
        )
    # run-b: the same games, one event per player result
    for gid, step, seats in games:
        for p, s, r in seats:
            at += dt.timedelta(seconds=1)
            log.add(at, event="game", run_id="run-b", game_id=gid, step=step, player=p, score=s, rank=r)
    # bad games
    log.add(at, event="game", run_id="run-a", game_id="solo", step=100, players=[{"player": "base_model", "score": 3}])
    log.add(
        at,
        event="game",
        run_id="run-zzz",
        game_id="g1",
        step=100,
        players=[{"player": "base_model", "score": 3}, {"player": "chaos_bot", "score": 5}],
    )
    for score in (1, 2):  # one game id, two different game events
        log.add(
            at,
            event="game",
            run_id="run-a",
            game_id="twice",
            step=100,
            players=[{"player": "base_model", "score": score}, {"player": "chaos_bot", "score": 5}],
        )
    # run-moved: chaos_bot is 300 Elo above base_model at step 100 and 300 below at step 200 (the
    # evaluation changed); run-cycle: base_model beats ckpt_100 beats chaos_bot beats base_model
    rng = np.random.default_rng(3)
    for step, chaos in ((100, 300.0), (200, -300.0)):
        for n in range(40):
            p = 1.0 / (1.0 + 10 ** (-chaos / 400.0))
            win = rng.random() < p
            log.add(
                at,
                event="game",
                run_id="run-moved",
                game_id=f"m{step}-{n}",
                step=step,
                players=[
                    {"player": "chaos_bot", "rank": 1 if win else 2},
                    {"player": "base_model", "rank": 2 if win else 1},
                ],
            )
    cycle = [("base_model", "ckpt_100"), ("ckpt_100", "chaos_bot"), ("chaos_bot", "base_model")]
    for n in range(30):
        for k, (winner, loser) in enumerate(cycle):
            lose = n % 5 == 0  # the favourite wins 4 games in 5
            log.add(
                at,
                event="game",
                run_id="run-cycle",
                game_id=f"c{k}-{n}",
                step=100,
                players=[{"player": winner, "score": 0 if lose else 1}, {"player": loser, "score": 1 if lose else 0}],
            )
    write_raw(wh, {"axiom_events": log.rows, "wandb_runs": runs_rows("run-a", "run-b", "run-moved", "run-cycle")})
    dbt_build(
        wh,
        "--select",
        "+fct_game_learning",
        "+fct_game_rejects",
        "+fct_check_outcomes",
        "--vars",
        json.dumps({"game_bootstrap_rounds": 200, "min_games_for_verdict": 100}),
    )
    return wh, games


def test_bad_games_are_rejected_with_their_reason(built):
    wh, _ = built
    rejects = {(r["run_id"], r["game_id"]): r["reason"] for r in query(wh, "select * from fct_game_rejects")}
    assert rejects == {
        ("run-a", "solo"): "one player",
        ("run-zzz", "g1"): "unknown run run-zzz",
        ("run-a", "twice"): "duplicate game_id: 2 events",
    }


def test_run_ratings_equal_logistic_regression_over_pairwise_rows(built):
    wh, games = built
    # ranks decide (every result has one): lower is better
    expected = logistic_bt_elo(
        pairwise_rows([[(p, r) for p, _, r in seats] for _, _, seats in games], higher_is_better=False), "base_model"
    )
    for run in ("run-a", "run-b"):  # both event shapes give the same games
        got = {
            r["player"]: r
            for r in query(wh, "select * from fct_game_ratings where run_id = ? and scope = 'run'", [run])
        }
        assert set(got) == set(TRUTH)
        for p, e in expected.items():
            assert got[p]["rating"] == pytest.approx(e, abs=1e-6)
            assert got[p]["ci95_lo"] <= got[p]["rating"] <= got[p]["ci95_hi"]
        assert got["base_model"]["ci95_lo"] == got["base_model"]["ci95_hi"] == 1000.0


def test_step_scope_fits_each_evaluation_steps_games(built):
    wh, games = built
    at_200 = [[(p, r) for p, _, r in seats] for _, step, seats in games if step == 200]
    expected = logistic_bt_elo(pairwise_rows(at_200, higher_is_better=False), "base_model")
    got = {
        r["player"]: r["rating"]
        for r in query(wh, "select * from fct_game_ratings where run_id = 'run-a' and scope = 'step' and step = 200")
    }
    assert got == pytest.approx(expected, abs=1e-6)


def test_learning_row_reports_the_gap_trend_and_games_needed(built):
    wh, _ = built
    row = query(wh, "select * from fct_game_learning where run_id = 'run-a'")[0]
    assert row["n_games"] == 180 and row["has_enough_games"]
    assert row["newest_checkpoint"] == "ckpt_300" and row["newest_checkpoint_step"] == 300
    ratings = {
        r["player"]: r for r in query(wh, "select * from fct_game_ratings where run_id = 'run-a' and scope = 'run'")
    }
    assert row["newest_vs_anchor"] == pytest.approx(ratings["ckpt_300"]["rating"] - 1000.0)
    assert row["newest_vs_anchor_ci95_lo"] == pytest.approx(ratings["ckpt_300"]["vs_anchor_ci95_lo"])
    assert 0.0 <= row["newest_superiority"] <= 1.0
    # the slope of the three checkpoints' ratings on their step (numpy), per 100 steps
    x = np.array([100.0, 200.0, 300.0])
    y = np.array([ratings[f"ckpt_{s}"]["rating"] for s in (100, 200, 300)])
    assert row["trend_per_100_steps"] == pytest.approx(100 * np.polyfit(x, y, 1)[0])
    assert row["trend_ci95_lo"] <= row["trend_per_100_steps"] <= row["trend_ci95_hi"]
    assert row["games_needed"] > 0 and row["more_games_needed"] == max(0, row["games_needed"] - 180)
    assert row["harness_stable"] is True  # the references do not change strength here
    assert row["games_signal"] in ("learning", "not_learning")


def test_harness_and_intransitivity_checks(built):
    wh, _ = built
    learning = {r["run_id"]: r for r in query(wh, "select * from fct_game_learning")}
    assert learning["run-moved"]["harness_stable"] is False
    assert "chaos_bot - base_model moved" in learning["run-moved"]["harness_evidence"]
    assert learning["run-cycle"]["is_intransitive"] is True
    assert learning["run-cycle"]["intransitive_cycles"] == "base_model > ckpt_100 > chaos_bot > base_model"
    assert learning["run-a"]["is_intransitive"] is False
    outcomes = {
        (r["check_name"], r["subject"]): r
        for r in query(
            wh, "select * from fct_check_outcomes where check_name in ('game_harness_stable', 'games_transitive')"
        )
    }
    assert outcomes[("game_harness_stable", "run-moved")]["outcome"] == "fail"
    assert outcomes[("game_harness_stable", "run-a")]["outcome"] == "pass"
    assert outcomes[("games_transitive", "run-cycle")]["outcome"] == "fail"
    assert outcomes[("games_transitive", "run-a")]["outcome"] == "pass"
    assert outcomes[("games_transitive", "run-cycle")]["severity"] == "warn"


def test_verdict_says_it_used_the_games(built):
    wh, _ = built
    v = {r["run_id"]: r for r in query(wh, "select * from fct_learning_verdicts")}
    assert v["run-a"]["evidence"] == "games" and v["run-a"]["n_games"] == 180
    assert "from 180 league games" in v["run-a"]["reason"]
    assert v["run-moved"]["evidence"] == "logged_elo"  # 80 games < min_games_for_verdict 100


def test_game_field_names_follow_event_fields(tmp_path):
    """A logger with other names (`match`, `round`, `seats`: [{`name`, `place`}]) needs a var change only."""
    from pipelines.settings import event_fields

    names = {"game_id": "match", "step": "round", "players": "seats", "player": "name", "rank": "place"}
    wh = Warehouse(tmp_path / "wh").ensure()
    log = EventLog(fields=names)
    games = simulate(2, 20)
    for gid, step, seats in games:
        log.add(
            T0,
            event="game",
            run_id="run-a",
            game_id=gid,
            step=step,
            players=[{"name": p, "place": r} for p, _, r in seats],
        )
    write_raw(wh, {"axiom_events": log.rows, "wandb_runs": runs_rows("run-a")})
    dbt_build(
        wh,
        "--select",
        "+fct_game_ratings",
        "--vars",
        json.dumps({"event_fields": {**event_fields(), **names}, "game_bootstrap_rounds": 20}),
    )
    expected = logistic_bt_elo(
        pairwise_rows([[(p, r) for p, _, r in seats] for _, _, seats in games], higher_is_better=False), "base_model"
    )
    got = {r["player"]: r["rating"] for r in query(wh, "select * from fct_game_ratings where scope = 'run'")}
    assert got == pytest.approx(expected, abs=1e-6)
    steps = {r["step"] for r in query(wh, "select distinct step from fct_game_ratings where scope = 'step'")}
    assert steps == set(STEPS)
