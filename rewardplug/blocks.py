"""The numpy path of the discretizer: every group ordered best first, then processed in one
``(groups, size, ...)`` block per group size by the kernels of :mod:`rewardplug.pairs`.

(:mod:`rewardplug.compiled` is the other path: the same results, one compiled pass per group.)
"""

from __future__ import annotations

import numpy as np

from rewardplug.pairs import (
    Assign,
    Method,
    Rule,
    differ_gaussian,
    p_exact,
    p_within_gaussian,
    segment,
)

__all__ = ["best_first", "numpy_blocks", "row_std", "row_sum"]


def numpy_blocks(
    codes: np.ndarray,
    n_groups: int,
    mat: np.ndarray,
    point: np.ndarray,
    mean: np.ndarray,
    spread: np.ndarray,
    k: np.ndarray,
    row_margin: np.ndarray,
    confidence: float,
    assign: Assign,
    method: Method,
    margin: float,
    rule: Rule,
    s_tier: np.ndarray,
    s_reward: np.ndarray,
    n_tiers: np.ndarray,
) -> None:
    """Tiers and rewards of every group by numpy's kernels, one block per group size, written
    into ``s_tier``, ``s_reward`` and ``n_tiers`` in place (``spread``: each row's std)."""
    order = _group_order(codes, point, mean, spread, mat)
    sizes = np.bincount(codes, minlength=n_groups)
    starts = np.concatenate(([0], np.cumsum(sizes)[:-1]))
    for size in np.unique(sizes):
        gids = np.flatnonzero(sizes == size)
        idx = order[starts[gids][:, None] + np.arange(size)]  # (groups, size) into the arrays
        t, r = _block(
            mat[idx] if method == "exact" else None,  # the Gaussian rule needs no draws
            point[idx],
            mean[idx],
            spread[idx],
            k[idx],
            confidence,
            assign,
            method,
            _block_margin(row_margin[idx[:, 0]], margin),
            rule,
        )
        s_tier[idx] = t
        s_reward[idx] = r
        n_tiers[gids] = t[:, -1] + 1


def _group_order(
    codes: np.ndarray, point: np.ndarray, mean: np.ndarray, spread: np.ndarray, mat: np.ndarray
) -> np.ndarray:
    """Sort by group, then best point estimate first. Equal estimates are ordered by content
    (mean, spread, third central moment of the draws), never by input position, so the result
    does not depend on the order the samples came in; that slower sort runs only when needed."""
    order = best_first(codes, point)
    c, p = codes[order], point[order]
    if not np.any((c[1:] == c[:-1]) & (p[1:] == p[:-1])):
        return order
    centered = np.nan_to_num(mat - mean[:, None])
    skew = np.einsum("ij,ij,ij->i", centered, centered, centered)
    return np.lexsort((skew, spread, -mean, -point, codes))


def best_first(codes: np.ndarray, point: np.ndarray) -> np.ndarray:
    """``np.lexsort((-point, codes))``: by group, best first, ties in input order. Groups of one
    size (the usual batch) take a stable sort by group -- linear on the group-sorted chunks that
    large inputs come in -- and a sort of each group's row, about 4x faster than lexsort."""
    by_group = np.argsort(codes, kind="stable")
    sizes = np.bincount(codes)
    g = int(sizes[0]) if len(sizes) else 0
    if g == 0 or not (sizes == g).all():
        return np.lexsort((-point, codes))
    rows = by_group.reshape(-1, g)
    within = np.argsort(-point[rows], axis=1, kind="stable")
    return np.take_along_axis(rows, within, axis=1).ravel()


def _block_margin(margins: np.ndarray, margin: float) -> float | np.ndarray:
    """The margin for a block of groups: the plain number, or per group (shape (n, 1, 1)) when
    some of them were scaled down."""
    if margin == 0 or (margins == margin).all():
        return margin
    return margins[:, None, None]


def _block(
    mat: np.ndarray | None,
    point: np.ndarray,
    mean: np.ndarray,
    std: np.ndarray,
    k: np.ndarray,
    confidence: float,
    assign: Assign,
    method: Method,
    margin: float | np.ndarray,
    rule: Rule = "different",
) -> tuple[np.ndarray, np.ndarray]:
    """Tiers and rewards for ``n`` groups of equal size ``g``, each sorted best-first."""
    n, g = point.shape
    if g == 1:
        return np.zeros((n, 1), dtype=np.int64), _assign(point, np.zeros((n, 1), np.int64), assign)
    if rule == "equivalent":
        # apart unless confidently within the margin: P(|d| <= m) = 1 - P(d > m) - P(-d > m)
        if method == "gaussian":
            within = p_within_gaussian(mean, std, margin)
        else:
            assert mat is not None  # the exact rule is always given the draws
            p_greater = p_exact(mat, k, margin)
            within = 1.0 - p_greater - p_greater.transpose(0, 2, 1)
        differ = ~(within >= confidence)
    elif method == "gaussian":
        differ = differ_gaussian(mean, std, margin, confidence)
    else:
        assert mat is not None  # the exact rule is always given the draws
        p_greater = p_exact(mat, k, margin)
        differ = np.maximum(p_greater, p_greater.transpose(0, 2, 1)) >= confidence
    differ &= point[:, :, None] != point[:, None, :]
    tiers = segment(differ, point)
    return tiers, _assign(point, tiers, assign)


def _assign(point: np.ndarray, tiers: np.ndarray, assign: Assign) -> np.ndarray:
    """One reward per tier, broadcast back to the tier's members."""
    n, g = tiers.shape
    n_tiers = tiers[:, -1:] + 1
    if assign == "rank":
        ranked: np.ndarray = np.where(
            n_tiers > 1, (n_tiers - 1 - tiers) / np.maximum(n_tiers - 1, 1), 1.0
        )
        return ranked
    if assign == "binary":
        binary: np.ndarray = (tiers == 0).astype(np.float64)
        return binary
    flat = (np.arange(n)[:, None] * g + tiers).ravel()
    sums = np.bincount(flat, weights=point.ravel(), minlength=n * g)
    cnts = np.bincount(flat, minlength=n * g)
    means: np.ndarray = sums / np.maximum(cnts, 1)
    broadcast: np.ndarray = means[flat].reshape(n, g)
    return broadcast


def row_sum(mat: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Per row, the sum of its first ``k`` entries (the rest is NaN padding), computed over
    exactly those ``k`` columns: unlike ``nansum`` over the whole width, the rounding does not
    depend on how much padding follows, so a group's rewards are the same to the bit whatever
    else shares its batch."""
    n, width = mat.shape
    if n and int(k.min()) == width:  # no padding anywhere: the common case, one pass
        whole: np.ndarray = np.sum(mat, axis=1)
        return whole
    out = np.zeros(n)
    for kk in np.unique(k):
        if kk:
            rows = k == kk
            out[rows] = np.sum(mat[rows, :kk], axis=1)
    return out


def row_std(mat: np.ndarray, mean: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Sample standard deviation per row (ddof = 1; 0 for a single draw), NaN padding ignored."""
    centered = mat - mean[:, None]
    centered *= centered
    sq = row_sum(centered, k)
    std: np.ndarray = np.sqrt(np.divide(sq, k - 1, out=np.zeros_like(sq), where=k > 1))
    return std
