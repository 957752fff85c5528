"""The discretizer's kernels compiled with numba (the ``fast`` extra): the same decisions, the
same floating-point operations in the same order, one pass per group instead of numpy's passes
over ``(groups, g, g)`` pair arrays.

Every result is bit for bit what the numpy path (:mod:`rewardplug.blocks` with the kernels of
:mod:`rewardplug.pairs`) gives (property tested in ``tests/core/test_compiled.py``): row sums replicate numpy's pairwise summation, a pair is decided with the same
arithmetic, and tiers and rewards are assigned in the same order. What changes is the work done:
a sample is compared only with the members of its current tier, and a comparison stops at the
first conflict, so most of the ``g * g`` pairs are never looked at.

This module imports numba at import time; :mod:`rewardplug.discretizer` imports it only for
inputs large enough to pay for that (about 0.3 s, once per process), and backend ``auto`` runs
these kernels only once they are compiled (:mod:`rewardplug.compiled_loader`).
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["ASSIGN_CODES", "CACHING", "group_tiers", "row_stats", "scan_sorted"]

ASSIGN_CODES = {"mean": 0, "rank": 1, "binary": 2}


def _can_cache() -> bool:
    """Whether numba has a writable cache folder for this file (beside it, NUMBA_CACHE_DIR or
    the user's cache); without one ``cache=True`` raises at decoration, so each process compiles."""
    try:
        njit(cache=True)(_can_cache)
    except RuntimeError:  # "cannot cache function ...: no locator available for file ..."
        return False
    return True


#: whether compiled machine code is kept on disk (so only the first process compiles)
CACHING = _can_cache()

# error_model="numpy": 0 / 0 is NaN, as in numpy, not a ZeroDivisionError. cache=True keeps the
# machine code beside the module (or in numba's user cache), so only the first process compiles.
_jit = njit(cache=CACHING, nogil=True, error_model="numpy")

_PAIRWISE_BLOCK = 128  # numpy's PW_BLOCKSIZE


@_jit
def _leaf_sum(a: np.ndarray, row: int, lo: int, n: int, center: float, square: bool) -> float:
    """numpy's pairwise sum of at most 128 entries (8 accumulators, combined as a tree); with
    ``square``, of ``(a - center) ** 2`` computed on the fly (as ``c = a - center; c *= c``)."""
    if n < 8:
        res = 0.0
        for i in range(n):
            res += _term(a[row, lo + i], center, square)
        return res
    r0 = _term(a[row, lo], center, square)
    r1 = _term(a[row, lo + 1], center, square)
    r2 = _term(a[row, lo + 2], center, square)
    r3 = _term(a[row, lo + 3], center, square)
    r4 = _term(a[row, lo + 4], center, square)
    r5 = _term(a[row, lo + 5], center, square)
    r6 = _term(a[row, lo + 6], center, square)
    r7 = _term(a[row, lo + 7], center, square)
    i = 8
    whole = n - n % 8
    while i < whole:
        r0 += _term(a[row, lo + i], center, square)
        r1 += _term(a[row, lo + i + 1], center, square)
        r2 += _term(a[row, lo + i + 2], center, square)
        r3 += _term(a[row, lo + i + 3], center, square)
        r4 += _term(a[row, lo + i + 4], center, square)
        r5 += _term(a[row, lo + i + 5], center, square)
        r6 += _term(a[row, lo + i + 6], center, square)
        r7 += _term(a[row, lo + i + 7], center, square)
        i += 8
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < n:
        res += _term(a[row, lo + i], center, square)
        i += 1
    return res


@njit(cache=CACHING, inline="always")
def _term(x: float, center: float, square: bool) -> float:
    if square:
        c = x - center
        return c * c
    return x


@_jit
def _pairwise_sum(
    a: np.ndarray, row: int, lo: int, n: int, center: float = 0.0, square: bool = False
) -> float:
    """``np.sum`` of ``a[row, lo:lo + n]`` in numpy's own order, so that a mean is the same to the
    last bit as numpy's: above 128 entries numpy halves the range (the first half a multiple of
    8) and adds the halves' sums. Walked with an explicit stack, not recursion: numba cannot
    cache a recursive function (loading one from its cache crashed the process)."""
    if n <= _PAIRWISE_BLOCK:
        return _leaf_sum(a, row, lo, n, center, square)
    los = np.empty(64, dtype=np.int64)
    sizes = np.empty(64, dtype=np.int64)
    stage = np.empty(64, dtype=np.int64)  # 0: not split yet, 1: left half running, 2: right
    left = np.empty(64)
    top, los[0], sizes[0], stage[0] = 0, lo, n, 0
    value, done = 0.0, False
    while True:
        if done:  # `value` is the sum of the range just finished: hand it to its parent
            if top < 0:
                return value
            if stage[top] == 1:
                left[top], stage[top], done = value, 2, False
                half = sizes[top] // 2
                half -= half % 8
                top += 1
                los[top], sizes[top], stage[top] = los[top - 1] + half, sizes[top - 1] - half, 0
            else:
                value = left[top] + value
                top -= 1
        elif sizes[top] <= _PAIRWISE_BLOCK:
            value, done = _leaf_sum(a, row, los[top], sizes[top], center, square), True
            top -= 1
        else:
            half = sizes[top] // 2
            half -= half % 8
            stage[top] = 1
            top += 1
            los[top], sizes[top], stage[top] = los[top - 1], half, 0


@_jit
def scan_sorted(mat: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row of sorted draws (NaN padding last): the number of draws, whether one of them is
    infinite (-inf sorts first, +inf last before the padding; such a row counts 0 draws), and
    the largest |draw| of a finite row (0 for the others)."""
    n, width = mat.shape
    k = np.empty(n, dtype=np.int64)
    infinite = np.zeros(n, dtype=np.bool_)
    row_max = np.zeros(n)
    for r in range(n):
        c = width
        while c > 0 and np.isnan(mat[r, c - 1]):
            c -= 1
        if c and (np.isinf(mat[r, 0]) or np.isinf(mat[r, c - 1])):
            infinite[r] = True
            k[r] = 0
        else:
            k[r] = c
            if c:
                row_max[r] = max(abs(mat[r, 0]), abs(mat[r, c - 1]))
    return k, infinite, row_max


@_jit
def row_stats(mat: np.ndarray, k: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row of sorted, NaN-padded draws: the mean of its first ``k`` draws and their sample
    std (ddof 1; 0 for one draw or none), as ``blocks.row_sum`` and ``blocks.row_std`` compute
    them."""
    n = mat.shape[0]
    mean = np.empty(n)
    std = np.empty(n)
    for r in range(n):
        kr = k[r]
        # numpy's reduction adds the sum to its identity, 0.0 (so an all -0.0 row sums to 0.0)
        if kr <= _PAIRWISE_BLOCK:  # the usual case, without the call into the general walk
            m = (0.0 + _leaf_sum(mat, r, 0, kr, 0.0, False)) / kr if kr else np.nan
            sq = _leaf_sum(mat, r, 0, kr, m, True)
        else:
            m = (0.0 + _pairwise_sum(mat, r, 0, kr)) / kr
            sq = _pairwise_sum(mat, r, 0, kr, m, True)
        mean[r] = m
        if kr > 1:
            std[r] = np.sqrt(sq / (kr - 1))
        else:
            std[r] = 0.0
    return mean, std


@_jit
def group_tiers(
    codes: np.ndarray,
    n_groups: int,
    point: np.ndarray,
    mean: np.ndarray,
    std: np.ndarray,
    mat: np.ndarray,
    k: np.ndarray,
    exact: bool,
    margin: np.ndarray,
    threshold: float,
    assign: int,
    tier_out: np.ndarray,
    reward_out: np.ndarray,
    n_tiers_out: np.ndarray,
) -> None:
    """Tiers and rewards of every group (``codes``: each sample's group, 0 .. n_groups - 1), in
    one pass: each group sorted best first by ``point`` (ties in input order), then split
    greedily, a pair decided only when the split needs it.

    ``exact``: pair probabilities counted over all draw pairs (``mat``'s rows sorted ascending,
    ``threshold`` the confidence), else the normal rule on ``mean`` and ``std`` (``threshold``
    the z of the confidence). ``margin`` is per sample (its group's margin).

    Within a run of equal point estimates the order does not matter: a run opens a new tier
    exactly when one of its members conflicts with the tier before it, and the members, equal
    in point, add up to the same tier mean in any order; so the numpy path's finer tie-breaking
    order gives the same tiers and rewards (property tested).
    """
    n = codes.shape[0]
    starts = np.zeros(n_groups + 1, dtype=np.int64)
    for r in range(n):
        starts[codes[r] + 1] += 1
    largest = 0
    for q in range(n_groups):
        largest = max(largest, starts[q + 1])
        starts[q + 1] += starts[q]
    members = np.arange(n)  # rows by group, stable: input order within each group
    if not _ascending(codes):
        fill = starts[:-1].copy()
        for r in range(n):
            members[fill[codes[r]]] = r
            fill[codes[r]] += 1
    # per-group scratch, allocated once (an allocation per group costs as much as its split)
    boundary = np.zeros(largest, dtype=np.bool_)
    tier = np.empty(largest, dtype=np.int64)
    sums = np.empty(largest)  # also the sort's scratch
    counts = np.empty(largest, dtype=np.int64)
    for q in range(n_groups):
        lo, hi = starts[q], starts[q + 1]
        g = hi - lo
        _best_first(members, lo, hi, point, sums)
        boundary[:g] = False
        boundary[0] = True
        start = 0
        run_start = 0
        for p in range(1, g):
            rp = members[lo + p]
            if point[rp] != point[members[lo + p - 1]]:
                run_start = p
            for i in range(start, p):
                ri = members[lo + i]
                if point[ri] == point[rp]:
                    continue
                if exact:
                    apart = _apart_exact(mat, k, ri, rp, margin[rp], threshold)
                else:
                    apart = _apart_gaussian(mean, std, ri, rp, margin[rp], threshold)
                if apart:
                    boundary[run_start] = True
                    start = run_start
                    break
        _finish(members, lo, g, boundary, tier, sums, counts, point, assign, tier_out, reward_out)
        n_tiers_out[q] = tier[g - 1] + 1


@_jit
def _ascending(codes: np.ndarray) -> bool:
    for r in range(1, codes.shape[0]):  # noqa: SIM110 - numba compiles no generators
        if codes[r] < codes[r - 1]:
            return False
    return True


@_jit
def _best_first(members: np.ndarray, lo: int, hi: int, point: np.ndarray, key: np.ndarray) -> None:
    """Sort ``members[lo:hi]`` by descending ``point``, equal points in their order (stable);
    ``key``: scratch for the points, so that the sort reads contiguous memory."""
    g = hi - lo
    if g > 32:  # large groups: numba's merge sort, stable, O(g log g)
        order = np.argsort(-point[members[lo:hi]], kind="mergesort")
        members[lo:hi] = members[lo:hi][order]
        return
    for a in range(g):
        key[a] = point[members[lo + a]]
    for a in range(1, g):  # insertion sort: the fastest for a few dozen entries
        r, v = members[lo + a], key[a]
        b = a - 1
        while b >= 0 and key[b] < v:
            key[b + 1] = key[b]
            members[lo + b + 1] = members[lo + b]
            b -= 1
        key[b + 1] = v
        members[lo + b + 1] = r


@_jit
def _apart_gaussian(
    mean: np.ndarray, std: np.ndarray, i: int, j: int, margin: float, z: float
) -> bool | np.bool_:
    """``pairs.differ_gaussian`` for one pair: the same operations in the same order."""
    gap: float = abs(mean[i] - mean[j]) - margin
    scale: float = np.sqrt(std[i] * std[i] + std[j] * std[j])
    return (scale <= 0 or gap >= scale * z) and gap > 0


@_jit
def _apart_exact(
    mat: np.ndarray, k: np.ndarray, i: int, j: int, margin: float, confidence: float
) -> bool | np.bool_:
    """``max(P(i > j), P(j > i)) >= confidence`` over all draw pairs, as ``pairs.p_exact``
    counts them."""
    pairs = np.float64(k[i]) * np.float64(k[j])
    up = _count_greater(mat, i, k[i], j, k[j], margin) / pairs
    down = _count_greater(mat, j, k[j], i, k[i], margin) / pairs
    return max(up, down) >= confidence


@_jit
def _count_greater(mat: np.ndarray, a: int, ka: int, b: int, kb: int, margin: float) -> int:
    """Pairs of draws with ``x_a - margin > y_b``, both rows sorted ascending: one merge."""
    count = 0
    j = 0
    for i in range(ka):
        query = mat[a, i] - margin
        while j < kb and mat[b, j] < query:
            j += 1
        count += j
    return count


@_jit
def _finish(
    members: np.ndarray,
    lo: int,
    g: int,
    boundary: np.ndarray,
    tier: np.ndarray,
    sums: np.ndarray,
    counts: np.ndarray,
    point: np.ndarray,
    assign: int,
    tier_out: np.ndarray,
    reward_out: np.ndarray,
) -> None:
    """Tiers from one group's boundaries, and one reward per tier, written to its samples."""
    t = -1
    for p in range(g):
        if boundary[p]:
            t += 1
        tier[p] = t
    n_tiers = t + 1
    if assign == 0:  # mean: summed in position order from 0.0, as np.bincount sums
        sums[:n_tiers] = 0.0
        counts[:n_tiers] = 0
        for p in range(g):
            sums[tier[p]] += point[members[lo + p]]
            counts[tier[p]] += 1
        for p in range(g):
            reward_out[members[lo + p]] = sums[tier[p]] / counts[tier[p]]
    for p in range(g):
        row = members[lo + p]
        tier_out[row] = tier[p]
        if assign == 1:  # rank, best = 1
            reward_out[row] = (n_tiers - 1 - tier[p]) / (n_tiers - 1) if n_tiers > 1 else 1.0
        elif assign == 2:  # binary
            reward_out[row] = 1.0 if tier[p] == 0 else 0.0
