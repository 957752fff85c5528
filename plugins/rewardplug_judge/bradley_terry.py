"""Bradley–Terry strengths from pairwise outcomes, with a small Gaussian prior so a fit always
exists (one comparison per pair separates perfectly, and the plain maximum-likelihood estimate
then runs off to infinity).

``fit(wins)`` maximizes ``sum_ij wins[i, j] * log sigmoid(t_i - t_j) - prior / 2 * |t|^2`` by
Newton's method with step halving. The objective is strictly concave, so the maximum is unique;
at it the strengths sum to zero (the prior's gradient balances the likelihood's, whose entries
sum to zero). Ties count half a win for each side.
"""

from __future__ import annotations

import numpy as np

__all__ = ["fit", "log_likelihood", "win_scores"]


def log_likelihood(theta: np.ndarray, wins: np.ndarray, prior: float) -> float:
    """The penalized log-likelihood of strengths ``theta`` (what :func:`fit` maximizes)."""
    diff = theta[:, None] - theta[None, :]
    return float(np.sum(wins * -np.logaddexp(0.0, -diff)) - 0.5 * prior * theta @ theta)


def fit(
    wins: np.ndarray, prior: float = 0.1, max_iter: int = 100, tol: float = 1e-10
) -> np.ndarray:
    """Strengths ``theta`` (n,) for ``wins`` (n, n): ``wins[i, j]`` = times i beat j.

    Entries may be fractional (a tie is 0.5 each way); the diagonal is ignored. ``prior`` > 0 is
    the precision of the N(0, 1/prior) prior on each strength.
    """
    w = np.array(wins, dtype=float)
    if w.ndim != 2 or w.shape[0] != w.shape[1]:
        raise ValueError(f"wins must be a square matrix, got shape {w.shape}")
    if prior <= 0:
        raise ValueError("prior must be > 0 (it keeps the fit finite)")
    if np.any(w < 0) or not np.all(np.isfinite(w)):
        raise ValueError("wins must be finite and non-negative")
    np.fill_diagonal(w, 0.0)
    n = w.shape[0]
    games = w + w.T
    theta = np.zeros(n)
    value = log_likelihood(theta, w, prior)
    for _ in range(max_iter):
        p = 1.0 / (1.0 + np.exp(-(theta[:, None] - theta[None, :])))  # P(i beats j)
        grad = w.sum(axis=1) - (games * p).sum(axis=1) - prior * theta
        curvature = games * p * p.T
        hess = curvature - np.diag(curvature.sum(axis=1) + prior)  # negative definite
        step = np.linalg.solve(hess, -grad)
        t = 1.0
        while True:  # step halving keeps every iteration an improvement
            candidate = theta + t * step
            new = log_likelihood(candidate, w, prior)
            if new >= value - 1e-12 or t < 1e-8:
                break
            t /= 2
        theta, improvement, value = candidate, new - value, new
        if np.max(np.abs(t * step)) < tol or abs(improvement) < tol * 1e-2:
            break
    return theta


def win_scores(theta: np.ndarray) -> np.ndarray:
    """Per response, its mean modelled chance of beating each other member, in [0, 1]."""
    n = len(theta)
    if n < 2:
        return np.full(n, 0.5)
    p = 1.0 / (1.0 + np.exp(-(theta[:, None] - theta[None, :])))
    np.fill_diagonal(p, 0.0)
    scores: np.ndarray = p.sum(axis=1) / (n - 1)
    return scores
