"""The draw-free controls of the RL hacking experiment (``benchmarks/rl_hacking.py``).

Each control gives a group exactly as many tiers as the discretizer gave it, keeps the order of
the proxy values and pays each tier its mean value (as ``assign: mean``), but decides *where* to
cut without looking at the draws:

* :func:`random_merge` cuts at random gaps of the best-first order;
* :func:`gap_merge` cuts at the largest gaps of the proxy value.

If the discretizer only matches :func:`gap_merge`, its ties carry nothing the values do not: with
one spread for every answer, "confidently different" is a fixed threshold on value differences.
"""

from __future__ import annotations

import numpy as np


def _merge(value: np.ndarray, n_tiers: np.ndarray, cut_levels) -> np.ndarray:
    """Per group (last axis), tiers from ``cut_levels(levels, k)`` -- the indices ``i`` of the
    distinct best-first levels after which a new tier starts -- each tier at its mean value."""
    out = np.empty_like(value, dtype=float)
    flat_v, flat_t = value.reshape(-1, value.shape[-1]), np.asarray(n_tiers).reshape(-1)
    res = out.reshape(-1, value.shape[-1])
    for i, (v, k) in enumerate(zip(flat_v, flat_t, strict=True)):
        levels, inverse = np.unique(-v, return_inverse=True)  # distinct values, best first
        k = int(min(max(int(k), 1), len(levels)))
        cuts = np.sort(cut_levels(-levels, k))
        tier_of_level = np.searchsorted(cuts, np.arange(len(levels)), side="left")
        tier = tier_of_level[inverse]
        means = np.bincount(tier, weights=v) / np.bincount(tier)
        res[i] = means[tier]
    return out


def random_merge(value: np.ndarray, n_tiers: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Per group, the given number of tiers, cut at random gaps between distinct values of the
    best-first order; each tier gets its mean value."""
    return _merge(
        value, n_tiers, lambda levels, k: rng.choice(len(levels) - 1, size=k - 1, replace=False)
    )


def gap_merge(value: np.ndarray, n_tiers: np.ndarray) -> np.ndarray:
    """Per group, the given number of tiers, cut at the ``k - 1`` largest gaps between
    consecutive distinct values (the first of equal gaps, from the top); each tier gets its mean
    value. Deterministic: it sees the values and the tier count, never the draws."""

    def largest_gaps(levels: np.ndarray, k: int) -> np.ndarray:
        gaps = levels[:-1] - levels[1:]  # levels are best first, so every gap is > 0
        return np.argsort(-gaps, kind="stable")[: k - 1]

    return _merge(value, n_tiers, largest_gaps)
