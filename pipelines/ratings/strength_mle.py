"""The Bradley–Terry maximum-likelihood fit on the pairwise score matrix: who has a finite rating
(the anchor's strongly connected group), Newton's method for the strengths, the Elo ratings and
their Fisher covariance. Pure numpy/scipy."""

from __future__ import annotations

import math

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import breadth_first_order

ELO_PER_NAT = 400.0 / math.log(10.0)  # Elo points per natural-log unit of strength


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
    n: np.ndarray,
    s: np.ndarray,
    anchor: int,
    *,
    tol: float = 1e-11,
    max_iter: int = 200,
    start: np.ndarray | None = None,
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
