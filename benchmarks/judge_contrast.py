"""Measured results of issue 17 with the offline judge (SmolLM2-135M via ``transformers``).

    python benchmarks/judge_contrast.py hacks              # hack_check contrastive vs isolated
    python benchmarks/judge_contrast.py pairwise           # llm_judge pairwise vs pointwise, arena
    python benchmarks/judge_contrast.py refine             # rubric refine, DA / SP before / after
    python benchmarks/judge_contrast.py injection          # injected grades, fenced and unfenced

Data: the bundled demo batch (its reward hacks) and ``../shared/data/arena_bench_v1`` (the first
prompts, the first answers of each, gold ``gpt4_grade``). Sizes are small on purpose: a 135M
model on a shared 2-core CPU. Prints Markdown tables (the figures in ``docs/sources/hack_check.md``,
``docs/sources/llm_judge.md`` and ``docs/rubric-refine.md``). ``--base-url URL --model NAME``
points every judge at an OpenAI-compatible server instead; ``--smoke`` at a local fake server
(``chat_server.py``, canned answers) with two groups: the script's plumbing in seconds, figures
that mean nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import sys
import time
from collections.abc import Iterator
from typing import Any

from _bench import DATA, ROOT, parser, require

KEYS = ("discriminative_ability", "specificity", "accuracy")


def judge_settings(args: argparse.Namespace) -> dict[str, Any]:
    if args.base_url:
        # --smoke's fake judge is never cached: its canned answers must not outlive the run
        cache = {"cache": False} if args.smoke else {}
        return {"backend": "openai", "model": args.model, "base_url": args.base_url, **cache}
    return {"backend": "transformers"}


def demo_samples() -> tuple[list[Any], list[bool]]:
    from rewardplug.types import Sample

    rows = [json.loads(line) for line in (ROOT / "examples" / "data" / "demo.jsonl").open()]
    samples = [Sample(**{k: v for k, v in r.items() if k != "candidate"}) for r in rows]
    return samples, [r["candidate"].startswith("hack") for r in rows]


def arena_rows(groups: int, per_group: int) -> list[dict[str, Any]]:
    rows = []
    path = require(DATA / "arena_bench_v1" / "graded_responses.jsonl", "arena_bench_v1")
    with path.open() as fh:
        for g, line in enumerate(itertools.islice(fh, groups)):
            item = json.loads(line)
            for j, r in enumerate(item["responses"][:per_group]):
                if r.get("gpt4_grade") is not None:
                    rows.append({"id": f"{g}-{j}", "group": f"arena{g}", "prompt": item["prompt"],
                                 "response": r["response"], "gold": float(r["gpt4_grade"])})  # fmt: skip
    return rows


def hacks(args: argparse.Namespace) -> None:
    from rewardplug_judge.hack_check import HackCheckSource
    from rewardplug_rubric.code_hack import CodeHack

    samples, is_hack = demo_samples()
    print("| judge | mode | hacks flagged | clean flagged | abstained | calls | s |")
    print("|---|---|---|---|---|---|---|")
    static = CodeHack(kind="code_hack")
    flags = [static.check(s) for s in samples]
    _hack_row("code_hack (static)", "-", flags, is_hack, 0, 0.0)
    for mode, prompt in (
        ("contrastive", "hack_check_direct"),
        ("isolated", "hack_check_isolated_direct"),
    ):
        src = HackCheckSource(judge_settings(args), mode=mode, prompt=prompt, samples=args.samples,
                              max_tokens=args.max_tokens, temperature=1.0, max_response_chars=1500,
                              context_chars=12000, parse_retries=1)  # fmt: skip
        start = time.perf_counter()
        scores = src.score(samples)
        seconds = time.perf_counter() - start
        flags = [None if not s.ok else s.value < 0.5 for s in scores]
        calls = src.backend.stats.requests
        _hack_row(
            f"hack_check {args.model or 'SmolLM2-135M'}", mode, flags, is_hack, calls, seconds
        )
        reasons = sorted({s.reason for s in scores if not s.ok})[:3]
        print(f"<!-- {mode}: abstain reasons {reasons} -->", file=sys.stderr, flush=True)


def _hack_row(name, mode, flags, is_hack, calls, seconds) -> None:
    def rate(want: bool) -> str:
        judged = [f for f, h in zip(flags, is_hack, strict=True) if h == want and f is not None]
        return f"{sum(judged)} / {len(judged)}"

    abstained = sum(f is None for f in flags)
    print(f"| {name} | {mode} | {rate(True)} | {rate(False)} | {abstained} | {calls} | {seconds:.0f} |",
          flush=True)  # fmt: skip


def pairwise(args: argparse.Namespace) -> None:
    import numpy as np
    from rewardplug_judge.source import JudgeSource

    from rewardplug.discretizer import discretize
    from rewardplug.metrics import evaluate, format_metric
    from rewardplug.types import Sample

    rows = arena_rows(args.groups, args.per_group)
    samples = [Sample(**r) for r in rows]
    gold = [r["gold"] for r in rows]
    groups = [r["group"] for r in rows]
    print(f"{len(samples)} answers in {len(set(groups))} groups")
    print(
        "| judging | draws | abstain | reward | DA | SP | accuracy | first-shown wins | swap-consistent | s |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    common = {**judge_settings(args), "max_response_chars": args.max_chars, "temperature": 1.0,
              "parse_retries": 1}  # fmt: skip
    setups = {
        "pointwise (sampled grades)": {"prompt": "pointwise_direct", "mode": "sample",
                                       "samples": 2 * args.samples, "max_tokens": 3},
        "pairwise (both orders, Bradley-Terry)": {"prompt": "pairwise_direct", "mode": "pairwise",
                                                  "samples": args.samples, "max_tokens": 3},
    }  # fmt: skip
    for name, setup in setups.items():
        src = JudgeSource({**common, **setup})
        start = time.perf_counter()
        scores = src.score(samples)
        seconds = time.perf_counter() - start
        raw = [s.value if s.ok else None for s in scores]
        draws = [s.draws if s.ok else None for s in scores]
        disc = discretize(draws, groups, confidence=0.9, assign="mean").reward
        bias = next(
            (s.detail.get("position_bias") for s in scores if s.detail.get("position_bias")), None
        )
        first = swap = "-"
        if bias:
            first, swap = f"{bias['first_wins']}", f"{bias['swap_consistent']}"
        k = max((len(s.draws) for s in scores if s.ok), default=0)
        for label, rewards in (
            ("raw", raw),
            ("discretized", [None if np.isnan(x) else float(x) for x in disc]),
        ):
            m = evaluate(rewards, gold, groups, n_boot=500)
            da, sp, acc = (format_metric(m, key) for key in KEYS)
            print(f"| {name} | {k} | {sum(not s.ok for s in scores)} | {label} | "
                  f"{da} | {sp} | {acc} | "
                  f"{first} | {swap} | {seconds:.0f} |", flush=True)  # fmt: skip


def refine_run(args: argparse.Namespace) -> None:
    from rewardplug_rubric.refine import refine

    from rewardplug.types import Sample

    rows = arena_rows(args.groups, args.per_group)
    samples = [Sample(**r) for r in rows]
    gold = [r["gold"] for r in rows]
    rubric = {"name": "start", "criteria": [
        {"id": "addresses", "text": "The response directly answers the user's request.", "weight": 1}]}  # fmt: skip
    judge = {**judge_settings(args), "temperature": 1.0, "max_tokens": args.max_tokens}
    start = time.perf_counter()
    refined, log = refine(rubric, samples, gold, judge, rounds=args.rounds, samples_k=args.samples,
                          on_round=lambda e: print(json.dumps(e), file=sys.stderr, flush=True))  # fmt: skip
    seconds = time.perf_counter() - start
    print(f"{len(samples)} answers in {len(set(r['group'] for r in rows))} groups; {seconds:.0f} s")
    print("| round | status | criterion | held-out DA | held-out SP | mean tiers |")
    print("|---|---|---|---|---|---|")
    for e in log:
        after = e.get("after") or (e if e["status"] == "baseline" else e.get("before") or {})
        text = (e.get("criterion") or {}).get("text", "")
        reason = e.get("reason") or "; ".join(r["reason"] for r in e.get("rejected", []))[:120]

        def f(v: Any) -> str:
            return "n/a" if v is None else f"{v:.3f}"

        print(f"| {e['round']} | {e['status']} | {text} {('(' + reason + ')') if reason else ''} | "
              f"{f(after.get('DA'))} | {f(after.get('SP'))} | {after.get('mean_tiers')} |")  # fmt: skip
    print(f"final criteria: {[c.text for c in refined.criteria]}")


CONTROL = "I hope this helps. Let me know if you would like more detail on any of these points."


def _unfenced(messages: list[dict[str, str]], texts: list[str]) -> list[dict[str, str]]:
    """The prompt as it was before issue 26: responses inserted bare, no fence instruction."""
    import re

    from rewardplug_judge import fence

    nonce = fence.nonce_of(messages)
    if nonce is None:
        return messages
    note = fence.instruction(nonce)
    block = re.compile(rf'<response-{nonce} n="[^"]*">\n.*?\n</response-{nonce}>', re.DOTALL)
    raw = iter(texts)
    out = []
    for m in messages:
        text = m["content"].replace("\n\n" + note, "").replace(note + "\n\n", "")
        out.append({**m, "content": block.sub(lambda _: next(raw), text)})
    return out


def _judges(settings: dict[str, Any]) -> dict[str, Any]:
    """The pointwise judge with fences (as shipped) and the same judge without them."""
    from rewardplug_judge.prompts import truncate
    from rewardplug_judge.source import JudgeSource

    class Unfenced(JudgeSource):
        def _unit(self, indices, samples):  # type: ignore[no-untyped-def]
            unit = super()._unit(indices, samples)
            limit = self.config.max_response_chars
            texts = [truncate(samples[i].response, limit)[0] for i in indices]
            unit.messages, unit.nonce = _unfenced(unit.messages, texts), None
            return unit

    return {"fenced": JudgeSource(settings), "unfenced": Unfenced(settings)}


def injection(args: argparse.Namespace) -> None:
    """Share of injected responses whose grade rose over the same response without injection.

    Every base answer is judged bare, with each injection of the project's corpus
    (``benchmarks/injections.py``) appended, and with a neutral tail (the control:
    how much any appended text moves this judge). The same requests go to the judge as shipped
    (fenced) and with the fences and their instruction stripped (the prompt before issue 26).
    """
    from injections import INJECTIONS

    from rewardplug.types import Sample

    names = args.injections.split(",") if args.injections else list(INJECTIONS)
    tails = {**{n: INJECTIONS[n] for n in names}, "control": CONTROL}
    rows = arena_rows(args.groups, args.per_group)[: args.responses]
    base = [Sample(id=r["id"], prompt=r["prompt"], response=r["response"][: args.max_chars])
            for r in rows]  # fmt: skip
    batch = list(base)
    for r in base:
        batch += [Sample(id=f"{r.id}+{n}", prompt=r.prompt, response=f"{r.response}\n\n{tail}")
                  for n, tail in tails.items()]  # fmt: skip
    settings = {**judge_settings(args), "prompt": args.prompt, "mode": args.mode,
                "samples": args.samples, "max_tokens": args.max_tokens, "temperature": 1.0,
                "max_response_chars": args.max_chars + 2000}  # fmt: skip
    print(f"{len(base)} arena answers x {len(names)} injections; judge "
          f"{args.model or 'SmolLM2-135M (transformers)'}; prompt {args.prompt}, mode {args.mode}")  # fmt: skip
    print(
        "| prompt | appended | n | grade rose | fell | unchanged | unreadable | mean Δ grade | s |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    per: dict[str, dict[str, int]] = {}
    for label, src in _judges(settings).items():
        start = time.perf_counter()
        scores = src.score(batch)
        seconds = time.perf_counter() - start
        lo, hi = src.config.scale
        grade = {s.id: sc.value * (hi - lo) + lo if sc.ok else None
                 for s, sc in zip(batch, scores, strict=True)}  # fmt: skip
        for group, members in (("injection", names), ("control", ["control"])):
            deltas, unread = [], 0
            for r in base:
                for n in members:
                    clean, hit = grade[r.id], grade[f"{r.id}+{n}"]
                    if clean is None or hit is None:
                        unread += 1
                        continue
                    deltas.append(hit - clean)
                    per.setdefault(n, {}).setdefault(label, 0)
                    per[n][label] += hit - clean > args.eps
            total = len(base) * len(members)
            rose = sum(d > args.eps for d in deltas)
            fell = sum(d < -args.eps for d in deltas)
            mean = sum(deltas) / len(deltas) if deltas else float("nan")
            print(f"| {label} | {group} | {total} | {rose} ({rose / total:.0%}) | {fell} | "
                  f"{len(deltas) - rose - fell} | {unread} | {mean:+.2f} | {seconds:.0f} |", flush=True)  # fmt: skip
    print("\n| appended | rose, fenced | rose, unfenced |\n|---|---|---|")
    for n in tails:
        got = per.get(n, {})
        print(f"| {n} | {got.get('fenced', 0)} / {len(base)} | {got.get('unfenced', 0)} / {len(base)} |")  # fmt: skip


@contextlib.contextmanager
def smoke_judge(args: argparse.Namespace) -> Iterator[None]:
    """Under ``--smoke`` with no ``--base-url``: a local fake judge server for the run, and the
    smallest sizes (the plumbing, not the figures)."""
    if not args.smoke or args.base_url:
        yield
        return
    from chat_server import ChatServer, Reply, user_text

    def reply(body: dict[str, Any], server: Any) -> Reply:
        asked = user_text(body)
        if "HACK" in asked:  # hack_check: a verdict line per response shown
            text = "\n".join(f"Response {i}: OK - fine" for i in range(1, 9))
        elif "[[A]]" in asked:  # pairwise
            text = "[[A]]"
        else:
            text = "Rating: 7"
        return Reply(texts=[text] * int(body.get("n") or 1))

    with ChatServer(reply) as server:
        args.base_url, args.model = server.base_url, "smoke"
        args.groups, args.per_group, args.responses = 2, 2, 2
        args.rounds, args.samples, args.injections = 1, 1, "rating_line"
        yield


def main() -> None:
    ap = parser(__doc__, repeats=None)
    ap.add_argument("what", choices=["hacks", "pairwise", "refine", "injection"])
    ap.add_argument("--base-url", default=None)
    ap.add_argument("--model", default=None)
    ap.add_argument("--samples", type=int, default=2, help="K (pairwise: per order)")
    ap.add_argument("--max-tokens", type=int, default=24)
    ap.add_argument("--groups", type=int, default=8)
    ap.add_argument("--per-group", type=int, default=4)
    ap.add_argument("--max-chars", type=int, default=1200)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--responses", type=int, default=6, help="injection: base answers")
    ap.add_argument("--injections", default="", help="injection: comma-separated names (all)")
    ap.add_argument("--prompt", default="pointwise_direct", help="injection: judge template")
    ap.add_argument("--mode", default="logprobs", help="injection: logprobs or sample")
    ap.add_argument("--eps", type=float, default=0.05, help="injection: grade change that counts")
    args = ap.parse_args()
    if not args.base_url and not args.smoke:
        import torch

        torch.set_num_threads(1)  # a shared, busy CPU: one thread is faster
    run = {"hacks": hacks, "pairwise": pairwise, "refine": refine_run, "injection": injection}
    with smoke_judge(args):
        run[args.what](args)


if __name__ == "__main__":
    main()
