"""Detection and false-positive rates of the ``code_hack`` check on the demo's hacks and real code.

* **Demo**: the bundled ``examples/data/demo.jsonl`` batch: its reward hacks (``candidate``
  starting with ``hack``) should be flagged; its other candidates with code should not.
* **CodeT**: the CodeGen-16B completions of HumanEval released with CodeT
  (``../shared/data/humaneval``), analysed as prompt + completion cut at the data's stop strings.
  Every completion is scanned; *correct* means passing every HumanEval+ base input in the
  ``test_cases`` sandbox, decided for the first ``--gold-samples`` completions per problem and
  for every flagged completion. A flagged correct completion is a false positive.

    python -m rewardplug_rubric.hack_eval --gold-samples 10
    python -m rewardplug_rubric.hack_eval --smoke      # 3 problems, 2 completions each: seconds

Prints Markdown tables (the figures in ``docs/sources/rubric.md``).
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path
from typing import Any

from rewardplug import Sample
from rewardplug_rubric.code_hack import CodeHack

ROOT = Path(__file__).resolve().parents[2]
SMOKE = "a size that runs in seconds (CI runs it so); its figures mean nothing"
DEMO = ROOT / "examples" / "data" / "demo.jsonl"
DATA = ROOT.parent / "shared" / "data" / "humaneval"


def demo_rates(path: Path = DEMO) -> dict[str, Any]:
    """Flags on the demo batch: hacks caught, clean candidates flagged, responses unchecked."""
    check = CodeHack(kind="code_hack")
    rows = [json.loads(line) for line in path.open()]
    out: dict[str, Any] = {"hacks": 0, "caught": 0, "clean": 0, "false_flags": 0, "unchecked": []}
    out["findings"] = {}
    for row in rows:
        sample = Sample(prompt=row["prompt"], response=row["response"], tests=row.get("tests"))
        flagged = check.check(sample)
        if flagged is None:
            out["unchecked"].append(row["id"])
            continue
        if str(row.get("candidate", "")).startswith("hack"):
            out["hacks"] += 1
            out["caught"] += int(flagged)
        else:
            out["clean"] += 1
            out["false_flags"] += int(flagged)
        if flagged:
            out["findings"][row["id"]] = check.explain(sample)
    return out


def codet_rates(
    data: Path = DATA,
    gold_samples: int = 10,
    timeout: float = 3.0,
    problems_limit: int | None = None,
    per_problem: int = 100,
) -> dict[str, Any]:
    """Flags on every CodeT completion (of the first ``problems_limit`` problems, the first
    ``per_problem`` completions of each), and how many flagged / unflagged ones are correct."""
    from rewardplug_code import humaneval as H
    from rewardplug_code.source import TestCasesSource

    check = CodeHack(kind="code_hack", prepend_prompt=True, stop=H.CODET_STOP)
    problems = {p["task_id"]: p for p in H.load_plus(data)}
    codet = H.codet_samples(data, per_problem=per_problem)
    if problems_limit is not None:
        codet = dict(list(codet.items())[:problems_limit])
        problems = {t: problems[t] for t in codet}
    scanned = unchecked = 0
    flagged: dict[str, list[str]] = {}
    families: Counter[str] = Counter()
    for task_id, entry in codet.items():
        for j, completion in enumerate(entry["samples"]):
            scanned += 1
            found = check.findings(Sample(prompt=entry["prompt"], response=completion))
            if found is None:
                unchecked += 1
            elif found:
                flagged[f"{task_id}#{j}"] = [str(f) for f in found]
                families.update({f.family for f in found})
    wanted = {f"{t}#{j}" for t in codet for j in range(gold_samples)} | set(flagged)
    expected = H.expected_outputs(list(problems.values()), "base_input")
    batch = []
    for task_id, entry in codet.items():
        p = problems[task_id]
        outs = expected[task_id]
        keep = [i for i, o in enumerate(outs) if "value" in o]
        inputs = [p["base_input"][i] for i in keep]
        values = [outs[i]["value"] for i in keep]
        for j, completion in enumerate(entry["samples"]):
            sid = f"{task_id}#{j}"
            if sid in wanted:
                batch.append(H.to_sample(p, entry["prompt"], completion, inputs, values, sid))
    src = TestCasesSource(
        prepend_prompt=True, stop=H.CODET_STOP, timeout_s=timeout, total_timeout_s=4 * timeout
    )
    try:
        scores = src.score(batch)
    finally:
        src.close()
    correct = {s.id for s, sc in zip(batch, scores, strict=True) if sc.ok and sc.value == 1.0}
    gold_ids = {f"{t}#{j}" for t in codet for j in range(gold_samples)}
    gold_correct = correct & gold_ids
    return {
        "scanned": scanned,
        "unchecked": unchecked,
        "flagged": len(flagged),
        "families": dict(families),
        "flagged_correct": sorted(set(flagged) & correct),
        "gold_set": len(gold_ids),
        "gold_correct": len(gold_correct),
        "gold_correct_flagged": len(gold_correct & set(flagged)),
        "findings": flagged,
    }


def report(demo: dict[str, Any], codet: dict[str, Any] | None) -> str:
    """The Markdown tables."""

    def rate(k: int, n: int) -> str:
        return f"{k} / {n} ({k / n:.1%})" if n else "n/a"

    lines = [
        "| data | hacks caught | clean code flagged | unchecked (no code) |",
        "|---|---|---|---|",
        f"| demo batch | {rate(demo['caught'], demo['hacks'])} | "
        f"{rate(demo['false_flags'], demo['clean'])} | {len(demo['unchecked'])} |",
    ]
    if codet is not None:
        lines += [
            "",
            f"CodeT completions scanned: {codet['scanned']}; not checkable (no parse): "
            f"{codet['unchecked']}; flagged: {codet['flagged']} {codet['families']}",
            "",
            "| CodeT | value |",
            "|---|---|",
            f"| correct completions flagged (first {codet['gold_set']} checked) | "
            f"{rate(codet['gold_correct_flagged'], codet['gold_correct'])} |",
            f"| flagged completions that are correct (all {codet['scanned']}) | "
            f"{rate(len(codet['flagged_correct']), codet['flagged'])} |",
        ]
        for sid in codet["flagged_correct"]:
            lines.append(f"- correct but flagged: {sid}: {'; '.join(codet['findings'][sid])}")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--gold-samples", type=int, default=10, help="completions per problem run")
    ap.add_argument("--timeout", type=float, default=3.0, help="seconds per case")
    ap.add_argument("--demo-only", action="store_true")
    ap.add_argument("--smoke", action="store_true", help=SMOKE)
    args = ap.parse_args()
    limits = {"problems_limit": 3, "per_problem": 2} if args.smoke else {}
    gold = 1 if args.smoke else args.gold_samples
    codet = None if args.demo_only else codet_rates(args.data, gold, args.timeout, **limits)
    print(report(demo_rates(), codet))


if __name__ == "__main__":
    main()
