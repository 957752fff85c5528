"""The quality metrics of "Discretizing Reward Models" (Viswanathan et al., 2026).

Over all pairs of responses within a group:

* **discriminative ability (DA)**: among pairs whose gold quality differs, the fraction the reward
  orders the same way (a reward tie counts as not ordered);
* **specificity (SP)**: among pairs whose gold quality is equal, the fraction given equal rewards
  (oversensitivity = 1 - SP);
* **accuracy**: the fraction of all pairs handled correctly, i.e. ``P(gold differs) * DA +
  P(gold equal) * SP``.

Confidence intervals come from a bootstrap over groups (groups are the independent units).
Pairs are enumerated per block of equal-size groups, vectorized, like the discretizer.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["GroupCounts", "evaluate", "format_metric", "pair_counts", "summarize"]

METRICS = ("discriminative_ability", "specificity", "accuracy")


@dataclass
class GroupCounts:
    """Per-group pair counts: ``diff`` pairs with different gold (``ordered`` of them ordered
    correctly) and ``equal`` pairs with equal gold (``tied`` of them given equal rewards)."""

    diff: np.ndarray
    ordered: np.ndarray
    equal: np.ndarray
    tied: np.ndarray
    n_samples: int
    n_excluded: int


def pair_counts(
    rewards: Sequence[float | None] | np.ndarray,
    gold: Sequence[float | None] | np.ndarray,
    groups: Sequence[Hashable] | np.ndarray,
    tol: float = 1e-9,
) -> GroupCounts:
    """Count the pairs within each group; samples with no reward or no gold are left out.

    Two values are equal when they differ by at most ``tol`` relative to the larger magnitude.
    """
    r = np.array([np.nan if x is None else float(x) for x in rewards], dtype=np.float64)
    g = np.array([np.nan if x is None else float(x) for x in gold], dtype=np.float64)
    labels = np.asarray(groups, dtype=object)
    keep = np.isfinite(r) & np.isfinite(g)
    n_excluded = int((~keep).sum())
    r, g, labels = r[keep], g[keep], labels[keep]
    if not len(r):
        z = np.zeros(0)
        return GroupCounts(z, z, z, z, 0, n_excluded)
    _, codes = np.unique(labels, return_inverse=True)
    sizes = np.bincount(codes)
    order = np.argsort(codes, kind="stable")
    starts = np.concatenate(([0], np.cumsum(sizes)[:-1]))
    out = np.zeros((4, len(sizes)))
    for size in np.unique(sizes):
        if size < 2:
            continue
        gids = np.flatnonzero(sizes == size)
        idx = order[starts[gids][:, None] + np.arange(size)]
        rr, gg = r[idx], g[idx]
        iu, ju = np.triu_indices(size, k=1)
        dr = rr[:, iu] - rr[:, ju]
        dg = gg[:, iu] - gg[:, ju]
        # relative: rewards of 2e-10 and 1e-10 are ordered, not tied; float noise is a tie
        gold_equal = np.abs(dg) <= tol * np.maximum(np.abs(gg[:, iu]), np.abs(gg[:, ju]))
        reward_equal = np.abs(dr) <= tol * np.maximum(np.abs(rr[:, iu]), np.abs(rr[:, ju]))
        out[0, gids] = (~gold_equal).sum(axis=1)
        out[1, gids] = (~gold_equal & ~reward_equal & (np.sign(dr) == np.sign(dg))).sum(axis=1)
        out[2, gids] = gold_equal.sum(axis=1)
        out[3, gids] = (gold_equal & reward_equal).sum(axis=1)
    return GroupCounts(out[0], out[1], out[2], out[3], int(keep.sum()), n_excluded)


def _ratios(diff: Any, ordered: Any, equal: Any, tied: Any) -> dict[str, Any]:
    with np.errstate(invalid="ignore", divide="ignore"):
        return {
            "discriminative_ability": ordered / diff,
            "specificity": tied / equal,
            "accuracy": (ordered + tied) / (diff + equal),
        }


def summarize(
    counts: GroupCounts, n_boot: int = 1000, seed: int = 0, level: float = 0.95
) -> dict[str, Any]:
    """DA, SP, accuracy and oversensitivity, with bootstrap CIs over groups (``n_boot=0``: none)."""
    totals = [np.float64(a.sum()) for a in (counts.diff, counts.ordered, counts.equal, counts.tied)]
    point = {k: _nan_to_none(v) for k, v in _ratios(*totals).items()}
    sp = point["specificity"]
    result: dict[str, Any] = {
        **point,
        "oversensitivity": None if sp is None else 1.0 - sp,
        "pairs_gold_differs": int(totals[0]),
        "pairs_gold_equal": int(totals[2]),
        "groups": len(counts.diff),
        "samples": counts.n_samples,
        "excluded_samples": counts.n_excluded,
    }
    if n_boot and len(counts.diff):
        rng = np.random.default_rng(seed)
        n_groups = len(counts.diff)
        weights = rng.multinomial(n_groups, np.full(n_groups, 1.0 / n_groups), size=n_boot)
        sums = [weights @ a for a in (counts.diff, counts.ordered, counts.equal, counts.tied)]
        alpha = (1 - level) / 2
        ci = {}
        for name, values in _ratios(*sums).items():
            finite = values[np.isfinite(values)]
            ci[name] = (
                [float(np.quantile(finite, alpha)), float(np.quantile(finite, 1 - alpha))]
                if len(finite)
                else None
            )
        result["ci"] = ci
        result["ci_level"] = level
    return result


def evaluate(
    rewards: Sequence[float | None] | np.ndarray,
    gold: Sequence[float | None] | np.ndarray,
    groups: Sequence[Hashable] | np.ndarray,
    n_boot: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """DA / SP / accuracy of ``rewards`` against ``gold`` within ``groups``, with bootstrap CIs."""
    return summarize(pair_counts(rewards, gold, groups), n_boot=n_boot, seed=seed)


def format_metric(result: dict[str, Any], key: str) -> str:
    """``result[key]`` of :func:`evaluate` with its bootstrap CI, as the tables print it
    (``0.812 [0.780, 0.843]``); ``n/a`` where the metric is undefined (no pairs to judge)."""
    value = result[key]
    if value is None:
        return "n/a"
    ci = (result.get("ci") or {}).get(key)
    return f"{value:.3f}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "")


def _nan_to_none(x: float) -> float | None:
    return None if not np.isfinite(x) else float(x)
