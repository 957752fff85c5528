"""How optimistic are ``rewardplug tune``'s in-sample numbers? In-sample vs held-out (issue 28).

GSM8K model solutions (``../shared/data/gsm8k/example_model_solutions.jsonl``, ``--problems``
drawn at random, seed 0; a problem's four solutions are a group, gold = ``is_correct``), scored
once by ``embedding_similarity`` (MiniLM, MC dropout 0.1, K = 8: the stack docs/eval-neural.md
measures). Then, on those same scores, per objective: ``tune --holdout 0`` (chosen and measured
on every group) and ``tune --holdout 0.5`` with a few split seeds (chosen on half the groups,
measured on the other half). One line per run: the chosen setting, its numbers where it was
chosen, and held out; the last line is the JSON of every run.

    python benchmarks/tune_holdout.py --problems 100 --splits 3
    python benchmarks/tune_holdout.py --smoke      # 6 problems, one split: seconds
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "gsm8k"
STACK = {
    "sources": [
        {
            "name": "similarity",
            "use": "embedding_similarity",
            "with": {"mc_samples": 8, "dropout_rate": 0.1, "max_length": 256},
        }
    ],
    "discretize": {"enabled": True, "confidence": 0.9, "assign": "mean"},
}
METRICS = (("DA", "discriminative_ability"), ("SP", "specificity"), ("acc", "accuracy"))


def _fmt(row: dict[str, Any] | None) -> str:
    if row is None:
        return "-"
    return " ".join(f"{short} {row[key]:.3f}" for short, key in METRICS if row[key] is not None)


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--problems", type=int, default=100)
    parser.add_argument("--splits", type=int, default=3, help="split seeds 0 .. N-1")
    parser.add_argument("--bootstrap", type=int, default=200)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="6 problems, one split, 20 resamples: runs in seconds (CI runs it so); its figures "
        "mean nothing",
    )
    args = parser.parse_args(argv)
    if args.smoke:
        args.problems, args.splits, args.bootstrap = 6, 1, 20
    if not (args.data / "example_model_solutions.jsonl").is_file():
        raise SystemExit(f"GSM8K solutions not found under {args.data}: see ../shared/data")
    from rewardplug_neural.gsm8k_eval import load_samples

    import rewardplug
    from rewardplug.evaluation import score_all
    from rewardplug.tuning import OBJECTIVES, tune

    samples = load_samples(args.data, args.problems, 0)
    stack = rewardplug.load_stack(STACK)
    t0 = time.perf_counter()
    with stack:
        scores = score_all(stack, samples, transform=False)
        print(f"scored {len(samples)} solutions in {time.perf_counter() - t0:.0f} s", flush=True)
        runs = []
        for objective in OBJECTIVES:
            for holdout, seed in [(0.0, 0), *((0.5, s) for s in range(args.splits))]:
                report = tune(stack, samples, "gold", objective=objective, n_boot=args.bootstrap,
                              holdout=holdout, seed=seed, scores=scores)  # fmt: skip
                c, held = report["chosen"], report["held_out"]
                setting = f"{c['rule']} m={c['margin']:g} c={c['confidence']:g}"
                raw = report["raw"] if held is None else held["raw"]
                print(
                    f"{objective:17} holdout {holdout:g} seed {seed}: {setting:28} "
                    f"where chosen: {_fmt(c)} | held-out: {_fmt(held and held['chosen'])} "
                    f"(raw {_fmt(raw)}; wide CIs: {held and held['wide_ci']})"
                )
                runs.append(
                    {
                        "objective": objective,
                        "holdout": holdout,
                        "seed": seed,
                        "split": report["split"],
                        "chosen": {k: c[k] for k in ("rule", "margin", "confidence")},
                        "where_chosen": {k: c[k] for _, k in METRICS},
                        "raw_where_chosen": report["raw"],
                        "held_out": held,
                    }
                )
    print(json.dumps(runs))
    return runs


if __name__ == "__main__":
    main()
