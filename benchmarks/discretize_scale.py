"""The discretizer at scale: against a per-group numpy baseline, per-sample cost from 16k to 1M
samples, the physical floor (one sort of the draws), and large groups.

Baseline: what a user would write -- a loop over groups, each group vectorized in numpy (its
``(g, g)`` probability matrix from broadcasting, then the greedy best-first split). It is timed on
``--baseline-groups`` groups and its tiers are checked against the fast path's.

    python benchmarks/discretize_scale.py --repeats 3
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from scipy.special import ndtr

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rewardplug.discretizer import discretize


def make_data(n: int, group: int, k: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    utility = rng.integers(0, 5, size=n).astype(float)
    draws = utility[:, None] + rng.normal(0, 0.2, size=(n, 1)) + rng.normal(0, 0.4, size=(n, k))
    return draws, np.repeat(np.arange(n // group + 1), group)[:n]


def baseline(draws: np.ndarray, groups: np.ndarray, confidence: float, method: str) -> np.ndarray:
    """Tiers by a per-group loop, each group vectorized (the user's version)."""
    tiers = np.empty(len(groups), dtype=np.int64)
    bounds = np.flatnonzero(np.diff(groups)) + 1
    for idx in np.split(np.arange(len(groups)), bounds):
        x = draws[idx]
        mean = x.mean(axis=1)
        order = np.argsort(-mean, kind="stable")
        x, mean = x[order], mean[order]
        if method == "gaussian":
            std = x.std(axis=1, ddof=1)
            gap = mean[:, None] - mean[None, :]
            scale = np.sqrt(std[:, None] ** 2 + std[None, :] ** 2)
            p = ndtr(gap / scale)
        else:
            p = (x[:, None, :, None] > x[None, :, None, :]).mean(axis=(2, 3))
        differ = np.maximum(p, p.T) >= confidence
        t, start, tier = np.zeros(len(idx), dtype=np.int64), 0, 0
        for i in range(1, len(idx)):
            if differ[i, start:i].any():
                start, tier = i, tier + 1
            t[i] = tier
        tiers[idx[order]] = t
    return tiers


def median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--baseline-groups", type=int, default=2000)
    args = ap.parse_args()
    r = args.repeats

    print("1. against the per-group numpy baseline (groups of 16, K = 16)")
    draws, groups = make_data(args.baseline_groups * 16, 16, 16)
    for method in ("gaussian", "exact"):
        fast = median_time(lambda m=method: discretize(draws, groups, 0.9, method=m), r)
        slow = median_time(lambda m=method: baseline(draws, groups, 0.9, m), r)
        agree = np.mean(discretize(draws, groups, 0.9, method=method).tier
                        == baseline(draws, groups, 0.9, method))  # fmt: skip
        want = 20 if method == "gaussian" else 10
        verdict = "holds" if slow / fast >= want else "does not hold"
        print(f"   {method:8s} fast {fast * 1e3:8.1f} ms  baseline {slow * 1e3:8.1f} ms  "
              f"= {slow / fast:5.1f}x (target >= {want}x: {verdict})   "
              f"(same tier for {agree:.2%} of samples)")  # fmt: skip

    print("2. cost per sample from 16k to 1M samples (groups of 16, K = 16), and the floor")
    verdicts: list[str] = []
    for n in (16_384, 131_072, 1_048_576):
        draws, groups = make_data(n, 16, 16)
        floor = median_time(lambda d=draws: np.sort(d, axis=1), r)
        cells = []
        for method in ("gaussian", "exact"):
            t = median_time(lambda m=method, d=draws, g=groups: discretize(d, g, 0.9, method=m), r)
            cells.append(
                f"{method} {t:6.3f} s = {t / n * 1e9:6.0f} ns/sample = {t / floor:5.1f}x floor"
            )
            if n == 1_048_576:
                limit = 1.0 if method == "gaussian" else 2.0
                verdicts.append(f"{method} at 1M: {t:.2f} s (target < {limit:.0f} s: "
                                f"{'holds' if t < limit else 'does not hold'})")  # fmt: skip
        print(f"   {n:>9,}: sort {floor:6.3f} s | " + " | ".join(cells))

    for line in verdicts:
        print(f"   {line}")

    print("3. large groups")
    for group, k, n in ((256, 16, 65_536), (16, 64, 262_144), (256, 64, 65_536)):
        draws, groups = make_data(n, group, k)
        cells = []
        for method in ("gaussian", "exact"):
            t = median_time(lambda m=method, d=draws, g=groups: discretize(d, g, 0.9, method=m), r)
            cells.append(f"{method} {t:6.3f} s ({t / n * 1e9:6.0f} ns/sample)")
        print(f"   groups of {group:3d}, K = {k:2d}, {n:,} samples: " + " | ".join(cells))


if __name__ == "__main__":
    main()
