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

from collections.abc import Hashable, Sequence
from typing import Any, Literal, NamedTuple

import numpy as np

from rewardplug.pairs import differ_gaussian, p_exact, p_within_gaussian, segment

__all__ = [
    "Assign",
    "DiscretizeResult",
    "Method",
    "Rule",
    "as_draw_matrix",
    "discretize",
    "row_spread",
]

Assign = Literal["mean", "rank", "binary"]
Method = Literal["exact", "gaussian"]
Rule = Literal["different", "equivalent"]

# Inputs larger than this are discretized in chunks of whole groups, of at most this many samples
# and this many within-group pairs (sum of g**2): about 2 MB per float temporary.
_CHUNK_SAMPLES = 16384
_CHUNK_PAIRS = 1 << 18


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


_HUGE_EXP = 500  # |draw| >= 2**500: squares and sums of a group's draws could overflow


def _huge_group_shift(mat: np.ndarray, labels: np.ndarray) -> np.ndarray | None:
    """Per row, the power of two its group's draws are divided by so that means and spreads
    cannot overflow (every decision is scale-invariant, and the division is exact); None when no
    group needs it, which leaves ordinary groups bit for bit as they are."""
    if not mat.size:
        return None
    with np.errstate(invalid="ignore"):
        if max(np.nanmax(mat, initial=0.0), -np.nanmin(mat, initial=0.0)) < 2.0**_HUGE_EXP:
            return None  # the common case: two passes, no temporaries
        row_max = np.nanmax(np.abs(mat), axis=1, initial=0.0)
    _, codes = np.unique(labels.astype(str), return_inverse=True)
    group_max = np.zeros(codes.max() + 1)
    np.maximum.at(group_max, codes, row_max)
    exponent = np.frexp(group_max)[1]
    return np.where(exponent > _HUGE_EXP, exponent - _HUGE_EXP, 0)[codes]


