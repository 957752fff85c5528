"""Speed of the shared discretizer: the vectorized fast path vs the plain per-group reference loop.

Data: N samples in groups of 16 with K = 16 draws each (default N = 1,000,000). For each mode
(``gaussian``, ``exact``) it reports the median wall time of the fast path over all N samples, and
the speed-up over the reference loop measured on the same subset of groups in the same run (the
reference is too slow to run on a million samples routinely; ``--reference-groups 0`` runs it on
everything). Results of both implementations on the subset are checked to be identical.

    python benchmarks/discretize_bench.py [--samples 1000000] [--reference-groups 2000]
    python benchmarks/discretize_bench.py --smoke    # 4,096 samples: seconds
"""

from __future__ import annotations

import numpy as np
from _bench import parser, size, timed
from reference import reference_discretize

from rewardplug.discretizer import discretize


def make_data(n: int, group: int, k: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    utility = rng.integers(0, 5, size=n).astype(float)
    draws = utility[:, None] + rng.normal(0, 0.2, size=(n, 1)) + rng.normal(0, 0.4, size=(n, k))
    groups = np.repeat(np.arange(n // group), group)
    return draws[: len(groups)], groups


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--samples", type=int, default=None, help="default 1,000,000 (--smoke: 4,096)")
    ap.add_argument("--group", type=int, default=16)
    ap.add_argument("--draws", type=int, default=16)
    ap.add_argument(
        "--reference-groups", type=int, default=None, help="default 2000 (--smoke: 20); 0 = all"
    )
    args = ap.parse_args()
    args.samples = args.samples or size(args, 1_000_000, 4096)
    if args.reference_groups is None:
        args.reference_groups = size(args, 2000, 20)

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
        fast_all, _ = timed(lambda m=method: discretize(draws, groups, 0.9, method=m), args.repeats)
        fast_sub, res = timed(
            lambda m=method: discretize(draws[:n_ref], groups[:n_ref], 0.9, method=m), args.repeats
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
            args.repeats,
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
