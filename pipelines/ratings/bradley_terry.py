"""Bradley–Terry ratings from multi-player games, with a bootstrap over games.

The method (the field's standard: LMSYS/FastChat ``elo_analysis.py``,
lmarena ``arena-rank``, KataGo ``elo.py``):

* **Decomposition.** A game of k players is k·(k-1)/2 pairwise outcomes: the
  player with the better result (higher score, or lower rank) wins the pair,
  an equal result is a draw and counts half a win for each.
* **Fit.** Bradley–Terry by maximum likelihood: P(i beats j) =
  1 / (1 + 10^((R_j - R_i)/400)), i.e. logistic regression on the pairwise
  rows without intercept (FastChat's ``compute_mle_elo``), here solved by
  Newton's method on the sufficient statistics: for each pair of players the
  number of pairings ``N[i, j]`` and for each player its pairwise score
  ``S[i]`` (wins + half the draws). The ratings are on the Elo scale and
  anchored: ``anchor`` (default ``base_model``) is ``anchor_rating`` (1000).
* **Finite ratings only where they exist.** The MLE is finite exactly for the
  players in the anchor's strongly connected "won or drew against" component
  (Zermelo/Ford): a player who never lost to that group is ``+inf``, one who
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

Pure numpy/scipy; no warehouse imports, so it is cheap to import anywhere.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import breadth_first_order, connected_components

ELO_PER_NAT = 400.0 / math.log(10.0)  # Elo points per natural-log unit of strength
Z95 = 1.959963984540054


# --------------------------------------------------------------------------- games


@dataclass(frozen=True)
class Games:
    """Games as seats: seat s belongs to game ``seat_game[s]``, is player
    ``seat_player[s]`` (an index into ``players``) with result ``seat_value[s]``
    (higher is better)."""

    players: tuple[str, ...]
    game_ids: tuple[object, ...]
    seat_game: np.ndarray
    seat_player: np.ndarray
    seat_value: np.ndarray

    @property
    def n_games(self) -> int:
        return len(self.game_ids)

    @property
    def n_players(self) -> int:
        return len(self.players)

    @classmethod
    def from_seats(
        cls,
        game_ids: Sequence[object],
        players: Sequence[str],
        values: Sequence[float],
        *,
        higher_is_better: bool = True,
        player_order: Sequence[str] | None = None,
    ) -> Games:
        """One entry per player-result: its game, its player, its result.

        ``higher_is_better=False`` for ranks (1 = first). Players are sorted by
        name (or ``player_order``), games by their id, so the input order of the
        seats never matters. A player seated twice in one game is an error.
        """
        gid = np.asarray(game_ids, dtype=object)
        pl = np.asarray(players, dtype=object)
        val = np.asarray(values, dtype=np.float64)
        if not (len(gid) == len(pl) == len(val)):
            raise ValueError("game_ids, players and values must have the same length")
        if not np.all(np.isfinite(val)):
            raise ValueError("every result must be a finite number")
        if not higher_is_better:
            val = -val
        names = tuple(player_order) if player_order is not None else tuple(sorted(set(pl.tolist())))
        index = {p: i for i, p in enumerate(names)}
        try:
            player_idx = np.fromiter((index[p] for p in pl), dtype=np.int32, count=len(pl))
        except KeyError as e:
            raise ValueError(f"player {e.args[0]!r} is not in player_order") from None
        ids = sorted(set(gid.tolist()), key=lambda g: (str(type(g)), g))
        gindex = {g: i for i, g in enumerate(ids)}
        game_idx = np.fromiter((gindex[g] for g in gid), dtype=np.int64, count=len(gid))
        return cls.from_arrays(names, game_idx, player_idx, val, game_ids=tuple(ids))

    @classmethod
    def from_arrays(
        cls,
        players: Sequence[str],
        seat_game: np.ndarray,
        seat_player: np.ndarray,
        seat_value: np.ndarray,
        game_ids: Sequence[object] | None = None,
    ) -> Games:
        """Integer-coded seats (fast path: the benchmark, the simulations)."""
        seat_game = np.asarray(seat_game, dtype=np.int64)
        seat_player = np.asarray(seat_player, dtype=np.int32)
        seat_value = np.asarray(seat_value, dtype=np.float64)
        order = np.lexsort((seat_player, seat_game))
        seat_game, seat_player, seat_value = seat_game[order], seat_player[order], seat_value[order]
        n_games = int(seat_game.max()) + 1 if len(seat_game) else 0
        same = (seat_game[1:] == seat_game[:-1]) & (seat_player[1:] == seat_player[:-1])
        if same.any():
            g = int(seat_game[1:][same][0])
            raise ValueError(f"a player is seated twice in game {game_ids[g] if game_ids else g!r}")
        ids = tuple(game_ids) if game_ids is not None else tuple(range(n_games))
        return cls(tuple(players), ids, seat_game, seat_player, seat_value)

    def subset(self, game_mask: np.ndarray) -> Games:
        """The games where ``game_mask`` (one bool per game) is true, same players."""
        keep_games = np.flatnonzero(game_mask)
        remap = np.full(self.n_games, -1, dtype=np.int64)
        remap[keep_games] = np.arange(len(keep_games))
        seat_keep = game_mask[self.seat_game]
        return Games(
            self.players,
            tuple(self.game_ids[i] for i in keep_games),
            remap[self.seat_game[seat_keep]],
            self.seat_player[seat_keep],
            self.seat_value[seat_keep],
        )


# ------------------------------------------------------------- sufficient statistics


@dataclass(frozen=True)
class GameStats:
    """Per-game sufficient statistics: one sparse row per game.

    Column ``i * P + j`` holds i's score against j in that game: 1 for a win,
    1/2 for a draw (both directions), 0 for a loss (not stored). Summed over
    games this is the pairwise score matrix ``W``; the pairings are
    ``N = W + W.T`` and the players' scores ``S = W.sum(axis=1)``, so W is all
    a fit needs. A decisive k-player game is k(k-1)/2 stored values.
    """

    n_players: int
    X: sp.csr_matrix

    @property
    def n_games(self) -> int:
        return self.X.shape[0]

    def scores(self, weights: np.ndarray | None = None) -> np.ndarray:
        """The pairwise score matrix W summed over the games (each weighted, if given)."""
        p = self.n_players
        v = np.asarray(self.X.sum(axis=0)).ravel() if weights is None else self.X.T @ weights
        return np.asarray(v, dtype=np.float64).reshape(p, p)


def game_stats(games: Games) -> GameStats:
    """Decompose every game into its pairwise outcomes (vectorized per game size).

    A decisive pair is one stored value (winner over loser: 1), a draw two
    (1/2 each way). The rows are built in game order directly (CSR), no sort
    of the values by column.
    """
    p = games.n_players
    sg, spl, sv = games.seat_game, games.seat_player, games.seat_value
    if len(sg) == 0:
        return GameStats(p, sp.csr_matrix((games.n_games, p * p)))
    starts = np.flatnonzero(np.r_[True, sg[1:] != sg[:-1]])
    sizes = np.diff(np.r_[starts, len(sg)])
    rows, cols, vals = [], [], []
    for k in np.unique(sizes):
        k = int(k)
        if k < 2:
            continue  # a game of one player has no pairwise outcome
        first = starts[sizes == k]
        seat = first[:, None] + np.arange(k)[None, :]  # (games, k)
        iu, ju = np.triu_indices(k, 1)
        pl = spl[seat].astype(np.int64)
        v = sv[seat]
        a, b = pl[:, iu], pl[:, ju]
        va, vb = v[:, iu], v[:, ju]
        g = np.broadcast_to(sg[first][:, None], a.shape)
        draw = va == vb
        rows += [g.ravel(), g[draw]]
        cols += [np.where(va >= vb, a * p + b, b * p + a).ravel(), (b * p + a)[draw]]
        vals += [np.where(draw, 0.5, 1.0).ravel(), np.full(int(draw.sum()), 0.5)]
    r = np.concatenate(rows)
    order = np.argsort(r, kind="stable")
    indptr = np.r_[0, np.cumsum(np.bincount(r, minlength=games.n_games))]
    X = sp.csr_matrix((np.concatenate(vals)[order], np.concatenate(cols)[order], indptr), shape=(games.n_games, p * p))
    return GameStats(p, X)


# ------------------------------------------------------------------------------ fit


def finite_group(w: np.ndarray, anchor: int) -> tuple[np.ndarray, np.ndarray]:
    """Who has a finite rating relative to the anchor: (mask, side).

    Edge i -> j when i won or drew against j at least once. The finite group is
    the anchor's strongly connected component; ``side`` is +1 for a player who
    reaches the anchor but not back (never lost to the group: +inf), -1 for the
    reverse (-inf), 0 otherwise (finite, or no games linked to the anchor).
    """
    p = w.shape[0]
    beat = w > 0
    if np.all(beat | np.eye(p, dtype=bool)):  # everyone won or drew against everyone: one group
        return np.ones(p, dtype=bool), np.zeros(p, dtype=np.int64)
    adj = sp.csr_matrix(beat)
    down = np.zeros(p, dtype=bool)
    down[breadth_first_order(adj, anchor, directed=True, return_predecessors=False)] = True
    up = np.zeros(p, dtype=bool)
    up[breadth_first_order(adj.T.tocsr(), anchor, directed=True, return_predecessors=False)] = True
    finite = down & up
    side = np.where(finite, 0, np.where(up, 1, np.where(down, -1, 0)))
    return finite, side


def _loglik(n: np.ndarray, s: np.ndarray, r: np.ndarray) -> float:
    # sum over unordered pairs of N_ij log(e^ri + e^rj) is half the ordered sum
    return float(np.sum(s * r) - 0.5 * np.sum(n * np.logaddexp(r[:, None], r[None, :])))


def _neg_hessian(n: np.ndarray, r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pr = 1.0 / (1.0 + np.exp(r[None, :] - r[:, None]))  # P(i beats j)
    w = n * pr * (1.0 - pr)
    return np.diag(w.sum(axis=1)) - w, pr


def fit_strengths(
    n: np.ndarray, s: np.ndarray, anchor: int, *, tol: float = 1e-11, max_iter: int = 200, start: np.ndarray | None = None
) -> np.ndarray:
    """MLE natural-log strengths (anchor = 0) from pairings ``n`` and scores ``s``.

    Newton's method with step halving on the concave log-likelihood; every
    player must be in the anchor's finite group (else the MLE is infinite).
    """
    p = len(s)
    free = np.ones(p, dtype=bool)
    free[anchor] = False
    r = np.zeros(p) if start is None else np.asarray(start, dtype=np.float64) - start[anchor]
    ll = _loglik(n, s, r)
    for _ in range(max_iter):
        h, pr = _neg_hessian(n, r)
        g = (s - np.sum(n * pr, axis=1))[free]
        if np.max(np.abs(g), initial=0.0) < tol * max(1.0, float(n.sum())):
            break
        step = np.zeros(p)
        step[free] = np.linalg.solve(h[np.ix_(free, free)], g)
        t = 1.0
        while True:
            cand = r + t * step
            new = _loglik(n, s, cand)
            if new >= ll - 1e-12 * abs(ll) or t < 1e-10:
                break
            t *= 0.5
        r, ll = cand, new
    return r


def ratings_from_scores(
    w: np.ndarray, anchor: int, anchor_rating: float = 1000.0, start: np.ndarray | None = None
) -> np.ndarray:
    """Elo ratings from the pairwise score matrix; ±inf / nan outside the anchor's finite group.

    Within the group the fit uses the group's own pairings only: a pairing with
    a player at ±inf is won or lost with certainty and carries no information.
    """
    finite, side = finite_group(w, anchor)
    out = np.where(side > 0, np.inf, np.where(side < 0, -np.inf, np.nan))
    idx = np.flatnonzero(finite)
    wg = w[np.ix_(idx, idx)]
    st = None
    if start is not None and np.all(np.isfinite(start[idx])):
        st = (start[idx] - anchor_rating) / ELO_PER_NAT  # warm start (bootstrap rounds: the point fit)
    r = fit_strengths(wg + wg.T, wg.sum(axis=1), int(np.flatnonzero(idx == anchor)[0]), start=st)
    out[idx] = anchor_rating + ELO_PER_NAT * r
    return out


def fisher_covariance_elo(w: np.ndarray, rating: np.ndarray, anchor: int, anchor_rating: float) -> np.ndarray:
    """Inverse Fisher information of the ratings, Elo², anchor fixed (its row/column 0); nan off the finite group."""
    p = w.shape[0]
    cov = np.full((p, p), np.nan)
    idx = np.flatnonzero(np.isfinite(rating))
    wg = w[np.ix_(idx, idx)]
    r = (rating[idx] - anchor_rating) / ELO_PER_NAT
    h, _ = _neg_hessian(wg + wg.T, r)
    a = int(np.flatnonzero(idx == anchor)[0])
    free = np.ones(len(idx), dtype=bool)
    free[a] = False
    c = np.zeros((len(idx), len(idx)))
    if free.any():
        c[np.ix_(free, free)] = np.linalg.inv(h[np.ix_(free, free)])
    cov[np.ix_(idx, idx)] = c * ELO_PER_NAT**2
    return cov


# ------------------------------------------------------------------------ results


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
    """Fit ratings; with ``rounds`` > 0 also a bootstrap over games (fixed ``seed``)."""
    if anchor not in games.players:
        raise ValueError(f"anchor {anchor!r} is not a player")
    return fit_stats(game_stats(games), games.players, anchor=anchor, anchor_rating=anchor_rating, rounds=rounds, seed=seed, chunk=chunk)


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


# ---------------------------------------------------------------- derived signals


def slope_interval(fit: Fit, players: Sequence[str], xs: Sequence[float], level: float = 0.95) -> tuple[float, float, float]:
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
    return point, float(np.quantile(slopes, q, method="inverted_cdf")), float(np.quantile(slopes, 1 - q, method="inverted_cdf"))


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
