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
invisible to the rest of their group. Two backends give the same results to the bit: numpy's
(:mod:`rewardplug.blocks`), vectorized across groups -- groups of equal size are processed as one
``(n_groups, size, K)`` block, and the only Python loops run over distinct group sizes and over
positions within a group, never over groups -- and numba's compiled kernels
(:mod:`rewardplug.compiled`, the ``fast`` extra), one pass per group; ``backend="auto"`` takes the
compiled one for large inputs when numba is installed and its kernels are compiled (never a
compile on the call: :mod:`rewardplug.compiled_loader`).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any, Literal, NamedTuple

import numpy as np

from rewardplug.blocks import numpy_blocks, row_std, row_sum
from rewardplug.compiled_loader import LOADER
from rewardplug.pairs import Assign, Method, Rule, z_threshold

__all__ = [
    "Assign",
    "Backend",
    "DiscretizeResult",
    "Method",
    "Rule",
    "as_draw_matrix",
    "discretize",
    "row_spread",
]

Backend = Literal["auto", "numpy", "numba"]

# Inputs larger than this are discretized in chunks of whole groups, of at most this many samples
# and this many within-group pairs (sum of g**2): about 2 MB per float temporary.
_CHUNK_SAMPLES = 16384
_CHUNK_PAIRS = 1 << 18
# The compiled kernels make no pair arrays: their temporaries are the sorted draws and a few
# per-sample arrays, so their chunks can be larger (fewer fixed costs per chunk).
_COMPILED_CHUNK_SAMPLES = 1 << 16
# backend "auto" compiles (numba, when installed) from this many samples on: below it numpy's
# few milliseconds do not pay for importing numba (about 0.3 s, once per process).
_COMPILED_MIN_SAMPLES = 4096


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


def _huge_group_shift(
    mat: np.ndarray, labels: np.ndarray, row_max: np.ndarray | None = None
) -> np.ndarray | None:
    """Per row, the power of two its group's draws are divided by so that means and spreads
    cannot overflow (every decision is scale-invariant, and the division is exact); None when no
    group needs it, which leaves ordinary groups bit for bit as they are. ``row_max``: each
    row's largest finite |draw|, when the caller has it."""
    if not mat.size:
        return None
    if row_max is None:
        with np.errstate(invalid="ignore"):
            if max(np.nanmax(mat, initial=0.0), -np.nanmin(mat, initial=0.0)) < 2.0**_HUGE_EXP:
                return None  # the common case: two passes, no temporaries
            row_max = np.nanmax(np.abs(mat), axis=1, initial=0.0)
    elif row_max.max() < 2.0**_HUGE_EXP:
        return None
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
    backend: Backend = "auto",
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
    :param backend: ``numpy``, ``numba`` (compiled kernels, the ``fast`` extra; the same results
        to the bit, several times faster on large inputs; compiled on the first call of a fresh
        environment) or ``auto`` (default): ``numba`` when it is installed, its kernels are
        compiled and the input has at least 4,096 samples, else ``numpy`` (a process that finds
        them uncompiled compiles them in the background, once; numba caches them on disk).
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
    kernels = _kernels(backend, n)
    options = (confidence, assign, method, margin, rule, kernels)
    most = _CHUNK_SAMPLES if kernels is None else _COMPILED_CHUNK_SAMPLES
    most_pairs = _CHUNK_PAIRS if kernels is None else np.iinfo(np.int64).max
    if n <= most:
        return _discretize(mat, labels, point, *options)
    # Large inputs go through in chunks of whole groups: every group's result is the same as on
    # its own, and the temporaries (the draws' copies, the (groups, g, g) pair matrices) stay a
    # few MB instead of gigabytes, so the cost per sample stays flat as the input grows.
    uniques, codes = _unique(labels)
    # groups already in order (the usual batch): each chunk is a slice, a view, not a gather
    in_order = bool((codes[1:] >= codes[:-1]).all())
    rows_by_group = None if in_order else np.argsort(codes, kind="stable")
    sizes = np.bincount(codes, minlength=len(uniques))
    ends = np.cumsum(sizes)
    tier = np.full(n, -1, dtype=np.int64)
    reward = np.full(n, np.nan)
    n_tiers: dict[Hashable, int] = {}
    first = 0
    while first < len(sizes):
        # whole groups, at most `most` samples and `most_pairs` pairs (one group at least)
        pairs = np.cumsum(sizes[first:].astype(np.int64) ** 2)
        samples = ends[first:] - (ends[first - 1] if first else 0)
        last = first + max(
            1,
            int(np.searchsorted(pairs, most_pairs, side="right")),
        )
        last = min(last, first + max(1, int(np.searchsorted(samples, most, side="right"))))
        lo = ends[first - 1] if first else 0
        rows = (
            slice(lo, ends[last - 1])
            if rows_by_group is None  # groups in order
            else rows_by_group[lo : ends[last - 1]]
        )
        grouping = (uniques[first:last], codes[rows] - first)
        part = _discretize(
            mat[rows], labels[rows], None if point is None else point[rows], *options, grouping
        )
        tier[rows] = part.tier
        reward[rows] = part.reward
        n_tiers.update(part.n_tiers)
        first = last
    return DiscretizeResult(tier, reward, n_tiers)


