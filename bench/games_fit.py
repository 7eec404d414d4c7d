#!/usr/bin/env python
"""Benchmark of the game-based ratings (issue #16): fit + bootstrap over games.

    uv run python bench/games_fit.py                         # 1M seven-player games, 40 players, 1,000 rounds
    uv run python bench/games_fit.py --games 100000 --rounds 200 --out games_fit.json

A league of ``--players`` players with known strengths (normal, sd 200 Elo)
plays ``--games`` games of ``--seats`` distinct players each; a seat's result is
its strength plus Gumbel noise, so every pairwise outcome follows Bradley–Terry
exactly. Measured, each on its own: decomposing the games into per-game count
rows, the fit, and the bootstrap (``--rounds`` rounds resampling games). Not a
timed test: the figures go into README.md ("Ratings from games").
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipelines.ratings import bradley_terry as bt


def league(n_games: int, n_players: int, seats: int, seed: int) -> tuple[bt.Games, np.ndarray]:
    rng = np.random.default_rng(seed)
    strength = rng.normal(0.0, 200.0, n_players) / bt.ELO_PER_NAT
    strength -= strength[0]
    # distinct players per game: the first `seats` of a random permutation of each row
    seat_player = np.argsort(rng.random((n_games, n_players)), axis=1)[:, :seats].astype(np.int32)
    perf = strength[seat_player] + rng.gumbel(size=seat_player.shape)
    names = ["base_model"] + [f"p{i:02d}" for i in range(1, n_players)]
    games = bt.Games.from_arrays(names, np.repeat(np.arange(n_games), seats), seat_player.ravel(), perf.ravel())
    return games, 1000.0 + strength * bt.ELO_PER_NAT


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--games", type=int, default=1_000_000)
    ap.add_argument("--players", type=int, default=40)
    ap.add_argument("--seats", type=int, default=7)
    ap.add_argument("--rounds", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=16)
    ap.add_argument("--workers", type=int, default=1, help="threads for the bootstrap (default 1)")
    ap.add_argument("--out", type=Path)
    a = ap.parse_args(argv)

    t0 = time.perf_counter()
    games, truth = league(a.games, a.players, a.seats, a.seed)
    t_gen = time.perf_counter() - t0

    load_before = os.getloadavg()[0]
    t0, c0 = time.perf_counter(), time.process_time()
    stats = bt.game_stats(games)
    t_stats, c_stats = time.perf_counter() - t0, time.process_time() - c0

    t0, c0 = time.perf_counter(), time.process_time()
    f = bt.fit_stats(stats, games.players, rounds=0)
    t_fit, c_fit = time.perf_counter() - t0, time.process_time() - c0

    t0, c0 = time.perf_counter(), time.process_time()
    boot = bt.bootstrap(stats, 0, 1000.0, a.rounds, seed=a.seed, workers=a.workers, start=f.rating)
    t_boot, c_boot = time.perf_counter() - t0, time.process_time() - c0
    f.boot = boot
    lo, hi = f.interval()
    covered = float(np.mean((lo <= truth) & (truth <= hi))) if a.rounds else None

    result = {
        "games": a.games,
        "players": a.players,
        "seats": a.seats,
        "rounds": a.rounds,
        "pairwise_outcomes": int(stats.X.nnz),
        "seconds": {
            "generate": round(t_gen, 2),
            "decompose": round(t_stats, 2),
            "fit": round(t_fit, 3),
            "bootstrap": round(t_boot, 2),
            "decompose_fit_bootstrap": round(t_stats + t_fit + t_boot, 2),
        },
        # CPU seconds of this process: the wall clock on a machine shared with other work
        # overstates the cost; on an idle machine with one worker, wall ≈ CPU
        "cpu_seconds": {
            "decompose": round(c_stats, 2),
            "fit": round(c_fit, 3),
            "bootstrap": round(c_boot, 2),
            "decompose_fit_bootstrap": round(c_stats + c_fit + c_boot, 2),
        },
        "load_average_1min": {"before": round(load_before, 2), "after": round(os.getloadavg()[0], 2)},
        "workers": a.workers,
        "max_abs_error_elo": round(float(np.max(np.abs(f.rating - truth))), 2),
        "median_interval_width_elo": round(float(np.median((hi - lo)[1:])), 2) if a.rounds else None,
        "intervals_covering_truth": covered,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "numpy": np.__version__},
    }
    print(json.dumps(result, indent=2))
    if a.out:
        a.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
