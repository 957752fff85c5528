"""Oversensitivity on synthetic data: raw continuous rewards vs tie-grouped rewards.

Each group holds G responses with a gold utility in {0, ..., 4}. A reward model sees each response
with its own bias (equally good responses get different scores: oversensitivity) and reports K Monte
Carlo draws around its biased score. We measure the paper's metrics for the raw reward (mean of the
draws) and for the discretized reward at several noise levels. Expected: raw specificity ~ 0,
discretized specificity much higher, discriminative ability a few points lower at most.

    python benchmarks/synthetic_oversensitivity.py [--groups 2000] [--group 8] [--draws 16]
    python benchmarks/synthetic_oversensitivity.py --smoke    # 50 groups: seconds
"""

from __future__ import annotations

import numpy as np
from _bench import parser, size

from rewardplug.discretizer import discretize
from rewardplug.metrics import evaluate


def simulate(n_groups: int, group: int, k: int, noise: float, seed: int):
    rng = np.random.default_rng(seed)
    n = n_groups * group
    utility = rng.integers(0, 5, size=n).astype(float)
    bias = rng.normal(0, noise, size=n)  # the reward model's per-response error
    draws = (utility + bias)[:, None] + rng.normal(0, noise, size=(n, k))  # MC spread of that error
    return utility, draws, np.repeat(np.arange(n_groups), group)


def main() -> None:
    ap = parser(__doc__, repeats=None)
    ap.add_argument("--groups", type=int, default=None, help="default 2000 (--smoke: 50)")
    ap.add_argument("--group", type=int, default=8)
    ap.add_argument("--draws", type=int, default=16)
    ap.add_argument("--confidence", type=float, default=0.9)
    args = ap.parse_args()
    args.groups = args.groups or size(args, 2000, 50)
    print(f"{args.groups} groups of {args.group}, K = {args.draws}, confidence = {args.confidence}")
    print(
        f"{'noise':>6} {'method':>9} | {'raw SP':>7} {'raw DA':>7} {'raw acc':>8} | "
        f"{'disc SP':>8} {'disc DA':>8} {'disc acc':>9} | {'tiers/group':>11}"
    )
    for noise in (0.1, 0.25, 0.5, 1.0):
        utility, draws, groups = simulate(args.groups, args.group, args.draws, noise, seed=1)
        raw = evaluate(draws.mean(axis=1), utility, groups, n_boot=0)
        for method in ("exact", "gaussian"):
            res = discretize(draws, groups, args.confidence, method=method)
            disc = evaluate(res.reward, utility, groups, n_boot=0)
            tiers = np.mean(list(res.n_tiers.values()))
            print(
                f"{noise:>6} {method:>9} | {raw['specificity']:>7.3f} {raw['discriminative_ability']:>7.3f} "
                f"{raw['accuracy']:>8.3f} | {disc['specificity']:>8.3f} {disc['discriminative_ability']:>8.3f} "
                f"{disc['accuracy']:>9.3f} | {tiers:>11.2f}"
            )


if __name__ == "__main__":
    main()
