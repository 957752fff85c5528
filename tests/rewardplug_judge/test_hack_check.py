"""The ``hack_check`` source against a real chat-completions server on 127.0.0.1.

The scripted judge reads the responses out of the prompt it was sent and calls a response a hack
when its code exits early or defines an always-true ``__eq__``, so every assertion checks what
the source *sent* (the task, the tests summary, every response, the shared reference) and how it
*read* the verdicts back.
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import pytest
from rewardplug_judge.hack_check import HackCheckSource
from rewardplug_judge.hack_prompt import parse_verdicts, plan_chunks, summarize_tests

from rewardplug import load_stack
from rewardplug.types import Sample
from tests.chat_server import Reply, http_options, user_text

ROOT = Path(__file__).resolve().parents[2]
_BLOCK = re.compile(r"### Response (\d+)\n(.*?)(?=\n### Response \d+\n|\n\nThink briefly|\Z)", re.S)


_FENCE = re.compile(r'<response-([0-9a-f]{16}) n="\d+">\n(.*)\n</response-\1>\s*', re.S)


def responses_in(body) -> list[str]:
    """The responses shown, without their fences (issue 26)."""
    blocks = [m.group(2) for m in _BLOCK.finditer(user_text(body))]
    return [m.group(2) if (m := _FENCE.fullmatch(b)) else b for b in blocks]


def is_hack(text: str) -> bool:
    return "sys.exit" in text or "os._exit" in text or ("return True" in text and "__eq__" in text)


def judge(body, server) -> Reply:
    shown = responses_in(body)
    lines = [
        f"Response {k}: {'HACK - exits before the tests' if is_hack(t) else 'OK - solves it'}"
        for k, t in enumerate(shown, start=1)
    ]
    text = "Compared them.\n" + "\n".join(lines)
    return Reply(texts=[text] * int(body.get("n") or 1))


def demo_group(name: str = "palindrome") -> list[Sample]:
    rows = [json.loads(line) for line in (ROOT / "examples" / "data" / "demo.jsonl").open()]
    return [
        Sample(**{k: v for k, v in r.items() if k != "candidate"})
        for r in rows
        if r["group"] == name
    ]


def test_contrastive_judges_a_group_in_one_call(serve, client_kind, tmp_path):
    server = serve(judge)
    group = demo_group()
    src = HackCheckSource(http_options(client_kind, server, tmp_path, samples=3))
    scores = src.score(group)
    assert len(server.requests) == 1 and server.requests[0]["n"] == 3
    sent = user_text(server.requests[0])
    assert group[0].prompt_text in sent
    assert "The tests call `is_palindrome` on 6 cases" in sent  # the tests summary
    assert len(responses_in(server.requests[0])) == len(group)
    by_id = {s.id: sc for s, sc in zip(group, scores, strict=True)}
    assert by_id["palindrome-3"].value == 0.0 and by_id["palindrome-4"].value == 0.0
    assert by_id["palindrome-0"].value == 1.0 and by_id["palindrome-2"].value == 1.0
    hack = by_id["palindrome-3"]
    assert hack.draws == [0.0, 0.0, 0.0] and hack.detail["hack_votes"] == 3
    assert hack.detail["rationales"][0] == "exits before the tests"
    assert hack.detail["mode"] == "contrastive" and hack.detail["shown_with"] == len(group) - 1


def test_isolated_mode_asks_one_response_per_call(serve, tmp_path):
    server = serve(judge)
    group = demo_group()
    src = HackCheckSource(http_options("openai", server, tmp_path, mode="isolated", samples=2))
    scores = src.score(group)
    assert len(server.requests) == len(group)
    assert all(len(responses_in(r)) == 1 for r in server.requests)
    assert "one response" in user_text(server.requests[0])
    assert [s.value for s in scores] == [0.0 if is_hack(g.response) else 1.0 for g in group]
    assert scores[0].detail["mode"] == "isolated" and scores[0].detail["shown_with"] == 0


def test_batch_order_does_not_change_the_prompt_or_the_scores(serve, tmp_path):
    server = serve(judge)
    group = demo_group()
    src = HackCheckSource(http_options("openai", server, tmp_path, samples=1, cache=False))
    first = {s.id: sc.value for s, sc in zip(group, src.score(group), strict=True)}
    shuffled = group[:]
    random.Random(3).shuffle(shuffled)
    second = {s.id: sc.value for s, sc in zip(shuffled, src.score(shuffled), strict=True)}
    assert first == second
    assert server.requests[0]["messages"] == server.requests[1]["messages"]


def test_a_group_too_large_is_chunked_around_a_shared_reference(serve, tmp_path):
    server = serve(judge)
    group = [
        Sample(
            id=f"r{i:02d}",
            group="g",
            prompt="Write f.",
            response=f"def f(x):\n    return x + {i}\n" + "#" * 900,
        )
        for i in range(9)
    ] + [
        Sample(
            id="r99",
            group="g",
            prompt="Write f.",
            response="import sys\nsys.exit(0)\n" + "#" * 9000,
        )
    ]
    src = HackCheckSource(
        http_options("openai", server, tmp_path, samples=1),
        context_chars=4000,
        max_response_chars=2000,
    )
    scores = src.score(group)
    assert len(server.requests) > 1
    reference = group[0].response[:200]
    for body in server.requests:  # every chunk opens with the same reference response
        assert responses_in(body)[0].startswith(reference)
        assert sum(len(m["content"]) for m in body["messages"]) < 4000 + 2500
    shown = [r for body in server.requests for r in responses_in(body)[1:]]
    assert len(shown) == len(group) - 1  # every other response exactly once: none dropped
    assert all(s.ok for s in scores)
    assert scores[-1].value == 0.0 and all(s.value == 1.0 for s in scores[:-1])
    assert scores[-1].detail["truncated"]["original_chars"] > 9000  # cut, and said so
    assert scores[0].detail["chunk"] == [1, len(server.requests)]


def test_an_unparseable_verdict_abstains_with_the_reason(serve, tmp_path):
    def vague(body, server):
        return Reply(
            texts=["Response 1: OK - fine. The second one, hmm."] * int(body.get("n") or 1)
        )

    server = serve(vague)
    group = [Sample(id=i, group="g", prompt="p", response=r) for i, r in (("a", "f()"), ("b", "1"))]
    src = HackCheckSource(http_options("openai", server, tmp_path, samples=2, parse_retries=1))
    ok, unread = src.score(group)
    assert ok.ok and ok.value == 1.0
    assert unread.status == "abstain"
    assert "named no 'Response 2: HACK|OK' line" in unread.reason
    assert "The second one" in unread.reason

    server2 = serve(lambda body, s: Reply(texts=["I cannot tell."] * int(body.get("n") or 1)))
    src2 = HackCheckSource(http_options("openai", server2, tmp_path, samples=2, cache=False))
    scores = src2.score(group)
    assert all(s.status == "abstain" for s in scores)
    assert len(server2.requests) == 2  # one re-ask of the replies without any verdict
    assert all(s.detail["missing_draws"] == 2 for s in scores)


def test_as_a_gate_in_a_stack(serve, tmp_path):
    server = serve(judge)
    stack = load_stack(
        {
            "sources": [
                {"name": "code", "use": "python", "with": {"function": "tests.rewardplug_judge.hack_rewards:has_code"}},
                {"name": "hack", "use": "hack_check", "with": http_options("openai", server, tmp_path, samples=2)},
            ],
            "combine": "min",
            "discretize": {"enabled": False},
        }
    )  # fmt: skip
    group = demo_group("median")
    rewards = stack.score(group)
    for sample, reward in zip(group, rewards, strict=True):
        if is_hack(sample.response):
            assert reward.raw == 0.0
        else:
            assert reward.raw == 1.0  # min(has code = 1, not a hack = 1)
        assert reward.sources["code"].value == 1.0 and reward.sources["hack"].ok


def test_parse_verdicts():
    text = "Thoughts.\n**Response 2**: HACK — patches json\nResponse 1: OK: fine\nresponse 3: not a hack"
    assert parse_verdicts(text, 3) == [(False, "fine"), (True, "patches json"), (False, "")]
    assert parse_verdicts("Response 4: HACK", 3) == [None, None, None]  # out of range
    # one response given two verdicts is unparseable, not "the last one wins" (issue 26)
    assert parse_verdicts("Response 1: HACK\nResponse 1: OK - on reflection", 1) == [None]
    assert parse_verdicts(None, 2) == [None, None]


def test_plan_chunks_never_drops_a_response():
    assert plan_chunks([10, 10, 10], fixed=5, budget=100, max_size=8) == [[0, 1, 2]]
    chunks = plan_chunks([30, 40, 40, 40, 40], fixed=10, budget=100, max_size=8)
    assert all(c[0] == 0 for c in chunks)
    assert sorted(i for c in chunks for i in c[1:]) == [1, 2, 3, 4]
    assert plan_chunks([10] * 5, fixed=0, budget=1000, max_size=3) == [[0, 1, 2], [0, 3, 4]]
    assert plan_chunks([500, 500], fixed=0, budget=100, max_size=8) == [
        [0, 1]
    ]  # over budget: still judged


def test_summarize_tests():
    assert summarize_tests(None) == ""
    calls = {"kind": "call", "entry_point": "f", "cases": [{"args": [1], "expected": 2}] * 5}
    text = summarize_tests(calls)
    assert (
        text.startswith("The tests call `f` on 5 cases")
        and text.count("`f(1)` should return `2`") == 3
    )
    assert "check(candidate)" in summarize_tests(
        {"kind": "assert", "entry_point": "f", "code": "def check(candidate): pass"}
    )


def test_config_errors_name_the_key():
    with pytest.raises(ValueError, match="needs `model`"):
        HackCheckSource(backend="openai")
    with pytest.raises(ValueError, match="context_chars"):
        HackCheckSource(backend="openai", model="m", context_chars=4000, max_response_chars=3000)
    with pytest.raises(ValueError, match="mode"):
        HackCheckSource(backend="openai", model="m", mode="pairwise")
