"""Quality of ``embedding_similarity`` on GSM8K model solutions: raw vs discretized, over K.

Data: ``../shared/data/gsm8k/example_model_solutions.jsonl`` (one row per test problem with four
GPT-3 solutions marked ``is_correct``; the problem's reference solution is its ``ground_truth``
field, the same text as ``answer`` in ``test.jsonl``). The four solutions of a problem form a
group; gold = ``is_correct``. Each solution is scored once with ``mc_samples = max(K)``; because
the draws are keyed by draw index, the first K draws are exactly what a run with
``mc_samples = K`` gives, so every K in the sweep comes from one scoring pass per dropout rate.

Run: python -m rewardplug_neural.gsm8k_eval [--problems 100 --rates 0.02 0.1 --mc-layers all]
     python -m rewardplug_neural.gsm8k_eval --smoke    # 4 problems, one rate, K = 2: seconds
Metrics come from :mod:`rewardplug.metrics`, tiers from :func:`rewardplug.discretize`.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

SOLVERS = ("6b_finetuning", "6b_verification", "175b_finetuning", "175b_verification")
DEFAULT_DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "gsm8k"


def load_samples(data: Path, problems: int, seed: int) -> list[Any]:
    """Samples for a random subset of ``problems`` problems (all of them if 0)."""
    from rewardplug import Sample

    rows = [
        json.loads(line) for line in (data / "example_model_solutions.jsonl").open(encoding="utf-8")
    ]
    picked = (
        sorted(random.Random(seed).sample(range(len(rows)), problems))
        if 0 < problems < len(rows)
        else range(len(rows))
    )
    out = []
    for p in picked:
        row = rows[p]
        for solver in SOLVERS:
            out.append(
                Sample(
                    id=f"{p}:{solver}",
                    group=str(p),
                    prompt=row["question"],
                    response=row[solver]["solution"],
                    reference=row["ground_truth"],
                    metadata={"gold": float(row[solver]["is_correct"])},
                )
            )
    return out


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    import numpy as np

    from rewardplug import discretize, evaluate
    from rewardplug_neural.embedding_source import EmbeddingSimilaritySource

    samples = load_samples(Path(args.data), args.problems, args.seed)
    gold = [s.metadata["gold"] for s in samples]
    groups = [s.group for s in samples]
    k_max = max(args.k)
    lines: list[dict[str, Any]] = []
    for rate in args.rates:
        src = EmbeddingSimilaritySource(
            mc_samples=k_max,
            dropout_rate=rate,
            mc_layers=args.mc_layers,
            device="cpu",
            batch_size=32,
        )
        t0 = time.perf_counter()
        scores = src.score(samples)
        elapsed = time.perf_counter() - t0
        values = np.array([s.value if s.ok else np.nan for s in scores])
        draws = np.array([s.draws if s.ok else [np.nan] * k_max for s in scores])
        raw = evaluate(values, gold, groups, n_boot=args.boot)
        lines.append({"rate": rate, "k": None, "kind": "raw", "seconds": elapsed, **raw})
        for k in args.k:
            res = discretize(draws[:, :k], groups, confidence=args.confidence, values=values)
            disc = evaluate(res.reward, gold, groups, n_boot=args.boot)
            tiers = float(np.mean(list(res.n_tiers.values())))
            lines.append({"rate": rate, "k": k, "kind": "discretized", "mean_tiers": tiers, **disc})
    return lines


def _fmt(m: dict[str, Any], name: str) -> str:
    ci = (m.get("ci") or {}).get(name)
    value = m[name]
    if value is None:
        return "n/a"
    return f"{value:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else f"{value:.3f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=str(DEFAULT_DATA))
    ap.add_argument("--problems", type=int, default=100, help="random subset of problems (0 = all)")
    ap.add_argument("--rates", type=float, nargs="+", default=[0.02, 0.1])
    ap.add_argument("--k", type=int, nargs="+", default=[2, 4, 8, 16, 32])
    ap.add_argument("--mc-layers", default="all")
    ap.add_argument("--confidence", type=float, default=0.9)
    ap.add_argument("--boot", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", help="also write the rows as JSON lines here")
    ap.add_argument(
        "--smoke",
        action="store_true",
        help="4 problems, one rate, K = 2, 20 resamples: runs in seconds (CI runs it so); its "
        "figures mean nothing",
    )
    args = ap.parse_args()
    if args.smoke:
        args.problems, args.rates, args.k, args.boot = 4, [0.1], [2], 20
    if args.mc_layers != "all":
        args.mc_layers = int(args.mc_layers)
    lines = run(args)
    first = lines[0]
    print(
        f"gsm8k example_model_solutions: {first['groups']} problems, {first['samples']} solutions, "
        f"{first['pairs_gold_differs']} pairs with different gold, {first['pairs_gold_equal']} equal; "
        f"confidence {args.confidence}, mc_layers {args.mc_layers}, 95% bootstrap CIs over problems"
    )
    print("| dropout | K | rewards | DA | SP | accuracy | mean tiers / group |")
    print("|---|---|---|---|---|---|---|")
    for m in lines:
        k = "-" if m["k"] is None else m["k"]
        tiers = f"{m['mean_tiers']:.2f}" if "mean_tiers" in m else "-"
        print(
            f"| {m['rate']} | {k} | {m['kind']} | {_fmt(m, 'discriminative_ability')} | "
            f"{_fmt(m, 'specificity')} | {_fmt(m, 'accuracy')} | {tiers} |"
        )
    for m in lines:
        if m["kind"] == "raw":
            print(f"scoring time, dropout {m['rate']}: {m['seconds']:.0f} s")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            for m in lines:
                f.write(json.dumps(m) + "\n")


if __name__ == "__main__":
    main()
