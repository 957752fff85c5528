"""Quality of ``test_cases`` rewards on real code: DA / SP / accuracy, raw vs discretized.

Data: HumanEval problems, CodeT (CodeGen-16B) completions. Reward: this source's pass rate on
the HumanEval+ *base* inputs (with its Beta-posterior draws). Gold: 1 when the completion passes
every HumanEval+ input (base and plus; ``--plus-limit`` caps the plus inputs per problem to keep
the run affordable), else 0. Completions that fail a base input are gold 0 without running the
plus inputs.

    python -m rewardplug_code.evaluate --samples 10 --plus-limit 200
    python -m rewardplug_code.evaluate --agreement --samples 5
    python -m rewardplug_code.evaluate --smoke        # 3 problems, 2 completions: seconds

Prints Markdown tables (the figures in ``docs/eval-code.md``).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from rewardplug import Sample, discretize, evaluate
from rewardplug.plugin_api import cache_dir
from rewardplug_code import humaneval as H
from rewardplug_code.source import TestCasesSource

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "humaneval"


def run(
    data: Path, samples: int, plus_limit: int | None, timeout: float, limit: int | None = None
) -> dict[str, Any]:
    """Score the completions (of the first ``limit`` problems) and compute the metrics; returns
    everything the report needs."""
    problems = H.load_plus(data)[:limit]
    codet = H.codet_samples(data, per_problem=samples)
    cache = cache_dir("code-eval")
    base_exp = H.expected_outputs(problems, "base_input", cache=cache)
    plus_exp = H.expected_outputs(problems, "plus_input", limit=plus_limit, cache=cache)
    src = TestCasesSource(
        prepend_prompt=True, stop=H.CODET_STOP, timeout_s=timeout, total_timeout_s=4 * timeout
    )
    t0 = time.perf_counter()
    batch = list(H.iter_codet(problems, codet, base_exp, "base_input", samples))
    scores = src.score(batch)
    t_base = time.perf_counter() - t0
    passers = [i for i, s in enumerate(scores) if s.ok and s.value == 1.0]
    plus_batch = []
    by_task = {p["task_id"]: p for p in problems}
    for i in passers:
        sample = batch[i]
        assert isinstance(sample.prompt, str)  # built from a HumanEval prompt (text) above
        p = by_task[sample.group]
        outs = plus_exp[p["task_id"]]
        keep = [k for k, o in enumerate(outs) if "value" in o]
        plus_batch.append(
            H.to_sample(
                p,
                sample.prompt,
                sample.response,
                [p["plus_input"][k] for k in keep],
                [outs[k]["value"] for k in keep],
                sample.id + "+",
            )
        )
    t0 = time.perf_counter()
    plus_scores = src.score(plus_batch)
    t_plus = time.perf_counter() - t0
    src.close()

    gold: list[float | None] = [0.0 if s.ok else None for s in scores]
    for i, ps in zip(passers, plus_scores, strict=True):
        gold[i] = (1.0 if ps.value == 1.0 else 0.0) if ps.ok else None
    groups = [s.group for s in batch]
    raw = [s.value if s.ok else None for s in scores]
    draws = [s.draws if s.ok else None for s in scores]
    rows = {"raw (pass rate)": evaluate(raw, gold, groups)}
    for conf in (0.75, 0.9, 0.95):
        result = discretize(draws, groups, confidence=conf, assign="mean")
        rewards = [None if r is None or r != r else float(r) for r in result.reward.tolist()]
        rows[f"discretized, confidence {conf}"] = evaluate(rewards, gold, groups)
    counts = Counter(
        g for g, r, y in zip(groups, raw, gold, strict=True) if r is not None and y is not None
    )
    return {
        "rows": rows,
        "n": len(batch),
        "problems": len(problems),
        "per_problem": Counter(counts.values()),
        "abstained": sum(not s.ok for s in scores) + sum(not s.ok for s in plus_scores),
        "base_pass_all": len(passers),
        "gold_pass": sum(1 for g in gold if g == 1.0),
        "isolation": next((s.detail.get("isolation") for s in scores if s.ok), None),
        "seconds": {"base": t_base, "plus": t_plus},
    }


def agreement(data: Path, samples: int, timeout: float) -> str:
    """How often this source (``assert`` format) agrees with HumanEval's own ``check``.

    The reference runs prompt + completion + test + ``check(entry_point)`` in a plain subprocess
    (the usual unsandboxed harness); a completion passes when it exits with status 0.
    """
    with gzip.open(data / "HumanEval.jsonl.gz", "rt") as fh:
        original = {row["task_id"]: row for row in map(json.loads, fh)}
    codet = H.codet_samples(data, per_problem=samples)
    batch, programs = [], []
    for task, prob in original.items():
        entry = codet[task]
        tests = {"kind": "assert", "entry_point": prob["entry_point"], "code": prob["test"]}
        for completion in entry["samples"]:
            batch.append(
                Sample(prompt=entry["prompt"], response=completion, group=task, tests=tests)
            )
            programs.append(
                entry["prompt"]
                + H.truncate(completion)
                + "\n\n"
                + prob["test"]
                + f"\n\ncheck({prob['entry_point']})\n"
            )

    def reference(program: str) -> bool:
        try:
            cmd = [sys.executable, "-I", "-c", program]
            return subprocess.run(cmd, capture_output=True, timeout=10).returncode == 0
        except subprocess.TimeoutExpired:
            return False

    with ThreadPoolExecutor(len(os.sched_getaffinity(0))) as pool:
        ref = list(pool.map(reference, programs))
    src = TestCasesSource(
        prepend_prompt=True, stop=H.CODET_STOP, timeout_s=timeout, total_timeout_s=8 * timeout
    )
    scores = src.score(batch)
    src.close()
    ours = [s.ok and s.value == 1.0 for s in scores]
    n = len(ours)
    agree = sum(a == b for a, b in zip(ours, ref, strict=True))
    hardened = [b.group for b, s in zip(batch, scores, strict=True) if "hardened" in s.detail]
    lines = [
        f"{n} completions ({samples} per problem): agreement with HumanEval's check "
        f"{agree}/{n} ({agree / n:.2%}); pass: ours {sum(ours)}, check {sum(ref)}; "
        f"we pass / check fails: {sum(a and not b for a, b in zip(ours, ref, strict=True))}; "
        f"hardened samples {len(hardened)} ({len(set(hardened))} problems); "
        f"abstained {sum(not s.ok for s in scores)}",
    ]
    for b, s, a, r in zip(batch, scores, ours, ref, strict=True):
        if a != r:
            why = (s.detail.get("failures") or [{}])[0].get("reason", s.detail.get("reason"))
            lines.append(
                f"- {b.group}: ours {'pass' if a else 'fail'}, check "
                f"{'pass' if r else 'fail'} ({why})"
            )
    return "\n".join(lines)


def report(out: dict[str, Any]) -> str:
    """The Markdown tables."""
    lines = [
        f"{out['n']} completions of {out['problems']} problems; per problem: "
        + ", ".join(f"{n} samples x {k} problems" for n, k in sorted(out["per_problem"].items())),
        f"pass all base inputs: {out['base_pass_all']}; gold (all HumanEval+ inputs): "
        f"{out['gold_pass']}; abstained: {out['abstained']}; isolation: {out['isolation']}",
        f"scoring time: base {out['seconds']['base']:.0f} s, plus {out['seconds']['plus']:.0f} s",
        "",
        "| reward | DA | SP | accuracy | pairs (gold differs / equal) |",
        "|---|---|---|---|---|",
    ]
    for name, m in out["rows"].items():
        ci = m.get("ci", {})

        def cell(key: str, m: dict[str, Any] = m, ci: dict[str, Any] = ci) -> str:
            if m[key] is None:
                return "n/a"
            lo, hi = ci.get(key) or (None, None)
            return f"{m[key]:.3f}" + (f" [{lo:.3f}, {hi:.3f}]" if lo is not None else "")

        lines.append(
            f"| {name} | {cell('discriminative_ability')} | {cell('specificity')} | "
            f"{cell('accuracy')} | {m['pairs_gold_differs']} / {m['pairs_gold_equal']} |"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--samples", type=int, default=10, help="CodeT completions per problem")
    ap.add_argument("--plus-limit", type=int, default=200, help="HumanEval+ inputs per problem")
    ap.add_argument("--timeout", type=float, default=3.0, help="seconds per case")
    ap.add_argument(
        "--agreement", action="store_true", help="compare with HumanEval's check instead"
    )
    ap.add_argument(
        "--smoke",
        action="store_true",
        help="3 problems, 2 completions, 5 plus inputs: runs in seconds (CI runs it so); its "
        "figures mean nothing",
    )
    args = ap.parse_args()
    if args.smoke:
        print(report(run(args.data, 2, 5, args.timeout, limit=3)))
        return
    if args.agreement:
        print(agreement(args.data, args.samples, args.timeout))
        return
    print(report(run(args.data, args.samples, args.plus_limit or None, args.timeout)))


if __name__ == "__main__":
    main()
