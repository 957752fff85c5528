"""What each per-source transform does to DA / SP on the synthetic oversensitivity benchmark.

The data are ``synthetic_oversensitivity.simulate``'s: groups of G responses with a gold utility
in {0..4}, scored by a reward model with a per-response bias and K Monte Carlo draws around it.
Each group also has a reference response of utility 2 (scored by the same model, for ``par`` and
``log_sigmoid``), and every response a length in words that the reward model rewards a little
(``length_bias`` per 100 words beyond 250: a length hack; gold ignores length). Each transform
runs through :class:`rewardplug.transforms.TransformChain` -- the code a stack runs -- then the
shared discretizer (exact and Gaussian, confidence 0.9) and the paper's metrics.

    python benchmarks/transforms_synthetic.py [--groups 1000] [--group 8] [--draws 16]
    python benchmarks/transforms_synthetic.py --smoke    # 40 groups: seconds
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from _bench import parser, size
from synthetic_oversensitivity import simulate

from rewardplug.config import SourceSpec
from rewardplug.discretizer import discretize
from rewardplug.metrics import evaluate
from rewardplug.transforms import TransformChain, normalize_transforms, reference_key
from rewardplug.types import Sample, Score

CHAINS: list[tuple[str, list]] = [
    ("none", []),
    ("scale a=10 b=-5", [{"scale": {"a": 10, "b": -5}}]),
    ("par tau=0.5", [{"par": {"tau": 0.5}}]),
    ("par tau=2", [{"par": {"tau": 2.0}}]),
    ("log_sigmoid tau=0.5", [{"log_sigmoid": {"tau": 0.5}}]),
    ("clip [1, 3]", [{"clip": {"min": 1.0, "max": 3.0}}]),
    ("overlong 400/150", [{"overlong": {"max_tokens": 400, "cache_tokens": 150}}]),
]


def build(n_groups: int, group: int, k: int, noise: float, length_bias: float, seed: int):
    """Samples with their scores, the reference scores, gold utilities and groups."""
    utility, draws, groups = simulate(n_groups, group, k, noise, seed)
    rng = np.random.default_rng(seed + 1)
    n = len(utility)
    words = rng.integers(50, 500, size=n)
    draws = draws + length_bias * np.maximum(words - 250, 0)[:, None] / 100
    ref = 2.0 + rng.normal(0, noise, size=n_groups)  # each group's reference: utility 2
    samples, scores = [], []
    for i in range(n):
        g = int(groups[i])
        samples.append(
            Sample(
                id=str(i),
                group=str(g),
                prompt=f"p{g}",
                response="w " * int(words[i]),
                reference=f"r{g}",
            )
        )
        scores.append(Score.of(value=float(draws[i].mean()), draws=draws[i].tolist()))
    refs = {reference_key(samples[i]): Score.of(float(ref[int(groups[i])])) for i in range(n)}
    return samples, scores, refs, utility, groups


def run(args: argparse.Namespace, noise: float) -> None:
    samples, scores, refs, utility, groups = build(
        args.groups, args.group, args.draws, noise, args.length_bias, seed=1
    )
    print(f"\nnoise {noise}: {args.groups} groups of {args.group}, K = {args.draws}")
    print(
        f"{'transform':>20} | {'raw DA':>6} {'raw SP':>6} | {'exact DA':>8} {'SP':>6} {'acc':>6} "
        f"{'tiers':>5} | {'gauss DA':>8} {'SP':>6} {'acc':>6} {'tiers':>5}"
    )
    for label, specs in CHAINS:
        spec = SourceSpec(name="rm", use="python", transform=normalize_transforms(specs))
        chain = TransformChain(spec.transform)
        chain.remember(list(refs), list(refs.values()))
        out = chain.apply(samples, scores)
        draws = np.array([s.draws for s in out])
        values = np.array([s.value for s in out])
        raw = evaluate(values, utility, groups, n_boot=0)
        cells = [f"{raw['discriminative_ability']:>6.3f} {raw['specificity']:>6.3f}"]
        for method in ("exact", "gaussian"):
            res = discretize(draws, groups, args.confidence, values=values, method=method)
            m = evaluate(res.reward, utility, groups, n_boot=0)
            tiers = np.mean(list(res.n_tiers.values()))
            cells.append(
                f"{m['discriminative_ability']:>8.3f} {m['specificity']:>6.3f} "
                f"{m['accuracy']:>6.3f} {tiers:>5.2f}"
            )
        print(f"{label:>20} | " + " | ".join(cells))


def main() -> None:
    ap = parser(__doc__, repeats=None)
    ap.add_argument("--groups", type=int, default=None, help="default 1000 (--smoke: 40)")
    ap.add_argument("--group", type=int, default=8)
    ap.add_argument("--draws", type=int, default=16)
    ap.add_argument("--confidence", type=float, default=0.9)
    ap.add_argument("--length-bias", type=float, default=0.5)
    args = ap.parse_args()
    args.groups = args.groups or size(args, 1000, 40)
    start = time.perf_counter()
    for noise in (0.25, 0.5):
        run(args, noise)
    print(f"\n{time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