def discretize(
    draws: Any,
    groups: Sequence[Hashable] | np.ndarray,
    confidence: float = 0.9,
    assign: Assign = "mean",
    *,
    values: Sequence[float] | np.ndarray | None = None,
    method: Method = "exact",
    margin: float = 0.0,
    rule: Rule = "different",
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
    :param rule: ``different`` (default): two samples share a tier unless one is confidently
        better; ``equivalent`` (the clustering of "Discretizing Reward Models"): they share a tier
        only when they are confidently within ``margin`` of each other,
        ``P(|R_i - R_j| <= margin) >= confidence`` (needs ``margin > 0``).
    """
    if not 0.5 <= confidence <= 1.0:
        raise ValueError(f"confidence must be in [0.5, 1], got {confidence}")
    if assign not in ("mean", "rank", "binary"):
        raise ValueError(f"assign must be 'mean', 'rank' or 'binary', got {assign!r}")
    if method not in ("exact", "gaussian"):
        raise ValueError(f"method must be 'exact' or 'gaussian', got {method!r}")
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    if rule not in ("different", "equivalent"):
        raise ValueError(f"rule must be 'different' or 'equivalent', got {rule!r}")
    if rule == "equivalent" and margin <= 0:
        raise ValueError(
            "rule 'equivalent' merges samples confidently within `margin` of each other: give a "
            "margin > 0 (on the reward's scale), or use rule 'different'"
        )

    mat = as_draw_matrix(draws)
    n = mat.shape[0]
    labels = np.asarray(groups, dtype=object) if not isinstance(groups, np.ndarray) else groups
    if labels.shape[0] != n:
        raise ValueError(f"got {n} draw rows but {labels.shape[0]} group labels")
    if labels.dtype == object:
        kinds = {t.__name__ for t in set(map(type, labels.tolist()))}
        if len(kinds) > 1 and not kinds <= {"int", "float", "bool"}:
            raise TypeError(
                f"group labels must be of one kind, got {', '.join(sorted(kinds))}: "
                "convert them (e.g. all to str) so that equal groups compare equal"
            )
    point = None if values is None else np.asarray(values, dtype=np.float64)
    if point is not None and point.shape != (n,):
        raise ValueError(f"values must have shape ({n},), got {point.shape}")
    options = (confidence, assign, method, margin, rule)
    if n <= _CHUNK_SAMPLES:
        return _discretize(mat, labels, point, *options)
    # Large inputs go through in chunks of whole groups: every group's result is the same as on
    # its own, and the temporaries (the draws' copies, the (groups, g, g) pair matrices) stay a
    # few MB instead of gigabytes, so the cost per sample stays flat as the input grows.
    uniques, codes = np.unique(labels, return_inverse=True)
    rows_by_group = np.argsort(codes, kind="stable")
    sizes = np.bincount(codes, minlength=len(uniques))
    ends = np.cumsum(sizes)
    tier = np.full(n, -1, dtype=np.int64)
    reward = np.full(n, np.nan)
    n_tiers: dict[Hashable, int] = {}
    first = 0
    while first < len(sizes):
        # whole groups, at most _CHUNK_SAMPLES samples and _CHUNK_PAIRS pairs (one group at least)
        pairs = np.cumsum(sizes[first:].astype(np.int64) ** 2)
        samples = ends[first:] - (ends[first - 1] if first else 0)
        last = first + max(
            1,
            int(np.searchsorted(pairs, _CHUNK_PAIRS, side="right")),
        )
        last = min(
            last, first + max(1, int(np.searchsorted(samples, _CHUNK_SAMPLES, side="right")))
        )
        lo = ends[first - 1] if first else 0
        rows = rows_by_group[lo : ends[last - 1]]
        part = _discretize(
            mat[rows], labels[rows], None if point is None else point[rows], *options
        )
        tier[rows] = part.tier
        reward[rows] = part.reward
        n_tiers.update(part.n_tiers)
        first = last
    return DiscretizeResult(tier, reward, n_tiers)


def _discretize(
    mat: np.ndarray,
    labels: np.ndarray,
    values: np.ndarray | None,
    confidence: float,
    assign: Assign,
    method: Method,
    margin: float,
    rule: Rule,
) -> DiscretizeResult:
    """:func:`discretize` on validated arrays (a whole input, or a chunk of whole groups)."""
    n = mat.shape[0]
    # An infinite draw is not a score: the whole row abstains (it is never silently dropped).
    all_finite = bool(np.isfinite(mat).all())  # the common case: no padding, no infinities
    if not all_finite:
        inf_rows = np.isinf(mat).any(axis=1)
        if inf_rows.any():
            mat = mat.copy()
            mat[inf_rows] = np.nan
    shift = _huge_group_shift(mat, labels)
    if shift is not None:
        mat = np.ldexp(mat, -shift[:, None])
    # Each row's draws in sorted order (NaN padding last): means and spreads are then the same
    # to the last bit whatever order a source listed its draws in.
    mat = np.sort(mat, axis=1)
    k = np.full(n, mat.shape[1]) if all_finite else np.count_nonzero(~np.isnan(mat), axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = _row_sum(mat, k) / k
    if values is None:
        point = mean
    else:
        point = values
        if shift is not None:
            point = np.ldexp(point, -shift)
    active = (k > 0) & np.isfinite(point)

    tier = np.full(n, -1, dtype=np.int64)
    reward = np.full(n, np.nan)
    if not active.any():
        return DiscretizeResult(tier, reward, {})

    every = bool(active.all())
    act = slice(None) if every else np.flatnonzero(active)  # a slice: views, no copies
    n_act = n if every else len(act)
    # a scaled group's margin is scaled with it (the decisions stay exactly the same)
    row_margin = np.full(n, float(margin)) if shift is None else np.ldexp(float(margin), -shift)
    uniques, codes = np.unique(labels[act], return_inverse=True)
    a_mat, a_point, a_mean, a_k = mat[act], point[act], mean[act], k[act]
    spread = _std(a_mat, a_mean, a_k)
    order = _group_order(codes, a_point, a_mean, spread, a_mat)
    sizes = np.bincount(codes, minlength=len(uniques))
    starts = np.concatenate(([0], np.cumsum(sizes)[:-1]))

    s_tier = np.empty(n_act, dtype=np.int64)
    s_reward = np.empty(n_act)
    n_tiers = np.empty(len(uniques), dtype=np.int64)
    for size in np.unique(sizes):
        gids = np.flatnonzero(sizes == size)
        idx = order[starts[gids][:, None] + np.arange(size)]  # (groups, size) into active arrays
        t, r = _block(
            a_mat[idx] if method == "exact" else None,  # the Gaussian rule needs no draws
            a_point[idx],
            a_mean[idx],
            spread[idx],
            a_k[idx],
            confidence,
            assign,
            method,
            _block_margin(row_margin[act][idx[:, 0]], margin),
            rule,
        )
        s_tier[idx] = t
        s_reward[idx] = r
        n_tiers[gids] = t[:, -1] + 1
    tier[act] = s_tier
    reward[act] = s_reward
    if shift is not None and assign == "mean":
        reward = np.ldexp(reward, shift)  # back to the draws' own scale (exact)
    return DiscretizeResult(
        tier, reward, dict(zip(uniques.tolist(), n_tiers.tolist(), strict=True))
    )


def _group_order(
    codes: np.ndarray, point: np.ndarray, mean: np.ndarray, spread: np.ndarray, mat: np.ndarray
) -> np.ndarray:
    """Sort by group, then best point estimate first. Equal estimates are ordered by content
    (mean, spread, third central moment of the draws), never by input position, so the result
    does not depend on the order the samples came in; that slower sort runs only when needed."""
    order = _best_first(codes, point)
    c, p = codes[order], point[order]
    if not np.any((c[1:] == c[:-1]) & (p[1:] == p[:-1])):
        return order
    centered = np.nan_to_num(mat - mean[:, None])
    skew = np.einsum("ij,ij,ij->i", centered, centered, centered)
    return np.lexsort((skew, spread, -mean, -point, codes))


def _best_first(codes: np.ndarray, point: np.ndarray) -> np.ndarray:
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


def row_spread(mat: np.ndarray) -> np.ndarray:
    """Per row of a NaN-padded draw matrix, the sample std of its draws (0 for one draw), the
    same to the bit whatever the order of the draws or the width of the padding."""
    mat = np.sort(mat, axis=1)
    k = np.count_nonzero(~np.isnan(mat), axis=1)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        mean = _row_sum(mat, k) / k
        return _std(mat, mean, k)


def _block_margin(margins: np.ndarray, margin: float) -> float | np.ndarray:
    """The margin for a block of groups: the plain number, or per group (shape (n, 1, 1)) when
    some of them were scaled down."""
    if margin == 0 or (margins == margin).all():
        return margin
    return margins[:, None, None]


def _row_sum(mat: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Per row, the sum of its first ``k`` entries (the rest is NaN padding), computed over
    exactly those ``k`` columns: unlike ``nansum`` over the whole width, the rounding does not
    depend on how much padding follows, so a group's rewards are the same to the bit whatever
    else shares its batch."""
    n, width = mat.shape
    if n and int(k.min()) == width:  # no padding anywhere: the common case, one pass
        return np.sum(mat, axis=1)
    out = np.zeros(n)
    for kk in np.unique(k):
        if kk:
            rows = k == kk
            out[rows] = np.sum(mat[rows, :kk], axis=1)
    return out


def _std(mat: np.ndarray, mean: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Sample standard deviation per row (ddof = 1; 0 for a single draw), NaN padding ignored."""
    centered = mat - mean[:, None]
    centered *= centered
    sq = _row_sum(centered, k)
    return np.sqrt(np.divide(sq, k - 1, out=np.zeros_like(sq), where=k > 1))


def _block(
    mat: np.ndarray | None,
    point: np.ndarray,
    mean: np.ndarray,
    std: np.ndarray,
    k: np.ndarray,
    confidence: float,
    assign: Assign,
    method: Method,
    margin: float,
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
            p_greater = p_exact(mat, k, margin)
            within = 1.0 - p_greater - p_greater.transpose(0, 2, 1)
        differ = ~(within >= confidence)
    elif method == "gaussian":
        differ = differ_gaussian(mean, std, margin, confidence)
    else:
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
        return np.where(n_tiers > 1, (n_tiers - 1 - tiers) / np.maximum(n_tiers - 1, 1), 1.0)
    if assign == "binary":
        return (tiers == 0).astype(np.float64)
    flat = (np.arange(n)[:, None] * g + tiers).ravel()
    sums = np.bincount(flat, weights=point.ravel(), minlength=n * g)
    cnts = np.bincount(flat, minlength=n * g)
    means = sums / np.maximum(cnts, 1)
    return means[flat].reshape(n, g)
