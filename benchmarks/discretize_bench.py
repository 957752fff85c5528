"""Speed of the shared discretizer: the vectorized fast path vs the plain per-group reference loop.

Data: N samples in groups of 16 with K = 16 draws each (default N = 1,000,000). For each mode
(``gaussian``, ``exact``) it reports the median wall time of the fast path over all N samples, and
the speed-up over the reference loop measured on the same subset of groups in the same run (the
reference is too slow to run on a million samples routinely; ``--reference-groups 0`` runs it on
everything). Results of both implementations on the subset are checked to be identical.

    python benchmarks/discretize_bench.py [--samples 1000000] [--reference-groups 2000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rewardplug.discretizer import discretize
from tests.core.reference import reference_discretize


def make_data(n: int, group: int, k: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    utility = rng.integers(0, 5, size=n).astype(float)
    draws = utility[:, None] + rng.normal(0, 0.2, size=(n, 1)) + rng.normal(0, 0.4, size=(n, k))
    groups = np.repeat(np.arange(n // group), group)
    return draws[: len(groups)], groups


def timed(fn, repeat: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--samples", type=int, default=1_000_000)
    parser.add_argument("--group", type=int, default=16)
    parser.add_argument("--draws", type=int, default=16)
    parser.add_argument("--reference-groups", type=int, default=2000, help="0 = all groups")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    draws, groups = make_data(args.samples, args.group, args.draws)
    n_ref = (
        len(groups)
        if args.reference_groups == 0
        else min(len(groups), args.reference_groups * args.group)
    )
    print(
        f"{len(groups):,} samples, groups of {args.group}, K = {args.draws}; reference on {n_ref:,} samples"
    )
    print(
        f"{'mode':<9} {'fast, all (s)':>14} {'per 1M (s)':>11} {'fast, subset (s)':>17} "
        f"{'reference, subset (s)':>22} {'speed-up':>9}"
    )
    for method in ("gaussian", "exact"):
        fast_all, _ = timed(lambda m=method: discretize(draws, groups, 0.9, method=m), args.repeat)
        fast_sub, res = timed(
            lambda m=method: discretize(draws[:n_ref], groups[:n_ref], 0.9, method=m), args.repeat
        )
        ref_time, ref = timed(
            lambda m=method: reference_discretize(
                list(draws[:n_ref]), list(groups[:n_ref]), 0.9, method=m
            ),
            1,
        )
        assert np.array_equal(res.tier, ref[0]) and np.allclose(res.reward, ref[1]), (
            "fast != reference"
        )
        print(
            f"{method:<9} {fast_all:>14.3f} {fast_all * 1e6 / len(groups):>11.3f} {fast_sub:>17.4f} "
            f"{ref_time:>22.2f} {ref_time / fast_sub:>8.0f}x"
        )
        equiv, res_eq = timed(
            lambda m=method: discretize(
                draws, groups, 0.9, method=m, margin=0.5, rule="equivalent"
            ),
            args.repeat,
        )
        tiers_diff = np.mean(
            list(discretize(draws[:n_ref], groups[:n_ref], 0.9, method=method).n_tiers.values())
        )
        tiers_eq = np.mean(list(res_eq.n_tiers.values()))
        print(
            f"  rule equivalent (margin 0.5): {equiv:.3f} s for all = {equiv / fast_all:.2f}x "
            f"the default rule; tiers per group {tiers_eq:.2f} (different: {tiers_diff:.2f})"
        )


if __name__ == "__main__":
    main()
