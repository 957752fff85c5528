"""The discretizer's kernels for a block of equal-size groups, each sorted best-first: which
pairs of samples are confidently different (exact draw counts, or the normal approximation),
and the greedy split of each group into tiers.

Every function works on ``(groups, g, ...)`` arrays at once; the only Python loops run over
positions within a group or over chunks of groups, never over groups.
"""

from __future__ import annotations

import functools
from typing import Literal

import numpy as np

__all__ = [
    "Assign",
    "Method",
    "Rule",
    "differ_gaussian",
    "p_exact",
    "p_within_gaussian",
    "running_count",
    "segment",
]

# The discretizer's options, here at the bottom layer so that both of its paths (the numpy blocks
# and the compiled kernels) name them without importing the discretizer; rewardplug.discretizer
# re-exports them. Assign: a tier's reward; Method: P(i > j) exact or Gaussian; Rule: split
# unless confidently different, or merge only when confidently within the margin.
Assign = Literal["mean", "rank", "binary"]
Method = Literal["exact", "gaussian"]
Rule = Literal["different", "equivalent"]

# Cells of the per-chunk running-count arrays in exact mode (16 MB of int8 each).
_EXACT_CHUNK_CELLS = 1 << 24


def differ_gaussian(
    mean: np.ndarray, std: np.ndarray, margin: float | np.ndarray, confidence: float
) -> np.ndarray:
    """``max(P(i > j), P(j > i)) >= confidence`` under the normal model, without evaluating Phi.

    ``Phi((|d| - margin) / s) >= c`` is ``|d| - margin >= z_c * s`` with ``z_c = Phi^-1(c)``;
    for ``c = 1`` the threshold is where Phi rounds to 1 in double precision, so the decision
    matches thresholding ``scipy.special.ndtr`` of the gap exactly.
    """
    # The same arithmetic as `where(scale > 0, gap >= z * scale & gap > 0, gap > 0)` with
    # gap = |d| - margin and scale = sqrt(s_i**2 + s_j**2), done in place (fewer temporaries).
    gap = mean[:, :, None] - mean[:, None, :]
    np.abs(gap, out=gap)
    if isinstance(margin, np.ndarray) or margin:
        gap -= margin
    var = std * std
    scale = var[:, :, None] + var[:, None, :]
    np.sqrt(scale, out=scale)
    flat: np.ndarray = scale <= 0
    scale *= z_threshold(confidence)
    flat |= gap >= scale
    # gap > 0 as well: at confidence 0.5 (z = 0) identical draws must still share a tier
    flat &= gap > 0
    return flat


def p_within_gaussian(mean: np.ndarray, std: np.ndarray, margin: float | np.ndarray) -> np.ndarray:
    """``P(|R_i - R_j| <= margin)`` for all pairs under the normal model."""
    from scipy.special import ndtr  # imported on use: scipy costs 0.25 s of start-up

    gap = mean[:, :, None] - mean[:, None, :]
    scale = np.sqrt(std[:, :, None] ** 2 + std[:, None, :] ** 2)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = ndtr((margin - gap) / scale) - ndtr((-margin - gap) / scale)
    within: np.ndarray = np.where(scale > 0, p, (np.abs(gap) <= margin).astype(float))
    return within


@functools.lru_cache(maxsize=64)
def z_threshold(confidence: float) -> float:
    """Smallest z >= 0 with ``ndtr(z) >= confidence`` (exactly, in double precision).

    Found by bisection over doubles, not by stepping from ``ndtri``: near ``confidence = 1`` one
    ulp of z moves ``ndtr`` by far less than one ulp of the probability, so stepping ulp by ulp
    never ended (0.9999999999999999 took ~10^13 steps; it hung a CI run).
    """
    from scipy.special import ndtr

    confidence = float(confidence)
    lo, hi = 0.0, 40.0  # ndtr(0) = 0.5 <= confidence; ndtr(40) == 1.0 >= confidence
    if ndtr(lo) >= confidence:
        return 0.0
    while True:  # invariant: ndtr(lo) < confidence <= ndtr(hi); at most ~1,100 halvings
        mid = lo + (hi - lo) / 2
        if mid in (lo, hi):
            return hi
        if ndtr(mid) >= confidence:
            hi = mid
        else:
            lo = mid


