"""The group assembler alone: samples/s with 8,192 groups open at once, against one batch call.

Issue 24 asks for the assembler's own throughput at the sizes trainers produce. Two shapes, each
submitting every sample as its own ``submit`` call (as verl's reward loop and the one-sample
server do), with a cheap ``python``-source stack so that the assembler's bookkeeping is what is
measured:

* ``open``: 8,192 groups of 2; every group's first member arrives before any second member, so
  8,192 groups are open at once (verl's validation set, or a large batch, in the worst order);
* ``rollout``: OpenRLHF's default rollout, 1,024 prompts x 8, members in shuffled order.

The baseline is the same samples scored by one ``Stack.score`` call on the whole batch (the
assembler's floor: the same scoring and discretizing, no waiting and no per-sample calls). It
prints the median of ``--repeats`` runs and the ratio to the baseline, and checks that every
reward equals the baseline's.

    python benchmarks/assembler_bench.py              # 3 repeats
    python benchmarks/assembler_bench.py --repeats 5
    python benchmarks/assembler_bench.py --smoke      # 64 groups per shape: seconds
"""

from __future__ import annotations

import asyncio
import random
import statistics
import time

from _bench import parser

from rewardplug import Sample, load_stack
from rewardplug.groups import GroupAssembler


def noisy_length(completions, **_):
    """Three draws around the length: responses within 2 characters are not told apart."""
    return [[len(c) - 1.0, float(len(c)), len(c) + 1.0] for c in completions]


STACK = {
    "sources": [
        {"name": "length", "use": "python", "with": {"function": f"{__name__}:noisy_length"}}
    ],
}


def build(shape: str, seed: int = 0, scale: int = 1) -> tuple[list[Sample], int]:
    """The samples of ``shape`` in arrival order, and the group size; ``scale`` divides the
    number of groups (``--smoke``)."""
    rng = random.Random(seed)
    if shape == "open":
        groups, size = 8192 // scale, 2
    else:
        groups, size = 1024 // scale, 8
    by_group = [
        [
            Sample(id=f"{g}.{i}", group=f"g{g}", response="x" * rng.randint(1, 60))
            for i in range(size)
        ]
        for g in range(groups)
    ]
    if shape == "open":  # every first member before any second one
        return [grp[i] for i in range(size) for grp in by_group], size
    arrivals = [s for grp in by_group for s in grp]
    rng.shuffle(arrivals)
    return arrivals, size


async def assemble(stack, samples: list[Sample], size: int) -> tuple[float, list]:
    assembler = GroupAssembler(stack, size, timeout_s=600)
    start = time.perf_counter()
    rewards = await asyncio.gather(*(assembler.submit(s) for s in samples))
    took = time.perf_counter() - start
    assert assembler.stats.groups_partial == 0 and assembler.held == 0
    return took, rewards


def main() -> None:
    args = parser(__doc__).parse_args()
    stack = load_stack(STACK)
    for shape in ("open", "rollout"):
        samples, size = build(shape, scale=128 if args.smoke else 1)
        base_times, asm_times = [], []
        for _ in range(args.repeats):
            start = time.perf_counter()
            want = {r.id: r.reward for r in stack.score(samples)}
            base_times.append(time.perf_counter() - start)
            took, rewards = asyncio.run(assemble(stack, samples, size))
            asm_times.append(took)
            assert {r.id: r.reward for r in rewards} == want, "assembled rewards differ"
        base, asm = statistics.median(base_times), statistics.median(asm_times)
        n = len(samples)
        print(
            f"{shape:8s} {n} samples, groups of {size}: assembler {n / asm:,.0f} samples/s "
            f"({asm:.2f} s), one Stack.score call {n / base:,.0f} samples/s ({base:.2f} s); "
            f"assembler / batch time {asm / base:.2f}x (median of {args.repeats})"
        )


if __name__ == "__main__":
    main()
