"""Games as seats and their pairwise decomposition: `Games` (who sat in which game with what
result) and `GameStats`, the per-game sparse rows of pairwise scores that a Bradley–Terry fit and
its bootstrap sum. Pure numpy/scipy."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp


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