def p_exact(mat: np.ndarray, k: np.ndarray, margin: float | np.ndarray) -> np.ndarray:
    """``P(R_i - R_j > margin)`` counted over all draw pairs, for all pairs of each group.

    Per group, every draw is placed in one sorted sequence (with a margin: the draws minus the
    margin as *queries* and the draws as *values*; a stable sort puts a query before an equal
    value). ``below[p, j]``, the number of sample ``j``'s values strictly before position ``p``, is
    one cumulative sum of one-hot labels; the number of draw pairs with ``x_ia - margin > y_jb``
    is then the sum of ``below[pos(i, a), j]`` over sample ``i``'s draws ``a``: one cumulative
    sum, one gather and one sum per chunk of groups, no loop over pairs.
    """
    n, g, width = mat.shape
    if width == 1:  # one draw each (no padding in a block of scored samples): an indicator
        x = mat[:, :, 0]
        return (x[:, :, None] - margin > x[:, None, :]).astype(np.float64)
    m = g * width
    # a margin per group (shape (n, 1, 1)) is one per row of the chunks below
    margins = margin.reshape(n, 1) if isinstance(margin, np.ndarray) else None
    shift = margin if margins is None else 0.0
    has_margin = margins is not None or bool(margin)
    length = 2 * m if has_margin else m
    chunk = max(1, _EXACT_CHUNK_CELLS // (length * g))
    label = np.tile(np.repeat(np.arange(g), width), 2 if has_margin else 1)
    # The running counts never exceed K: the smallest integer type that holds K (numpy's int8
    # cumulative sum is about 4x faster than its int16 one; floats are slower still).
    count_type = next(t for t in (np.int8, np.int16, np.int32) if width <= np.iinfo(t).max)
    sum_type = np.int32 if width * width <= np.iinfo(np.int32).max else np.int64
    counts = np.empty((n, g, g), dtype=np.float64)
    for lo in range(0, n, chunk):
        x = mat[lo : lo + chunk].reshape(-1, m)
        rows = x.shape[0]
        r = np.arange(rows)[:, None]
        shift_by = shift if margins is None else margins[lo : lo + rows]  # one row per group
        pooled = np.concatenate((x - shift_by, x), axis=1) if has_margin else x
        order = np.argsort(pooled, axis=1, kind="stable" if has_margin else None)
        ordered = np.take_along_axis(pooled, order, axis=1)
        counted = ~np.isnan(ordered)  # NaN padding sorts last and is never a value
        if has_margin:
            counted &= order >= m  # only the unshifted copies are values
        # before[:, p] = each label's values strictly before position p: the running count of
        # one-hot marks shifted down one row (row 0: none), padded for the blocked count
        before = np.zeros((rows, _padded(length + 1, g), g), dtype=count_type)
        before[r, np.arange(1, length + 1), label[order]] = counted
        running_count(before)
        # where each query draw (the first m pooled entries, in sample-major order) landed
        where = np.empty((rows, length), dtype=np.intp)
        where[r, order] = np.arange(length)
        where = where[:, :m]
        if not has_margin:
            # equal draws must not count as smaller: use the count before each run of ties
            same = ordered[:, 1:] == ordered[:, :-1]
            if same.any():
                pos = np.arange(length)
                start = np.where(np.concatenate((np.zeros((rows, 1), bool), same), axis=1), 0, pos)
                start = np.maximum.accumulate(start, axis=1)
                where = np.take_along_axis(start, where, axis=1)
        below = before[r, where]  # (rows, m, g): the counts seen by every query draw
        missing = np.isnan(x)
        if missing.any():
            below[missing] = 0  # a NaN-padded draw is no query either
        counts[lo : lo + rows] = below.reshape(rows, g, width, g).sum(axis=2, dtype=sum_type)
    kk = k.astype(np.float64)
    return counts / (kk[:, :, None] * kk[:, None, :])


# Positions per block of the blocked running count (see running_count).
_COUNT_BLOCK = 128


def _padded(length: int, g: int) -> int:
    """Rows to allocate for a running count over ``length`` positions of ``g`` labels."""
    if g < 64:  # few labels: numpy's own cumulative sum stays in cache
        return length
    return -(-length // _COUNT_BLOCK) * _COUNT_BLOCK


def running_count(a: np.ndarray) -> None:
    """In place, the cumulative sum of a ``(rows, positions, labels)`` count array along its
    positions.

    numpy accumulates along a middle axis one label column at a time; with many labels each
    column pass strides over the whole array and misses the cache (about 11 ns a cell at 256
    labels). In blocks of ``_COUNT_BLOCK`` positions a column pass stays in L1: the blocks' own
    running counts, then each block's offset from the running count of the block totals (14x
    faster at 256 labels; integer sums, so exactly the plain cumulative sum).
    """
    rows, length, g = a.shape
    if g < 64 or length % _COUNT_BLOCK or length < 2 * _COUNT_BLOCK:
        np.cumsum(a, axis=1, dtype=a.dtype, out=a)
        return
    blocks = a.reshape(rows, length // _COUNT_BLOCK, _COUNT_BLOCK, g)
    np.cumsum(blocks, axis=2, dtype=a.dtype, out=blocks)
    offsets = np.cumsum(blocks[:, :-1, -1, :], axis=1, dtype=a.dtype)
    blocks[:, 1:] += offsets[:, :, None, :]


def segment(differ: np.ndarray, point: np.ndarray) -> np.ndarray:
    """Greedy best-first split into contiguous tiers with complete linkage.

    Walking down the sorted group, a sample opens a new tier when it is confidently different from
    any member of the current tier; the new tier starts at the first sample with the same point
    estimate, so equal estimates are never separated. ``differ`` is symmetric; only its part
    below the diagonal (each sample against the better ones) is read.
    """
    n, g = point.shape
    pos = np.arange(g)
    same_as_prev = np.concatenate((np.zeros((n, 1), bool), point[:, 1:] == point[:, :-1]), axis=1)
    run_start = np.maximum.accumulate(np.where(same_as_prev, 0, pos[None, :]), axis=1)
    boundary = np.zeros((n, g), dtype=bool)
    boundary[:, 0] = True
    rows = np.arange(n)
    if g <= 64:
        # Each sample's conflicts with the better ones as the bits of one 64-bit word: sample p
        # conflicts with its current tier when a bit at or above the tier's start is set, two
        # operations on one number per group instead of a pass over a (groups, g) mask.
        width = max(8, 1 << (g - 1).bit_length())  # bits per word: 8, 16, 32 or 64
        mask = np.zeros((n, g, width), dtype=bool)
        mask[:, :, :g] = differ & (pos[None, :] < pos[:, None])
        packed = np.packbits(mask.reshape(-1), bitorder="little")  # rows are whole bytes
        bits = packed.view(f"<u{width // 8}").reshape(n, g).astype(np.uint64)
        start = np.zeros(n, dtype=np.uint64)
        for p in range(1, g):
            conflict = (bits[:, p] >> start) != 0
            if conflict.any():
                new_start = run_start[conflict, p]
                boundary[rows[conflict], new_start] = True
                start[conflict] = new_start
        return np.cumsum(boundary, axis=1) - 1
    start = np.zeros(n, dtype=np.int64)
    for p in range(1, g):
        in_tier = (pos[None, :] >= start[:, None]) & (pos[None, :] < p)
        conflict = (differ[:, p, :] & in_tier).any(axis=1)
        if conflict.any():
            new_start = run_start[conflict, p]
            boundary[rows[conflict], new_start] = True
            start[conflict] = new_start
    return np.cumsum(boundary, axis=1) - 1
