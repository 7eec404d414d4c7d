"""Per-run ratings from league games: the tables behind fct_game_ratings and fct_game_learning.

Input: the valid player results of int_game_results (one row per player
result: run_id, game_id, step, player, player_kind, checkpoint_step,
result_value with higher = better). Everything statistical is in
``bradley_terry``; this module picks the fits a run needs and writes rows:

* ``ratings_rows``: every player's rating with its 95 % bootstrap interval,
  its difference to the anchor (interval, likelihood of superiority), over
  all the run's games (scope ``run``) and per evaluation step (scope ``step``,
  for games that carry one);
* ``learning_rows``: one row per run: the best and the newest checkpoint
  against the anchor, the trend of checkpoint ratings over checkpoint step
  (bootstrap interval), the games needed to narrow best-vs-anchor to ±N Elo,
  the harness check (fixed references' ratings relative to the anchor the
  same in every evaluation step) and intransitive cycles.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from pipelines.ratings import bradley_terry as bt


@dataclass(frozen=True)
class Settings:
    anchor: str = "base_model"
    anchor_elo: float = 1000.0
    rounds: int = 500
    seed: int = 16
    min_games: int = 200
    half_width: float = 25.0

    @classmethod
    def from_config(cls, get: Any) -> Settings:
        """From a dbt Python model's ``dbt.config.get`` (values rendered from vars, maybe as text)."""
        return cls(
            anchor=str(get("game_rating_anchor")),
            anchor_elo=float(get("game_rating_anchor_elo")),
            rounds=int(float(get("game_bootstrap_rounds"))),
            seed=int(float(get("game_bootstrap_seed"))),
            min_games=int(float(get("min_games_for_verdict"))),
            half_width=float(get("game_target_half_width_elo")),
        )


RATING_COLUMNS = [
    "run_id", "scope", "step", "player", "player_kind", "checkpoint_step", "n_games",
    "rating", "ci95_lo", "ci95_hi", "vs_anchor", "vs_anchor_ci95_lo", "vs_anchor_ci95_hi",
    "superiority_vs_anchor", "anchor", "bootstrap_rounds",
]  # fmt: skip

LEARNING_COLUMNS = [
    "run_id", "anchor", "n_games", "n_players", "n_steps", "has_enough_games",
    "best_checkpoint", "best_checkpoint_step", "best_vs_anchor", "best_vs_anchor_ci95_lo", "best_vs_anchor_ci95_hi",
    "best_superiority", "newest_checkpoint", "newest_checkpoint_step", "newest_vs_anchor",
    "newest_vs_anchor_ci95_lo", "newest_vs_anchor_ci95_hi", "newest_superiority",
    "n_checkpoints", "trend_per_100_steps", "trend_ci95_lo", "trend_ci95_hi", "checkpoint_trend",
    "target_half_width", "games_needed", "more_games_needed",
    "harness_stable", "harness_evidence", "is_intransitive", "intransitive_cycles", "games_signal",
    "bootstrap_rounds",
]  # fmt: skip


def _fit(results: pd.DataFrame, s: Settings) -> bt.Fit | None:
    players = set(results["player"])
    if s.anchor not in players or len(players) < 2:
        return None
    games = bt.Games.from_seats(
        results["game_id"].tolist(), results["player"].tolist(), results["result_value"].astype(float).tolist()
    )
    return bt.fit(games, anchor=s.anchor, anchor_rating=s.anchor_elo, rounds=s.rounds, seed=s.seed)


def _num(x: float) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


def _player_rows(run_id: str, scope: str, step: Any, f: bt.Fit, results: pd.DataFrame, s: Settings) -> list[dict]:
    lo, hi = f.interval()
    kinds = results.drop_duplicates("player").set_index("player")
    played = results.groupby("player")["game_id"].nunique()
    rows = []
    for i, p in enumerate(f.players):
        d, dlo, dhi = f.difference(p, s.anchor)
        rows.append({
            "run_id": run_id, "scope": scope, "step": step, "player": p,
            "player_kind": kinds.at[p, "player_kind"], "checkpoint_step": kinds.at[p, "checkpoint_step"],
            "n_games": int(played[p]), "rating": f.rating[i], "ci95_lo": lo[i], "ci95_hi": hi[i],
            "vs_anchor": d, "vs_anchor_ci95_lo": dlo, "vs_anchor_ci95_hi": dhi,
            "superiority_vs_anchor": f.superiority(p, s.anchor), "anchor": s.anchor, "bootstrap_rounds": s.rounds,
        })  # fmt: skip
    return rows


def ratings_rows(results: pd.DataFrame, s: Settings) -> pd.DataFrame:
    """fct_game_ratings: scope ``run`` (all games) and ``step`` (the games of one evaluation step)."""
    rows: list[dict] = []
    for run_id, run in results.groupby("run_id", sort=True):
        f = _fit(run, s)
        if f is not None:
            rows += _player_rows(run_id, "run", None, f, run, s)
        for step, at in run.dropna(subset=["step"]).groupby("step", sort=True):
            fs = _fit(at, s)
            if fs is not None:
                rows += _player_rows(run_id, "step", int(step), fs, at, s)
    return _typed(pd.DataFrame(rows, columns=RATING_COLUMNS))


def _fmt(x: float) -> str:
    return f"{x:+.0f}" if np.isfinite(x) else ("+inf" if x > 0 else "-inf" if x < 0 else "n/a")


