"""Benchmarks of the ``llm_judge`` source: speed (default) and judge quality.

Speed (``python benchmarks/judge_bench.py speed``): 200 responses, K = 5, against a local
chat-completions server on 127.0.0.1 that adds 50 ms to every request. Compares, in the same run,
a naive loop (K sequential single-draw calls per response, the usual judge script) with this
source in sample mode (``n=K`` in one request, requests concurrent), in logprobs mode (one
request per response), and a fully cached second run. Prints wall times, request counts, ratios.

Quality (``python benchmarks/judge_bench.py quality``): the local SmolLM2-135M judge on
``../shared/data`` gsm8k (4 solutions per problem = a group, gold ``is_correct``) and arena
(gold ``gpt4_grade``): DA / SP / accuracy of the raw judge value and of the discretized reward,
sample vs logprobs mode. Used for ``docs/eval-judge.md``.

``--smoke`` (after the subcommand) runs either at a size that takes seconds.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from _bench import DATA, parser, require, size

KEYS = ("discriminative_ability", "specificity", "accuracy")
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def speed(n: int, k: int, latency: float, repeats: int) -> None:
    import openai
    from chat_server import ChatServer, Reply
    from rewardplug_judge.source import JudgeSource

    from rewardplug.types import Sample

    def responder(body, server):
        lp = [{"Rating": -0.01}, {":": -0.01}, {" 7": -0.36, " 6": -1.2}]
        return Reply(
            texts=[f"Rating: {5 + i % 3}" for i in range(int(body.get("n") or 1))], logprobs=lp
        )

    samples = [Sample(prompt=f"question {i}", response=f"answer {i}") for i in range(n)]
    rows: dict[str, list[tuple[float, int]]] = {}
    with ChatServer(responder, latency_s=latency) as server:

        def naive() -> None:
            client = openai.OpenAI(base_url=server.base_url, api_key="x", max_retries=0)
            for s in samples:
                for d in range(k):
                    msg = [{"role": "user", "content": f"Grade: {s.prompt}\n{s.response}"}]
                    client.chat.completions.create(model="judge", messages=msg, seed=d)

        def run(label: str, fn) -> None:
            before = len(server.requests)
            start = time.perf_counter()
            fn()
            rows.setdefault(label, []).append(
                (time.perf_counter() - start, len(server.requests) - before)
            )

        for _ in range(repeats):
            with tempfile.TemporaryDirectory() as cache:
                opts = {
                    "backend": "openai",
                    "model": "judge",
                    "base_url": server.base_url,
                    "samples": k,
                    "cache_dir": cache,
                    "concurrency": 64,
                }
                run("naive loop (K sequential calls/response)", naive)
                run("llm_judge mode=sample (n=K)", lambda o=opts: JudgeSource(o).score(samples))
                run("llm_judge cached rerun", lambda o=opts: JudgeSource(o).score(samples))
                lp = {**opts, "mode": "logprobs", "cache": False}
                run("llm_judge mode=logprobs", lambda o=lp: JudgeSource(o).score(samples))
    base = statistics.median(t for t, _ in rows["naive loop (K sequential calls/response)"])
    print(
        f"{n} responses, K={k}, server latency {latency * 1000:.0f} ms/request, "
        f"median of {repeats} run(s)"
    )
    print(f"{'variant':44s} {'wall s':>8s} {'requests':>9s} {'speed-up':>9s}")
    for label, values in rows.items():
        wall = statistics.median(t for t, _ in values)
        reqs = int(statistics.median(r for _, r in values))
        print(f"{label:44s} {wall:8.3f} {reqs:9d} {base / wall:8.1f}x")


def _groups(path: Path, groups: int) -> Iterator[tuple[int, dict]]:
    """``(index, record)`` for the first ``groups`` lines of a JSONL file."""
    with path.open() as f:
        for g, line in enumerate(itertools.islice(f, groups)):
            yield g, json.loads(line)


def _gsm8k(path: Path, groups: int) -> list[dict]:
    rows = []
    for g, item in _groups(path, groups):
        answer = item["ground_truth"].strip().splitlines()[-1]
        for key, value in item.items():
            if isinstance(value, dict) and "is_correct" in value:
                rows.append(
                    {
                        "id": f"{g}-{key}",
                        "group": f"gsm{g}",
                        "prompt": item["question"],
                        "response": value["solution"],
                        "reference": answer,
                        "gold": float(value["is_correct"]),
                    }
                )
    return rows


def _arena(path: Path, groups: int, per_group: int) -> list[dict]:
    rows = []
    for g, item in _groups(path, groups):
        for j, r in enumerate(item["responses"][:per_group]):
            if r.get("gpt4_grade") is None:
                continue
            rows.append(
                {
                    "id": f"{g}-{j}",
                    "group": f"arena{g}",
                    "prompt": item["prompt"],
                    "response": r["response"],
                    "gold": float(r["gpt4_grade"]),
                }
            )
    return rows


def quality(data: Path, gsm_groups: int, arena_groups: int, per_group: int, k: int) -> None:
    import numpy as np
    import torch
    from rewardplug_judge.source import JudgeSource

    from rewardplug.discretizer import discretize
    from rewardplug.metrics import evaluate, format_metric
    from rewardplug.types import Sample

    torch.set_num_threads(1)  # on a shared, busy CPU one thread is several times faster
    sets = {
        "gsm8k": _gsm8k(
            require(data / "gsm8k" / "example_model_solutions.jsonl", "gsm8k"), gsm_groups
        ),
        "arena": _arena(
            require(data / "arena_bench_v1" / "graded_responses.jsonl", "arena_bench_v1"),
            arena_groups,
            per_group,
        ),
    }
    print("| data | mode | groups | samples | abstain | reward | DA | SP | accuracy | s/sample |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, rows in sets.items():
        samples = [Sample(**r) for r in rows]
        gold = [r["gold"] for r in rows]
        groups = [r["group"] for r in rows]
        for mode in ("logprobs", "sample"):
            src = JudgeSource(
                prompt="pointwise_direct",
                mode=mode,
                samples=k,
                max_tokens=3,
                temperature=1.0,
                max_response_chars=1500,
                cache=True,
            )
            start = time.perf_counter()
            scores = src.score(samples)
            per = (time.perf_counter() - start) / len(samples)
            raw = [s.value if s.ok else None for s in scores]
            draws = [s.draws if s.ok else None for s in scores]
            disc = discretize(draws, groups, confidence=0.9, assign="mean").reward
            abstain = sum(not s.ok for s in scores)
            fallbacks = sum(bool(s.detail.get("logprobs_fallback")) for s in scores)
            reasons = sorted({s.reason for s in scores if not s.ok})
            print(
                f"<!-- {name} {mode}: {fallbacks} logprobs fallbacks; abstain reasons: "
                f"{reasons} -->",
                file=sys.stderr,
                flush=True,
            )
            for label, rewards in (
                ("raw", raw),
                ("discretized", [None if np.isnan(x) else float(x) for x in disc]),
            ):
                m = evaluate(rewards, gold, groups, n_boot=500)
                da, sp, acc = (format_metric(m, key) for key in KEYS)
                print(
                    f"| {name} | {mode} | {m['groups']} | {len(samples)} | {abstain} | {label} | "
                    f"{da} | {sp} | {acc} | "
                    f"{per:.2f} |",
                    flush=True,
                )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd")
    sp = sub.add_parser("speed", parents=[parser(None, add_help=False)])
    sp.add_argument("--n", type=int, default=None, help="responses (default 200; --smoke: 8)")
    sp.add_argument("--k", type=int, default=5)
    sp.add_argument("--latency", type=float, default=None, help="s (default 0.05; --smoke: 0.005)")
    q = sub.add_parser("quality", parents=[parser(None, repeats=None, add_help=False)])
    q.add_argument("--data", type=Path, default=DATA)
    q.add_argument("--gsm-groups", type=int, default=None, help="default 25 (--smoke: 1)")
    q.add_argument("--arena-groups", type=int, default=None, help="default 12 (--smoke: 1)")
    q.add_argument("--per-group", type=int, default=4)
    q.add_argument("--k", type=int, default=5)
    args = ap.parse_args()
    if args.cmd is None:  # speed, at its defaults
        args = ap.parse_args(["speed"])
    if args.cmd == "quality":
        quality(
            args.data,
            args.gsm_groups or size(args, 25, 1),
            args.arena_groups or size(args, 12, 1),
            args.per_group,
            args.k,
        )
    else:
        latency = size(args, 0.05, 0.005) if args.latency is None else args.latency
        speed(args.n or size(args, 200, 8), args.k, latency, args.repeats)


if __name__ == "__main__":
    main()
