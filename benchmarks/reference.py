"""A plain, per-group reference implementation of the discretizer (for tests and benchmarks).

Written for clarity, not speed: Python loops over groups and pairs. The fast, vectorized
``rewardplug.discretize`` must agree with it.
"""

from __future__ import annotations

import math

import numpy as np


def pair_probability(x: np.ndarray, y: np.ndarray, method: str, margin: float) -> float:
    """P(X - Y > margin) from two draw vectors."""
    if method == "exact":
        return float(np.mean((x[:, None] - margin) > y[None, :]))
    mx, my = float(np.mean(x)), float(np.mean(y))
    sx = float(np.std(x, ddof=1)) if len(x) > 1 else 0.0
    sy = float(np.std(y, ddof=1)) if len(y) > 1 else 0.0
    scale = math.sqrt(sx * sx + sy * sy)
    diff = mx - my - margin
    if scale == 0:
        return 1.0 if diff > 0 else 0.0
    return 0.5 * (1 + math.erf(diff / scale / math.sqrt(2)))


def reference_discretize(
    draws, groups, confidence=0.9, assign="mean", values=None, method="exact", margin=0.0
):
    """Tiers and rewards, one group at a time (same contract as ``rewardplug.discretize``)."""
    rows = [np.asarray([] if d is None else d, dtype=float) for d in draws]
    rows = [r[~np.isnan(r)] for r in rows]
    point = (
        [float(np.mean(r)) if len(r) else math.nan for r in rows]
        if values is None
        else list(values)
    )
    n = len(rows)
    tier = np.full(n, -1)
    reward = np.full(n, np.nan)
    n_tiers = {}
    members: dict = {}
    for i in range(n):
        if len(rows[i]) and math.isfinite(point[i]):
            members.setdefault(groups[i], []).append(i)
    for group, idx in members.items():
        idx = sorted(idx, key=lambda i: -point[i])
        tiers: list[list[int]] = [[idx[0]]]
        for i in idx[1:]:
            conflict = False
            for j in tiers[-1]:
                pij = pair_probability(rows[i], rows[j], method, margin)
                pji = pair_probability(rows[j], rows[i], method, margin)
                if max(pij, pji) >= confidence and point[i] != point[j]:
                    conflict = True
                    break
            if conflict:
                # the new tier starts at the first sample with the same point estimate
                run = [j for j in tiers[-1] if point[j] == point[i]]
                tiers[-1] = [j for j in tiers[-1] if point[j] != point[i]]
                tiers.append([*run, i])
            else:
                tiers[-1].append(i)
        n_tiers[group] = len(tiers)
        for t, members_t in enumerate(tiers):
            if assign == "mean":
                value = float(np.mean([point[j] for j in members_t]))
            elif assign == "rank":
                value = 1.0 if len(tiers) == 1 else (len(tiers) - 1 - t) / (len(tiers) - 1)
            else:
                value = 1.0 if t == 0 else 0.0
            for j in members_t:
                tier[j] = t
                reward[j] = value
    return tier, reward, n_tiers
