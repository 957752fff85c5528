"""DA / SP of the shaping transforms, an ensemble and process rewards on real GSM8K solutions.

Data: ``../shared/data/gsm8k/example_model_solutions.jsonl`` -- each problem's four GPT-3
solutions form a group, gold = ``is_correct``, reference = the worked ``ground_truth``. A random
subset of ``--problems`` problems (seed 0). The base source is ``embedding_similarity``
(all-MiniLM-L6-v2, bundled) with K MC-dropout draws at rate 0.1. Everything is scored once:

* transforms: the base scores and the references' scores run through each ``transform:`` chain
  (:class:`rewardplug.transforms.TransformChain`, what a stack runs);
* ensemble: a second member reads the [CLS] token instead of mean pooling (seed 1); the two are
  pooled by the ``ensemble`` source (``combine_members``), or averaged (``draws: mean``);
* steps: every solution line scored alone against the reference, aggregated draw-wise by the
  ``steps`` source (``plan`` / ``finish``) with ``mean``, ``min`` and ``last``.

Each row: raw (point estimates) and discretized (the shared discretizer, exact and Gaussian,
confidence 0.9) DA / SP / accuracy, with 95% bootstrap intervals over problems for the exact one.

    python benchmarks/shaping_eval.py [--problems 30] [--draws 8]
    python benchmarks/shaping_eval.py --smoke      # 2 problems, K = 2: seconds
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
from _bench import parser, size

from rewardplug.config import SourceSpec
from rewardplug.discretizer import discretize
from rewardplug.metrics import evaluate
from rewardplug.transforms import (
    TransformChain,
    normalize_transforms,
    reference_key,
    reference_sample,
)
from rewardplug.types import Sample, Score

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "gsm8k"
MODELS = ("6b_finetuning", "6b_verification", "175b_finetuning", "175b_verification")

TRANSFORMS: list[tuple[str, list]] = [
    ("none", []),
    ("scale a=10", [{"scale": {"a": 10}}]),
    ("par tau=0.05", [{"par": {"tau": 0.05}}]),
    ("par tau=0.2", [{"par": {"tau": 0.2}}]),
    ("log_sigmoid tau=0.1", [{"log_sigmoid": {"tau": 0.1}}]),
    ("clip max=0.9", [{"clip": {"max": 0.9}}]),
    ("clip min=0.8", [{"clip": {"min": 0.8}}]),
    (
        "overlong 100/50 words, x0.2",
        [{"overlong": {"max_tokens": 100, "cache_tokens": 50, "penalty": 0.2}}],
    ),
]


def load(problems: int, seed: int = 0) -> list[Sample]:
    lines = (DATA / "example_model_solutions.jsonl").read_text().splitlines()
    pick = np.random.default_rng(seed).choice(len(lines), size=problems, replace=False)
    out = []
    for p in sorted(pick):
        item = json.loads(lines[p])
        for model in MODELS:
            out.append(
                Sample(
                    id=f"{p}/{model}",
                    group=str(p),
                    prompt=item["question"],
                    response=item[model]["solution"],
                    reference=item["ground_truth"],
                    metadata={"is_correct": item[model]["is_correct"]},
                )
            )
    return out


def row(label: str, scores: list[Score], gold: np.ndarray, groups: np.ndarray, conf: float) -> dict:
    ok = np.array([s.ok for s in scores])
    values = np.array([s.value if s.ok else np.nan for s in scores])
    k = max(len(s.draws) for s in scores if s.ok)
    draws = np.full((len(scores), k), np.nan)
    for i, s in enumerate(scores):
        if s.ok:
            draws[i, : len(s.draws)] = s.draws
    out = {"label": label, "abstained": int((~ok).sum())}
    out["raw"] = evaluate(values, gold, groups, n_boot=0)
    for method in ("exact", "gaussian"):
        res = discretize(draws, groups, conf, values=values, method=method)
        m = evaluate(res.reward, gold, groups, n_boot=1000 if method == "exact" else 0)
        m["tiers"] = float(np.mean(list(res.n_tiers.values())))
        out[method] = m
    return out


def fmt(r: dict) -> str:
    def ci(m: dict, key: str) -> str:
        c = m.get("ci", {}).get(key)
        return f"{m[key]:.3f}" + (f" [{c[0]:.2f}, {c[1]:.2f}]" if c else "")

    raw, ex, ga = r["raw"], r["exact"], r["gaussian"]
    return (
        f"| {r['label']} | {raw['discriminative_ability']:.3f} | {raw['specificity']:.3f} | "
        f"{ci(ex, 'discriminative_ability')} | {ci(ex, 'specificity')} | {ci(ex, 'accuracy')} | "
        f"{ex['tiers']:.2f} | {ga['discriminative_ability']:.3f} | {ga['specificity']:.3f} | "
        f"{ga['accuracy']:.3f} |"
    )


def main() -> None:
    ap = parser(__doc__, repeats=None)
    ap.add_argument("--problems", type=int, default=None, help="default 30 (--smoke: 2)")
    ap.add_argument("--draws", type=int, default=None, help="default 8 (--smoke: 2)")
    ap.add_argument("--confidence", type=float, default=0.9)
    ap.add_argument("--json", help="also write the rows here")
    args = ap.parse_args()
    args.problems, args.draws = args.problems or size(args, 30, 2), args.draws or size(args, 8, 2)

    from rewardplug_compose.ensemble import EnsembleSource
    from rewardplug_compose.steps import StepsSource
    from rewardplug_neural.embedding_source import EmbeddingSimilaritySource

    samples = load(args.problems)
    gold = np.array([float(s.metadata["is_correct"]) for s in samples])
    groups = np.array([s.group for s in samples], dtype=object)
    opts = {"mc_samples": args.draws, "dropout_rate": 0.1, "device": "cpu"}
    rows, timing = [], {}

    start = time.perf_counter()
    base = EmbeddingSimilaritySource(**opts)
    scores = base.score(samples)
    refs = {}
    for s in samples:
        refs.setdefault(s.group, reference_sample(s))
    ref_scores = base.score(list(refs.values()))
    timing["base"] = time.perf_counter() - start
    for label, specs in TRANSFORMS:
        spec = SourceSpec(
            name="sim", use="embedding_similarity", transform=normalize_transforms(specs)
        )
        chain = TransformChain(spec.transform)
        chain.remember([reference_key(r) for r in refs.values()], ref_scores)
        out = chain.apply(samples, scores)
        rows.append(row(f"transform: {label}", out, gold, groups, args.confidence))
        print(fmt(rows[-1]), flush=True)

    start = time.perf_counter()
    member = {"use": "embedding_similarity", "with": opts}
    ens = EnsembleSource(
        members=[
            {**member, "name": "mean_pooled"},
            {
                "name": "cls",
                "use": "embedding_similarity",
                "with": {**opts, "pooling": "cls", "seed": 1},
            },
        ]
    )
    cls_scores = ens.members[1].score(samples)
    timing["cls member"] = time.perf_counter() - start
    rows.append(row("ensemble member: cls alone", cls_scores, gold, groups, args.confidence))
    print(fmt(rows[-1]), flush=True)
    for mode in ("pool", "mean"):
        ens.config = ens.config.model_copy(update={"draws": mode})
        pooled = ens.combine_members(samples, [scores, cls_scores])
        rows.append(row(f"ensemble: draws {mode}", pooled, gold, groups, args.confidence))
        print(fmt(rows[-1]), flush=True)

    start = time.perf_counter()
    steps = StepsSource(source=member, split="line", prefix=False)
    plan = steps.plan(samples)
    inner = steps.inner.score([s for p in plan if isinstance(p, list) for _, s in p])
    timing["steps"] = time.perf_counter() - start
    timing["step texts"] = len(inner)
    for aggregate in ("mean", "min", "last"):
        steps.config = steps.config.model_copy(update={"aggregate": aggregate})
        out = steps.finish(samples, plan, inner)
        rows.append(row(f"steps: line, alone, {aggregate}", out, gold, groups, args.confidence))
        print(fmt(rows[-1]), flush=True)

    first = rows[0]["raw"]
    print(
        f"\n{args.problems} problems, {len(samples)} solutions, pairs: "
        f"{first['pairs_gold_differs']} gold differs, {first['pairs_gold_equal']} gold equal; "
        f"K = {args.draws}; seconds: " + ", ".join(f"{k} {v:.0f}" for k, v in timing.items())
    )
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "timing": timing}, indent=1))


if __name__ == "__main__":
    main()
