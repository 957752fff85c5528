"""The shared discretizer: uncertain scores in, tie-grouped rewards out.

For every group (the responses that are compared with each other) it

1. estimates ``P(R_i > R_j + margin)`` for each pair from the samples' draws: ``exact`` counts
   over all draw pairs, ``gaussian`` uses a normal approximation from mean and std (faster);
2. splits the group, in descending order of the point estimate, into contiguous tiers such that
   no two members of a tier are confidently different (complete linkage: for every pair in a tier
   ``max(P(R_i > R_j), P(R_j > R_i)) < confidence``). Equal point estimates are never
   confidently different and always share a tier. Tier 0 is the best;
3. gives each tier one reward: ``mean`` (the tier's mean point estimate), ``rank`` (tier index
   scaled to [0, 1], best = 1) or ``binary`` (1 for the best tier, 0 otherwise).

Samples without draws (abstentions, NaN rows) get ``tier = -1`` and ``reward = NaN`` and are
invisible to the rest of their group. The fast path is vectorized across groups: groups of equal
size are processed as one ``(n_groups, size, K)`` block, and the only Python loops run over
distinct group sizes and over positions within a group, never over groups.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Hashable, Sequence
from typing import Any, Literal, NamedTuple

import numpy as np
from scipy.special import ndtr

__all__ = ["Assign", "DiscretizeResult", "Method", "as_draw_matrix", "discretize"]

Assign = Literal["mean", "rank", "binary"]
Method = Literal["exact", "gaussian"]

# Upper bound on the cells of the per-chunk count tensor in exact mode (~256 MB of int32).
_EXACT_CHUNK_CELLS = 1 << 26


class DiscretizeResult(NamedTuple):
    """Per-sample ``tier`` (int, -1 = abstained) and ``reward`` (float, NaN = abstained) arrays,
    and ``n_tiers``: the number of tiers of each group that has at least one scored sample."""

    tier: np.ndarray
    reward: np.ndarray
    n_tiers: dict[Hashable, int]


def as_draw_matrix(draws: Any) -> np.ndarray:
    """Draws as an ``(N, K)`` float array; ragged rows are NaN-padded, None/empty rows all-NaN."""
    if isinstance(draws, np.ndarray) and draws.ndim == 2:
        return draws.astype(np.float64, copy=False)
    rows = [np.atleast_1d(np.asarray([] if d is None else d, dtype=np.float64)) for d in draws]
    width = max((len(r) for r in rows), default=1) or 1
    out = np.full((len(rows), width), np.nan)
    for i, row in enumerate(rows):
        out[i, : len(row)] = row
    return out


def discretize(
    draws: Any,
    groups: Sequence[Hashable] | np.ndarray,
    confidence: float = 0.9,
    assign: Assign = "mean",
    *,
    values: Sequence[float] | np.ndarray | None = None,
    method: Method = "exact",
    margin: float = 0.0,
) -> DiscretizeResult:
    """Turn per-sample draws into tie-grouped rewards, group by group.

    :param draws: ``(N, K)`` array or a list of N draw lists (ragged allowed; None = abstained).
    :param groups: N group labels; only samples with the same label are compared.
    :param confidence: two samples share a tier unless one is better with at least this
        probability; in [0.5, 1].
    :param assign: ``mean``, ``rank`` or ``binary`` (see module docstring).
    :param values: optional point estimates used for ordering and for ``mean`` rewards (default:
        the mean of each sample's draws). NaN marks an abstained sample.
    :param method: ``exact`` (all draw pairs) or ``gaussian`` (normal approximation).
    :param margin: differences up to ``margin`` do not count (``P(R_i > R_j + margin)``).
    """
    if not 0.5 <= confidence <= 1.0:
        raise ValueError(f"confidence must be in [0.5, 1], got {confidence}")
    if assign not in ("mean", "rank", "binary"):
        raise ValueError(f"assign must be 'mean', 'rank' or 'binary', got {assign!r}")
    if method not in ("exact", "gaussian"):
        raise ValueError(f"method must be 'exact' or 'gaussian', got {method!r}")
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")

    mat = as_draw_matrix(draws)
    n = mat.shape[0]
    labels = np.asarray(groups, dtype=object) if not isinstance(groups, np.ndarray) else groups
    if labels.shape[0] != n:
        raise ValueError(f"got {n} draw rows but {labels.shape[0]} group labels")
    mat = np.where(np.isfinite(mat), mat, np.nan)
    k = np.count_nonzero(~np.isnan(mat), axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.nansum(mat, axis=1) / k
    if values is None:
        point = mean
    else:
        point = np.asarray(values, dtype=np.float64)
        if point.shape != (n,):
            raise ValueError(f"values must have shape ({n},), got {point.shape}")
    active = (k > 0) & np.isfinite(point)

    tier = np.full(n, -1, dtype=np.int64)
    reward = np.full(n, np.nan)
    if not active.any():
        return DiscretizeResult(tier, reward, {})

    act = np.flatnonzero(active)
    uniques, codes = np.unique(labels[act], return_inverse=True)
    a_mat, a_point, a_mean, a_k = mat[act], point[act], mean[act], k[act]
    # Order inside each group: best point estimate first; ties broken by content only, so the
    # result never depends on the order the samples came in.
    spread = _std(a_mat, a_mean, a_k)
    fingerprint = np.nansum(np.sort(a_mat, axis=1) * _weights(a_mat.shape[1]), axis=1)
    order = np.lexsort((fingerprint, spread, -a_mean, -a_point, codes))
    sizes = np.bincount(codes, minlength=len(uniques))
    starts = np.concatenate(([0], np.cumsum(sizes)[:-1]))

    s_tier = np.empty(len(act), dtype=np.int64)
    s_reward = np.empty(len(act))
    n_tiers = np.empty(len(uniques), dtype=np.int64)
    for size in np.unique(sizes):
        gids = np.flatnonzero(sizes == size)
        idx = order[starts[gids][:, None] + np.arange(size)]  # (groups, size) into active arrays
        t, r = _block(
            a_mat[idx],
            a_point[idx],
            a_mean[idx],
            spread[idx],
            a_k[idx],
            confidence,
            assign,
            method,
            margin,
        )
        s_tier[idx] = t
        s_reward[idx] = r
        n_tiers[gids] = t[:, -1] + 1
    tier[act] = s_tier
    reward[act] = s_reward
    return DiscretizeResult(
        tier, reward, dict(zip(uniques.tolist(), n_tiers.tolist(), strict=True))
    )


def _weights(width: int) -> np.ndarray:
    """Fixed pseudo-random weights: a content fingerprint of sorted draws for tie-breaking."""
    return np.random.default_rng(20260101).uniform(0.5, 1.5, size=width)


def _std(mat: np.ndarray, mean: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Sample standard deviation per row (ddof = 1; 0 for a single draw), NaN padding ignored."""
    sq = np.nansum((mat - mean[:, None]) ** 2, axis=1)
    return np.sqrt(np.divide(sq, k - 1, out=np.zeros_like(sq), where=k > 1))


def _block(
    mat: np.ndarray,
    point: np.ndarray,
    mean: np.ndarray,
    std: np.ndarray,
    k: np.ndarray,
    confidence: float,
    assign: Assign,
    method: Method,
    margin: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Tiers and rewards for ``n`` groups of equal size ``g``, each sorted best-first."""
    n, g = point.shape
    if g == 1:
        return np.zeros((n, 1), dtype=np.int64), _assign(point, np.zeros((n, 1), np.int64), assign)
    p_greater = _p_gaussian(mean, std, margin) if method == "gaussian" else _p_exact(mat, k, margin)
    differ = np.maximum(p_greater, p_greater.transpose(0, 2, 1)) >= confidence
    differ &= point[:, :, None] != point[:, None, :]
    tiers = _segment(differ, point)
    return tiers, _assign(point, tiers, assign)


def _p_gaussian(mean: np.ndarray, std: np.ndarray, margin: float) -> np.ndarray:
    """``P(R_i - R_j > margin)`` for all pairs of each group, treating R as normal."""
    diff = mean[:, :, None] - mean[:, None, :] - margin
    scale = np.sqrt(std[:, :, None] ** 2 + std[:, None, :] ** 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = ndtr(diff / scale)
    return np.where(scale > 0, p, (diff > 0).astype(np.float64))


def _p_exact(mat: np.ndarray, k: np.ndarray, margin: float) -> np.ndarray:
    """``P(R_i - R_j > margin)`` counted over all draw pairs, for all pairs of each group.

    Per group, the draws (and, with a margin, the draws minus the margin as queries) are ranked
    together, equal values sharing a rank. With ``Q[i, r]`` = how many of sample i's queries have
    rank r and ``B[j, r]`` = how many of sample j's draws rank strictly below r, the count of draw
    pairs with ``x_ia - margin > y_jb`` is ``(Q @ B.T)[i, j]`` -- one batched matrix product per
    chunk of groups instead of a loop over pairs.
    """
    n, g, width = mat.shape
    m = g * width
    pooled_len = 2 * m if margin else m
    chunk = max(1, _EXACT_CHUNK_CELLS // (g * pooled_len * 4))
    counts = np.empty((n, g, g), dtype=np.float64)
    for lo in range(0, n, chunk):
        x = mat[lo : lo + chunk].reshape(-1, m)
        rows = x.shape[0]
        pooled = np.concatenate((x - margin, x), axis=1) if margin else x
        rank = _dense_rank(pooled)
        valid = (~np.isnan(x)).astype(np.float64)
        base = (
            np.arange(rows)[:, None] * (g * pooled_len)
            + np.repeat(np.arange(g), width)[None, :] * pooled_len
        )
        size = rows * g * pooled_len
        q_rank = rank[:, :m]
        v_rank = rank[:, m:] if margin else rank
        queries = np.bincount((base + q_rank).ravel(), valid.ravel(), size).reshape(
            rows, g, pooled_len
        )
        values = np.bincount((base + v_rank).ravel(), valid.ravel(), size).reshape(
            rows, g, pooled_len
        )
        below = np.cumsum(values, axis=2) - values  # draws of j strictly below each rank
        counts[lo : lo + rows] = queries @ below.transpose(0, 2, 1)
    kk = k.astype(np.float64)
    return counts / (kk[:, :, None] * kk[:, None, :])


def _dense_rank(x: np.ndarray) -> np.ndarray:
    """Row-wise dense ranks (equal values share a rank; NaN ranks after every number)."""
    order = np.argsort(x, axis=1)
    ordered = np.take_along_axis(x, order, axis=1)
    step = np.ones_like(ordered, dtype=np.int64)
    step[:, 0] = 0
    step[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.cumsum(step, axis=1), axis=1)
    return ranks


def _segment(differ: np.ndarray, point: np.ndarray) -> np.ndarray:
    """Greedy best-first split into contiguous tiers with complete linkage.

    Walking down the sorted group, a sample opens a new tier when it is confidently different from
    any member of the current tier; the new tier starts at the first sample with the same point
    estimate, so equal estimates are never separated.
    """
    n, g = point.shape
    pos = np.arange(g)
    same_as_prev = np.concatenate((np.zeros((n, 1), bool), point[:, 1:] == point[:, :-1]), axis=1)
    run_start = np.maximum.accumulate(np.where(same_as_prev, 0, pos[None, :]), axis=1)
    boundary = np.zeros((n, g), dtype=bool)
    boundary[:, 0] = True
    start = np.zeros(n, dtype=np.int64)
    rows = np.arange(n)
    for p in range(1, g):
        in_tier = (pos[None, :] >= start[:, None]) & (pos[None, :] < p)
        conflict = (differ[:, p, :] & in_tier).any(axis=1)
        if conflict.any():
            new_start = run_start[conflict, p]
            boundary[rows[conflict], new_start] = True
            start[conflict] = new_start
    return np.cumsum(boundary, axis=1) - 1


def _assign(point: np.ndarray, tiers: np.ndarray, assign: Assign) -> np.ndarray:
    """One reward per tier, broadcast back to the tier's members."""
    n, g = tiers.shape
    n_tiers = tiers[:, -1:] + 1
    if assign == "rank":
        return np.where(n_tiers > 1, (n_tiers - 1 - tiers) / np.maximum(n_tiers - 1, 1), 1.0)
    if assign == "binary":
        return (tiers == 0).astype(np.float64)
    flat = (np.arange(n)[:, None] * g + tiers).ravel()
    sums = np.bincount(flat, weights=point.ravel(), minlength=n * g)
    cnts = np.bincount(flat, minlength=n * g)
    means = sums / np.maximum(cnts, 1)
    return means[flat].reshape(n, g)


class _CallableModule(types.ModuleType):
    """Keeps ``rewardplug.discretize(...)`` a function call even after this submodule is imported
    (importing ``rewardplug.discretize`` rebinds the package attribute to the module)."""

    def __call__(self, *args: Any, **kwargs: Any) -> DiscretizeResult:
        return discretize(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
