"""Quality evaluation of the ``math_solution`` rubric on GSM8K model solutions.

``python -m rewardplug_rubric.evaluate ../shared/data/gsm8k/example_model_solutions.jsonl``
(``--smoke``: 4 problems, 20 bootstrap resamples -- seconds)

Each GSM8K problem in that file has four GPT-3 solutions marked ``is_correct``; the four form a
group (gold = ``is_correct``, so equally correct solutions are natural ties). Every rubric
variant is scored through a real stack (``rewardplug.load_stack``) and reported with
``rewardplug.metrics.evaluate``: discriminative ability, specificity and accuracy over the pairs
within groups, for the raw combined score and for the discretized reward, with bootstrap CIs over
problems. Prints a markdown table (the figures of ``docs/eval-rubric.md``).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from rewardplug import Sample

MODELS = ("6b_finetuning", "6b_verification", "175b_finetuning", "175b_verification")

#: rubric variants compared (name -> rubric spec for the ``rubric`` source)
VARIANTS: dict[str, Any] = {
    "math_solution (shipped, essential_gate)": "math_solution",
    "final answer only": {
        "name": "final_answer_only",
        "criteria": [
            {
                "id": "final_answer",
                "category": "essential",
                "check": {
                    "kind": "python",
                    "function": "rewardplug_rubric.library:final_answer_matches",
                },
            }
        ],
    },
    "math_solution criteria, weighted_mean (no gate)": "weighted_mean",
    "reasoning + stated answer only (no answer check)": "no_answer",
}


def _variant(spec: Any) -> Any:
    from rewardplug_rubric.model import load_rubric

    if spec == "weighted_mean":
        data = load_rubric("math_solution").model_dump(mode="json", exclude_defaults=False)
        return {**data, "aggregate": "weighted_mean", "name": "math_weighted_mean"}
    if spec == "no_answer":
        data = load_rubric("math_solution").model_dump(mode="json")
        kept = [c for c in data["criteria"] if c["id"] != "final_answer"]
        return {**data, "criteria": kept, "aggregate": "weighted_mean", "name": "math_no_answer"}
    return spec


def load_gsm8k(path: str | Path, limit: int | None = None) -> tuple[list[Sample], list[float]]:
    """Samples (one per model solution, grouped by problem) and their gold ``is_correct``."""
    samples, gold = [], []
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(f):
            if limit is not None and i >= limit:
                break
            row = json.loads(line)
            for model in MODELS:
                sol = row[model]
                samples.append(
                    Sample(
                        id=f"{i}-{model}",
                        group=str(i),
                        prompt=row["question"],
                        response=sol["solution"],
                        reference=row["ground_truth"],
                    )
                )
                gold.append(1.0 if sol["is_correct"] else 0.0)
    return samples, gold


def run(path: str | Path, limit: int | None = None, n_boot: int = 1000) -> list[dict[str, Any]]:
    """One result row per rubric variant: metrics raw and discretized, abstentions, timing."""
    import rewardplug
    from rewardplug import evaluate

    samples, gold = load_gsm8k(path, limit)
    groups = [s.group for s in samples]
    rows = []
    for label, spec in VARIANTS.items():
        stack = rewardplug.load_stack(
            {
                "sources": [{"name": "math", "use": "rubric", "with": {"rubric": _variant(spec)}}],
                "discretize": {"enabled": True, "confidence": 0.9, "assign": "mean"},
            }
        )
        start = time.perf_counter()
        rewards = stack.score(samples)
        seconds = time.perf_counter() - start
        raw = [r.raw for r in rewards]
        disc = [r.reward for r in rewards]
        rows.append(
            {
                "variant": label,
                "raw": evaluate(raw, gold, groups, n_boot=n_boot),
                "discretized": evaluate(disc, gold, groups, n_boot=n_boot),
                "abstained": sum(r.status != "ok" for r in rewards),
                "distinct_raw": len({round(x, 9) for x in raw if x is not None}),
                "seconds": seconds,
                "samples": len(samples),
            }
        )
    return rows


def _fmt(result: dict[str, Any], key: str) -> str:
    value = result[key]
    ci = (result.get("ci") or {}).get(key)
    if value is None:
        return "n/a"
    return f"{value:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else f"{value:.3f}"


def markdown(rows: list[dict[str, Any]]) -> str:
    """The results as a markdown table."""
    head = "| variant | scores | DA | SP | accuracy | abstained | distinct raw values |"
    lines = [head, "|---|---|---|---|---|---|---|"]
    for row in rows:
        for kind in ("raw", "discretized"):
            r = row[kind]
            lines.append(
                f"| {row['variant']} | {kind} | {_fmt(r, 'discriminative_ability')} | "
                f"{_fmt(r, 'specificity')} | {_fmt(r, 'accuracy')} | {row['abstained']} | "
                f"{row['distinct_raw']} |"
            )
    first = rows[0]["raw"]
    lines.append("")
    lines.append(
        f"{rows[0]['samples']} solutions, {first['groups']} problems; pairs with different gold: "
        f"{first['pairs_gold_differs']}, with equal gold: {first['pairs_gold_equal']}. "
        + "; ".join(f"{r['variant']}: {r['samples'] / r['seconds']:.0f} samples/s" for r in rows)
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", help="example_model_solutions.jsonl")
    parser.add_argument("--limit", type=int, default=None, help="first N problems only")
    parser.add_argument("--boot", type=int, default=1000, help="bootstrap resamples")
    parser.add_argument("--json", action="store_true", help="print JSON instead of markdown")
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="4 problems, 20 resamples: runs in seconds (CI runs it so); its figures mean nothing",
    )
    args = parser.parse_args(argv)
    if args.smoke:
        args.limit, args.boot = 4, 20
    rows = run(args.data, args.limit, args.boot)
    print(json.dumps(rows, indent=1) if args.json else markdown(rows))


if __name__ == "__main__":
    main()