def _unique(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(labels, return_inverse=True)``; numeric labels already in order (the usual
    batch, and every chunk of a large one) without its sort."""
    numeric = labels.dtype.kind in "iub" or (
        labels.dtype.kind == "f" and not np.isnan(labels).any()
    )
    if numeric and len(labels) and (labels[1:] >= labels[:-1]).all():
        new = np.empty(len(labels), dtype=bool)
        new[0] = True
        np.not_equal(labels[1:], labels[:-1], out=new[1:])
        return labels[new], np.cumsum(new) - 1
    return np.unique(labels, return_inverse=True)


def _kernels(backend: Backend, n: int) -> Any:
    """The compiled kernels module for this call, or None for numpy's."""
    if backend not in ("auto", "numpy", "numba"):
        raise ValueError(f"backend must be 'auto', 'numpy' or 'numba', got {backend!r}")
    if backend == "numpy" or (backend == "auto" and n < _COMPILED_MIN_SAMPLES):
        return None
    if backend == "auto":  # never a compile here: numpy until the kernels are compiled
        return LOADER.kernels()
    try:
        return LOADER.load()
    except ImportError as exc:
        raise ImportError(
            f"backend 'numba' needs numba ({exc}): pip install 'rewardplug[fast]', or use "
            "backend 'numpy' (the same results, slower on large inputs)"
        ) from None


def _discretize(
    mat: np.ndarray,
    labels: np.ndarray,
    values: np.ndarray | None,
    confidence: float,
    assign: Assign,
    method: Method,
    margin: float,
    rule: Rule,
    kernels: Any = None,
    grouping: tuple[np.ndarray, np.ndarray] | None = None,
) -> DiscretizeResult:
    """:func:`discretize` on validated arrays (a whole input, or a chunk of whole groups);
    ``kernels``: the compiled kernels module, or None for numpy's; ``grouping``: the labels'
    ``np.unique`` (values and inverse), when the caller has it already."""
    n = mat.shape[0]
    mat, k, shift = _sorted_draws(mat, labels, kernels)
    if kernels is None:
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = row_sum(mat, k) / k
        spread = None  # computed below for the scored rows only
    else:
        mean, spread = kernels.row_stats(mat, k)  # the same numbers, in one pass
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
    act: slice | np.ndarray = slice(None)  # all active: a slice, views, no copies
    n_act = n
    if not every:
        act = np.flatnonzero(active)
        n_act = len(act)
    # a scaled group's margin is scaled with it (the decisions stay exactly the same)
    row_margin = np.full(n, float(margin)) if shift is None else np.ldexp(float(margin), -shift)
    uniques, codes = grouping if grouping is not None and every else _unique(labels[act])
    a_mat, a_point, a_mean, a_k = mat[act], point[act], mean[act], k[act]
    a_spread = row_std(a_mat, a_mean, a_k) if spread is None else spread[act]
    if every:  # written in place
        s_tier, s_reward = tier, reward
    else:
        s_tier, s_reward = np.empty(n_act, dtype=np.int64), np.empty(n_act)
    n_tiers = np.empty(len(uniques), dtype=np.int64)
    if kernels is not None and rule == "different":
        exact = method == "exact"
        kernels.group_tiers(
            codes, len(uniques), a_point, a_mean, a_spread, a_mat, a_k, exact,
            row_margin[act], confidence if exact else z_threshold(confidence),
            kernels.ASSIGN_CODES[assign], s_tier, s_reward, n_tiers,
        )  # fmt: skip
    else:
        numpy_blocks(
            codes, len(uniques), a_mat, a_point, a_mean, a_spread, a_k, row_margin[act],
            confidence, assign, method, margin, rule, s_tier, s_reward, n_tiers,
        )  # fmt: skip
    if not every:
        tier[act] = s_tier
        reward[act] = s_reward
    if shift is not None and assign == "mean":
        reward = np.ldexp(reward, shift)  # back to the draws' own scale (exact)
    return DiscretizeResult(
        tier, reward, dict(zip(uniques.tolist(), n_tiers.tolist(), strict=True))
    )


def _sorted_draws(
    mat: np.ndarray, labels: np.ndarray, kernels: Any
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Each row's draws sorted (NaN padding last), a row with an infinite draw all NaN (an
    infinity is not a score: the row abstains, it is never silently dropped), and groups near
    overflow scaled down: ``(draws, draws per row, each row's scale exponent or None)``.

    Sorted draws make means and spreads the same to the last bit whatever order a source listed
    its draws in."""
    if kernels is not None:
        # Sorted first (the copy is ours to change): a row's extremes are then its two ends, so
        # the checks for infinities and for huge values look at two draws per row, not all.
        mat = np.sort(mat, axis=1)
        k, inf_rows, row_max = kernels.scan_sorted(mat)
        if inf_rows.any():
            mat[inf_rows] = np.nan
        shift = _huge_group_shift(mat, labels, row_max)
        if shift is not None:  # a power of two keeps each sorted row sorted
            mat = np.ldexp(mat, -shift[:, None])
        return mat, k, shift
    n = mat.shape[0]
    all_finite = bool(np.isfinite(mat).all())  # the common case: no padding, no infinities
    if not all_finite:
        inf_rows = np.isinf(mat).any(axis=1)
        if inf_rows.any():
            mat = mat.copy()
            mat[inf_rows] = np.nan
    shift = _huge_group_shift(mat, labels)
    if shift is not None:
        mat = np.ldexp(mat, -shift[:, None])
    mat = np.sort(mat, axis=1)
    k = np.full(n, mat.shape[1]) if all_finite else np.count_nonzero(~np.isnan(mat), axis=1)
    return mat, k, shift


def row_spread(mat: np.ndarray) -> np.ndarray:
    """Per row of a NaN-padded draw matrix, the sample std of its draws (0 for one draw), the
    same to the bit whatever the order of the draws or the width of the padding."""
    mat = np.sort(mat, axis=1)
    k = np.count_nonzero(~np.isnan(mat), axis=1)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        mean = row_sum(mat, k) / k
        return row_std(mat, mean, k)