def harness(per_step: pd.DataFrame, anchor: str) -> tuple[bool | None, str | None]:
    """The fixed references' ratings relative to the anchor must not move between evaluation steps:
    moved = two steps whose 95 % intervals of (reference - anchor) do not overlap."""
    refs = per_step[(per_step["player_kind"] == "fixed_reference") & (per_step["player"] != anchor)]
    if refs.empty or refs["step"].nunique() < 2:
        return None, None
    moved, parts = [], []
    for player, r in refs.groupby("player", sort=True):
        r = r.sort_values("step")
        lo, hi = r["vs_anchor_ci95_lo"].to_numpy(float), r["vs_anchor_ci95_hi"].to_numpy(float)
        if len(r) < 2:
            continue
        i, j = int(np.argmax(lo)), int(np.argmin(hi))
        if lo[i] > hi[j]:
            moved.append(player)
            parts.append(
                f"{player} - {anchor} moved: step {r['step'].iloc[j]} {_fmt(r['vs_anchor'].iloc[j])} "
                f"[{_fmt(lo[j])}, {_fmt(hi[j])}] vs step {r['step'].iloc[i]} {_fmt(r['vs_anchor'].iloc[i])} "
                f"[{_fmt(lo[i])}, {_fmt(hi[i])}]"
            )
    if not moved:
        return True, f"fixed references relative to {anchor} agree across {refs['step'].nunique()} evaluation steps"
    return False, "; ".join(parts)


def learning_rows(results: pd.DataFrame, per_step: pd.DataFrame, s: Settings) -> pd.DataFrame:
    """fct_game_learning: one row per run with games (``per_step``: the scope ``step`` rows of ratings_rows)."""
    rows = []
    for run_id, run in results.groupby("run_id", sort=True):
        n_games = int(run["game_id"].nunique())
        row: dict[str, Any] = {c: None for c in LEARNING_COLUMNS}
        row.update(run_id=run_id, anchor=s.anchor, n_games=n_games, n_players=int(run["player"].nunique()),
                   n_steps=int(run["step"].nunique()), has_enough_games=n_games >= s.min_games,
                   target_half_width=s.half_width, bootstrap_rounds=s.rounds, checkpoint_trend="insufficient_data",
                   games_signal="insufficient_data")  # fmt: skip
        f = _fit(run, s)
        if f is None:
            rows.append(row)
            continue
        ck = (
            run[run["player_kind"] == "checkpoint"]
            .drop_duplicates("player")[["player", "checkpoint_step"]]
            .dropna()
            .sort_values(["checkpoint_step", "player"])
        )
        # a checkpoint that never beat the anchor's group (-inf) or met it (nan) is no candidate
        ck = ck[[bool(f.rating[f.index(p)] > -np.inf) for p in ck["player"]]]
        row["n_checkpoints"] = len(ck)
        if len(ck):
            best = max(ck["player"], key=lambda p: f.rating[f.index(p)])
            newest = ck["player"].iloc[-1]
            for tag, p in (("best", best), ("newest", newest)):
                d, lo, hi = f.difference(p, s.anchor)
                row[f"{tag}_checkpoint"] = p
                row[f"{tag}_checkpoint_step"] = int(ck.set_index("player").at[p, "checkpoint_step"])
                row[f"{tag}_vs_anchor"], row[f"{tag}_vs_anchor_ci95_lo"], row[f"{tag}_vs_anchor_ci95_hi"] = d, lo, hi
                row[f"{tag}_superiority"] = f.superiority(p, s.anchor)
            need = f.games_needed(best, s.half_width)
            row["games_needed"] = need
            row["more_games_needed"] = None if need is None else max(0, need - n_games)
            finite = ck[[bool(np.isfinite(f.rating[f.index(p)])) for p in ck["player"]]]
            if finite["checkpoint_step"].nunique() >= 3:
                slope, lo, hi = bt.slope_interval(f, finite["player"].tolist(), finite["checkpoint_step"].tolist())
                row["trend_per_100_steps"], row["trend_ci95_lo"], row["trend_ci95_hi"] = 100 * slope, 100 * lo, 100 * hi
                row["checkpoint_trend"] = "rising" if lo > 0 else "falling" if hi < 0 else "flat"
            refs = sorted(set(run.loc[run["player_kind"] == "fixed_reference", "player"]) | {s.anchor})
            cyc = bt.cycles(f, [*refs, best])
            row["is_intransitive"] = bool(cyc)
            row["intransitive_cycles"] = "; ".join(" > ".join([*c, c[0]]) for c in cyc) or None
            newest_ahead = row["newest_vs_anchor_ci95_lo"] > 0
            if row["checkpoint_trend"] == "rising" or (row["checkpoint_trend"] == "insufficient_data" and newest_ahead):
                row["games_signal"] = "learning"
            else:
                row["games_signal"] = "not_learning"
        row["harness_stable"], row["harness_evidence"] = harness(per_step[per_step["run_id"] == run_id], s.anchor)
        rows.append(row)
    return _typed(pd.DataFrame(rows, columns=LEARNING_COLUMNS))


# Every column typed, so an empty table (no games yet) has the same column types as a full one.
_TEXT = {"run_id", "scope", "player", "player_kind", "anchor", "best_checkpoint", "newest_checkpoint",
         "checkpoint_trend", "harness_evidence", "intransitive_cycles", "games_signal"}  # fmt: skip
_INT = {"step", "checkpoint_step", "n_games", "bootstrap_rounds", "n_players", "n_steps", "best_checkpoint_step",
        "newest_checkpoint_step", "n_checkpoints", "games_needed", "more_games_needed"}  # fmt: skip
_BOOL = {"has_enough_games", "harness_stable", "is_intransitive"}


def _typed(df: pd.DataFrame) -> pd.DataFrame:
    types = {
        c: "string" if c in _TEXT else "Int64" if c in _INT else "boolean" if c in _BOOL else "float64"
        for c in df.columns
    }
    return df.astype(types)
