"""The demo league's games: each member's strength from its logged Elo, and the seven-seat games
played at every checkpoint evaluation, scored so pairs follow Bradley–Terry with those strengths."""

from __future__ import annotations

import math

import numpy as np

from pipelines.demo.event_timeline import EventLines, Timeline, epoch_ms, iso_ms
from pipelines.demo.league_truth import (
    BASE_MODEL,
    CHECKPOINT_EVERY,
    FIXED_REFERENCES,
    DemoRun,
)

GAMES_PER_EVAL = 150  # league games at each checkpoint evaluation (4 evaluations x 150 > min_games_for_verdict)
GAME_SEATS = 7  # Diplomacy has seven


def game_strengths(run: DemoRun) -> dict[str, float]:
    """Each league member's strength for the demo's games: its logged Elo minus base_model's at the
    same evaluations, averaged over the evaluations it was rated at (base_model: 0)."""
    base = run.elo[BASE_MODEL]
    out = {}
    for player, values in run.elo.items():
        d = values - base
        out[player] = float(np.mean(d[np.isfinite(d)]))
    return out


def game_lines(rng: np.random.Generator, runs: list[DemoRun], tl: Timeline) -> EventLines:
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
                    f'{{"_time":"{iso_ms(np.array([epoch_ms(np.array([t]))[0]]))[0]}","event":"game",'
                    f'"game_id":"{run.run_id}-s{step}-g{g:03d}","run_id":"{run.run_id}","step":{step},"players":[{players}]}}'
                )
    return EventLines("game", epoch_ms(np.array(times)), lines)
