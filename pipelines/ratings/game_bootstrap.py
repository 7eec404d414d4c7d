"""The bootstrap over games: multinomial resampling counts per round and the ratings of every
round, each a reweighting of the per-game pairwise rows refitted by Newton's method."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from pipelines.ratings.pairwise_games import GameStats
from pipelines.ratings.strength_mle import ratings_from_scores


def resample_counts(seeds: Sequence[np.random.SeedSequence], n_games: int) -> np.ndarray:
    """(n_games, rounds) multinomial counts: round k draws n_games games with replacement, with seed k.

    Counts are uint8 while drawn (a game drawn 256 times in one round has
    probability below 1e-500), then float32 in game-major order for the product.
    """
    counts = np.empty((len(seeds), n_games), dtype=np.uint8)
    for k, s in enumerate(seeds):
        counts[k] = np.bincount(np.random.default_rng(s).integers(0, n_games, n_games), minlength=n_games)
    return np.ascontiguousarray(counts.T).astype(np.float32)


def bootstrap(
    stats: GameStats,
    anchor: int,
    anchor_rating: float,
    rounds: int,
    seed: int = 0,
    chunk: int = 50,
    workers: int | None = None,
    start: np.ndarray | None = None,
) -> np.ndarray:
    """Ratings of ``rounds`` resamples of the games: (rounds, players).

    Round k uses child k of ``SeedSequence(seed)``, so the result does not
    depend on ``chunk`` or ``workers``. A round reweights the per-game count
    rows: W* = X.T @ counts; ``chunk`` rounds share one sparse-times-dense
    product (each game's row read once per chunk), chunks run on ``workers``
    threads (numpy and scipy release the GIL in the heavy parts).
    """
    from concurrent.futures import ThreadPoolExecutor

    p = stats.n_players
    out = np.empty((rounds, p))
    seeds = np.random.SeedSequence(seed).spawn(rounds)
    XT = stats.X.astype(np.float32).T  # CSC: one column per game

    def run(first: int) -> None:
        part = seeds[first : first + chunk]
        w = np.asarray(XT @ resample_counts(part, stats.n_games), dtype=np.float64)  # (P*P, m)
        for k in range(len(part)):
            out[first + k] = ratings_from_scores(w[:, k].reshape(p, p), anchor, anchor_rating, start)

    starts = list(range(0, rounds, chunk))
    n_workers = workers or 1
    if n_workers <= 1 or len(starts) == 1:
        for s in starts:
            run(s)
    else:
        with ThreadPoolExecutor(n_workers) as ex:
            list(ex.map(run, starts))
    return out
