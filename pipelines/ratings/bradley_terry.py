"""Bradley–Terry ratings from multi-player games: `fit` (point ratings, Fisher covariance and a
bootstrap over games), the `Fit` it returns with its intervals, superiority and games-needed
figures, and the signals derived from a fit (rating slope over checkpoints, intransitive cycles).
The games, the likelihood fit and the bootstrap live in `pairwise_games`, `strength_mle` and
`game_bootstrap`; the names callers use through this module are listed in ``__all__``. Pure
numpy/scipy; no warehouse imports, so it is cheap to import anywhere."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pipelines.ratings.game_bootstrap import bootstrap
from pipelines.ratings.pairwise_games import Games, GameStats, game_stats
from pipelines.ratings.strength_mle import (
    ELO_PER_NAT,
    fisher_covariance_elo,
    ratings_from_scores,
)

__all__ = [
    "ELO_PER_NAT",
    "Z95",
    "Fit",
    "GameStats",
    "Games",
    "bootstrap",
    "cycles",
    "fit",
    "fit_stats",
    "game_stats",
    "slope_interval",
]

Z95 = 1.959963984540054


@dataclass
class Fit:
    """A fit: point ratings, Fisher covariance and (optionally) bootstrap rounds."""

    players: tuple[str, ...]
    anchor: str
    anchor_rating: float
    n_games: int
    rating: np.ndarray
    cov_elo: np.ndarray
    wins: np.ndarray  # pairwise score matrix W (draws half)
    boot: np.ndarray | None = None  # (rounds, players)
    seed: int | None = None

    def index(self, player: str) -> int:
        return self.players.index(player)

    def interval(self, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
        """Percentile bootstrap interval of every rating (an actual round's value: ±inf stays)."""
        if self.boot is None:
            raise ValueError("no bootstrap rounds")
        q = (1 - level) / 2
        lo = np.quantile(self.boot, q, axis=0, method="inverted_cdf")
        hi = np.quantile(self.boot, 1 - q, axis=0, method="inverted_cdf")
        return lo, hi

    def difference(self, i: str, j: str, level: float = 0.95) -> tuple[float, float, float]:
        """rating(i) - rating(j) and its percentile bootstrap interval."""
        a, b = self.index(i), self.index(j)
        point = float(self.rating[a] - self.rating[b])
        if self.boot is None:
            return point, math.nan, math.nan
        d = self.boot[:, a] - self.boot[:, b]
        d = np.where(np.isnan(d), 0.0, d)  # both at the same infinity: no evidence either way
        q = (1 - level) / 2
        return (
            point,
            float(np.quantile(d, q, method="inverted_cdf")),
            float(np.quantile(d, 1 - q, method="inverted_cdf")),
        )

    def superiority(self, i: str, j: str) -> float:
        """Likelihood of superiority: the share of bootstrap rounds with rating(i) > rating(j), ties half."""
        if self.boot is None:
            raise ValueError("no bootstrap rounds")
        a, b = self.boot[:, self.index(i)], self.boot[:, self.index(j)]
        return float(np.mean((a > b) + 0.5 * (a == b)))

    def games_needed(self, i: str, half_width: float, j: str | None = None, z: float = Z95) -> int | None:
        """Total games (of the current mix) for the i - j interval (j: the anchor) to be ±half_width Elo.

        From the Fisher information: Var(i - j) shrinks as 1 / games, so the
        games needed are ceil(n_games * Var * (z / half_width)^2).
        """
        j = self.anchor if j is None else j
        a, b = self.index(i), self.index(j)
        var = self.cov_elo[a, a] + self.cov_elo[b, b] - 2 * self.cov_elo[a, b]
        if not np.isfinite(var) or half_width <= 0:
            return None
        return int(math.ceil(self.n_games * var * (z / half_width) ** 2))


def fit(
    games: Games,
    *,
    anchor: str = "base_model",
    anchor_rating: float = 1000.0,
    rounds: int = 0,
    seed: int = 0,
    chunk: int = 50,
) -> Fit:
    """Fit ratings; with ``rounds`` > 0 also a bootstrap over games (fixed ``seed``).

    The method (the field's standard for arena and game-engine ratings):

    * **Decomposition.** A game of k players is k·(k-1)/2 pairwise outcomes: the
      player with the better result (higher score, or lower rank) wins the pair,
      an equal result is a draw and counts half a win for each.
    * **Fit.** Bradley–Terry by maximum likelihood: P(i beats j) =
      1 / (1 + 10^((R_j - R_i)/400)), i.e. logistic regression on the pairwise
      rows without intercept, here solved by Newton's method on the sufficient
      statistics: for each pair of players the number of pairings ``N[i, j]``
      and for each player its pairwise score ``S[i]`` (wins + half the draws).
      The ratings are on the Elo scale and anchored: ``anchor`` (default
      ``base_model``) is ``anchor_rating`` (1000).
    * **Finite ratings only where they exist.** The MLE is finite exactly for the
      players in the anchor's strongly connected "won or drew against" component
      (Zermelo, Ford): a player who never lost to that group is ``+inf``, one who
      never beat it ``-inf``, one with no games linked to it ``nan``; the group's
      ratings are the fit of its own pairings (the limit of the full MLE).
    * **Bootstrap over games.** The pairs of one game are not independent (one
      ranking decides all of them), so a bootstrap round resamples *games* with
      replacement (multinomial counts over the games, a fixed seed). Each game's
      pairings and scores are a sparse row of the per-game count matrix ``X``
      (one column per pair of players, one per player's score), so a round's
      sufficient statistics are ``X.T @ counts`` — a reweighting of the per-game
      count matrices, no refit over raw rows — and the fit of a round is a Newton
      solve over the players (40 players: a 40x40 system).
    * **Intervals** are the 2.5 % and 97.5 % percentiles of the rounds' ratings
      (method ``inverted_cdf``: an actual round's value, so ±inf stays ±inf).
    * **Likelihood of superiority** of i over j: the share of bootstrap rounds in
      which i's rating exceeds j's (ties count half).
    * **Games needed** to narrow the i-vs-anchor interval to ±h Elo: the fit's
      Fisher information (the inverse of the negative Hessian of the pairwise
      log-likelihood, anchor fixed) gives the variance per game of the
      difference, ``v = n_games * Var``; the games needed are
      ``ceil(v * (z / h)^2)`` with the current mix of games.
    """
    if anchor not in games.players:
        raise ValueError(f"anchor {anchor!r} is not a player")
    return fit_stats(
        game_stats(games),
        games.players,
        anchor=anchor,
        anchor_rating=anchor_rating,
        rounds=rounds,
        seed=seed,
        chunk=chunk,
    )


def fit_stats(
    stats: GameStats,
    players: Sequence[str],
    *,
    anchor: str = "base_model",
    anchor_rating: float = 1000.0,
    rounds: int = 0,
    seed: int = 0,
    chunk: int = 50,
) -> Fit:
    players = tuple(players)
    a = players.index(anchor)
    w = stats.scores()
    rating = ratings_from_scores(w, a, anchor_rating)
    cov = fisher_covariance_elo(w, rating, a, anchor_rating)
    boot = bootstrap(stats, a, anchor_rating, rounds, seed, chunk, start=rating) if rounds > 0 else None
    return Fit(players, anchor, anchor_rating, stats.n_games, rating, cov, w, boot, seed if rounds > 0 else None)


# ---------------------------------------------------------------- derived signals


def slope_interval(
    fit: Fit, players: Sequence[str], xs: Sequence[float], level: float = 0.95
) -> tuple[float, float, float]:
    """Least-squares slope of the players' ratings over ``xs`` (e.g. checkpoint step), Elo per x unit,
    with the percentile interval of the same slope over the bootstrap rounds."""
    idx = [fit.index(p) for p in players]
    x = np.asarray(xs, dtype=np.float64)
    if len(x) < 2 or np.ptp(x) == 0:
        return math.nan, math.nan, math.nan
    xc = (x - x.mean()) / np.sum((x - x.mean()) ** 2)
    point = float(fit.rating[idx] @ xc)
    if fit.boot is None:
        return point, math.nan, math.nan
    b = fit.boot[:, idx]
    ok = np.all(np.isfinite(b), axis=1)
    slopes = b[ok] @ xc
    if len(slopes) == 0:
        return point, math.nan, math.nan
    q = (1 - level) / 2
    return (
        point,
        float(np.quantile(slopes, q, method="inverted_cdf")),
        float(np.quantile(slopes, 1 - q, method="inverted_cdf")),
    )


def cycles(fit: Fit, players: Sequence[str]) -> list[tuple[str, str, str]]:
    """Intransitive triples among ``players`` from the games themselves: a beat b, b beat c and
    c beat a, each by a pairwise score above one half (a cycle BT cannot represent)."""
    idx = [fit.index(p) for p in players]
    w = fit.wins
    n = w + w.T
    beats = np.zeros((len(idx), len(idx)), dtype=bool)
    for x, i in enumerate(idx):
        for y, j in enumerate(idx):
            beats[x, y] = n[i, j] > 0 and w[i, j] / n[i, j] > 0.5
    out = []
    k = len(idx)
    for a in range(k):
        for b in range(k):
            for c in range(k):
                if a < b and a < c and beats[a, b] and beats[b, c] and beats[c, a]:
                    out.append((players[a], players[b], players[c]))
    return out
