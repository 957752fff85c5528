"""The llm_judge source against a real HTTP server, through the real openai and litellm clients."""

from __future__ import annotations

import pickle
import threading
import time

import pytest
from rewardplug_judge.backends import FatalBackendError
from rewardplug_judge.source import JudgeSource

from rewardplug.types import Sample
from tests.chat_server import Reply, closed_port, http_options, user_text


def test_sample_mode_asks_n_in_one_request(serve, client_kind, tmp_path):
    def responder(body, server):
        n = int(body.get("n") or 1)
        grade = 9 if "good answer" in user_text(body) else 2
        return Reply(texts=[f"Fine.\nRating: {grade - (i % 2)}" for i in range(n)])

    server = serve(responder)
    src = JudgeSource(http_options(client_kind, server, tmp_path, samples=4))
    good, bad = src.score(
        [Sample(prompt="q", response="good answer"), Sample(prompt="q", response="nonsense")]
    )
    assert len(server.requests) == 2
    assert all(r.get("n") == 4 for r in server.requests)
    assert good.ok and bad.ok
    assert good.detail["grades"] == [9, 8, 9, 8]
    assert good.draws == pytest.approx([8 / 9, 7 / 9, 8 / 9, 7 / 9])
    assert bad.value == pytest.approx((1.5 - 1) / 9)
    assert good.std > 0
    assert good.detail["tokens"]["completion"] > 0


def test_server_ignoring_n_gets_seeded_single_requests(serve, tmp_path):
    server = serve(lambda body, s: Reply(texts=[f"Rating: {3 + body['seed'] % 5}"]))
    src = JudgeSource(http_options("openai", server, tmp_path, samples=3, seed=100))
    [score] = src.score([Sample(prompt="q", response="r")])
    # one n=3 request answered with a single choice, then draws 1 and 2 one by one
    assert len(server.requests) == 3
    seeds = sorted(r["seed"] for r in server.requests)
    assert seeds == [100, 101, 102]
    assert sorted(score.detail["grades"]) == [3, 4, 5]


def test_retry_after_on_429_is_honoured(serve, client_kind, tmp_path):
    count = {"n": 0}

    def responder(body, server):
        count["n"] += 1
        if count["n"] == 1:
            return Reply(status=429, headers={"retry-after": "0.6"})
        if count["n"] == 2:
            return Reply(status=503)
        return Reply(text="Rating: 5")

    server = serve(responder)
    src = JudgeSource(http_options(client_kind, server, tmp_path, samples=1))
    start = time.monotonic()
    [score] = src.score([Sample(prompt="q", response="r")])
    assert time.monotonic() - start >= 0.6
    assert score.ok and score.detail["grades"] == [5]
    assert len(server.requests) == 3


def test_timeouts_retry_then_abstain_with_reason(serve, tmp_path):
    server = serve(lambda body, s: Reply(text="Rating: 5", delay_s=1.5))
    src = JudgeSource(
        http_options("openai", server, tmp_path, samples=2, timeout_s=0.3, max_retries=1)
    )
    start = time.monotonic()
    [score] = src.score([Sample(prompt="q", response="r")])
    assert time.monotonic() - start < 5
    assert score.status == "abstain"
    assert "timeout" in score.reason.lower()
    assert len(server.requests) == 2  # first try + one retry


def test_garbage_and_empty_choices_abstain_but_batch_completes(serve, client_kind, tmp_path):
    def responder(body, server):
        text = user_text(body)
        if "GARBAGE" in text:
            return Reply(raw=b"<html>502 bad gateway</html>")
        if "EMPTY" in text:
            return Reply(texts=[])
        return Reply(text="Rating: 8")

    server = serve(responder)
    src = JudgeSource(http_options(client_kind, server, tmp_path, samples=2, max_retries=1))
    scores = src.score(
        [
            Sample(prompt="q", response="GARBAGE"),
            Sample(prompt="q", response="EMPTY"),
            Sample(prompt="q", response="fine"),
        ]
    )
    assert [s.status for s in scores] == ["abstain", "abstain", "ok"]
    assert "empty `choices`" in scores[1].reason
    assert "every judge request failed" in scores[0].reason
    assert scores[2].detail["grades"] == [8, 8]


@pytest.mark.parametrize(
    ("status", "error", "needle"),
    [
        (401, {"message": "Incorrect API key", "type": "invalid_request_error"}, "authentication"),
        (
            429,
            {"message": "quota", "type": "insufficient_quota", "code": "insufficient_quota"},
            "quota",
        ),
    ],
)
def test_bad_key_and_exhausted_quota_fail_fast(serve, client_kind, tmp_path, status, error, needle):
    server = serve(lambda body, s: Reply(status=status, error=error))
    src = JudgeSource(http_options(client_kind, server, tmp_path, samples=2, concurrency=1))
    samples = [Sample(prompt="q", response=f"r{i}") for i in range(20)]
    with pytest.raises(FatalBackendError, match=needle):
        src.score(samples)
    assert len(server.requests) <= 2  # no retries, and the rest of the batch was cancelled


def test_unparseable_reply_is_reasked_then_missing(serve, tmp_path):
    def responder(body, server):
        # draws 0..2 (seed 0..2) are prose; re-asked draws 3.. answer properly except draw 4
        seed = body["seed"]
        ok = seed >= 3 and seed != 4
        return Reply(texts=["Rating: 6" if ok else "I think it is decent."])

    server = serve(responder)
    src = JudgeSource(http_options("openai", server, tmp_path, samples=3, n_per_request=False))
    [score] = src.score([Sample(prompt="q", response="r")])
    assert score.ok
    assert score.detail["grades"] == [6, 6]
    assert score.detail["missing_draws"] == 1
    assert score.detail["unparseable_replies"] == 4  # 3 first tries + draw 1's retry


def test_all_unparseable_abstains(serve, tmp_path):
    server = serve(lambda body, s: Reply(text="Rating: 42"))  # out of scale
    src = JudgeSource(http_options("openai", server, tmp_path, samples=2))
    [score] = src.score([Sample(prompt="q", response="r")])
    assert score.status == "abstain" and "could not be parsed" in score.reason


def test_cache_makes_reruns_free(serve, client_kind, tmp_path):
    server = serve(lambda body, s: Reply(texts=[f"Rating: {i + 2}" for i in range(body["n"])]))
    options = http_options(client_kind, server, tmp_path, samples=3)
    samples = [Sample(prompt="q", response=f"answer {i}") for i in range(5)]
    first = JudgeSource(options).score(samples)
    assert len(server.requests) == 5
    again = JudgeSource(options).score(samples)
    assert len(server.requests) == 5
    assert [s.draws for s in again] == [s.draws for s in first]
    assert again[0].detail["cached_draws"] == 3
    JudgeSource({**options, "cache": False}).score(samples)
    assert len(server.requests) == 10


def test_logprobs_mode_one_request_and_fallback(serve, client_kind, tmp_path):
    def responder(body, server):
        if "NOLOGPROBS" in user_text(body):
            return Reply(texts=[f"Rating: {4 + i % 5}" for i in range(int(body.get("n") or 1))])
        lp = [{"Rating": -0.01}, {":": -0.01}, {" 8": -0.3567, " 6": -1.2040}]  # 0.7 / 0.3
        return Reply(text="Rating: 8", logprobs=lp)

    server = serve(responder)
    src = JudgeSource(http_options(client_kind, server, tmp_path, mode="logprobs", samples=10))
    lp_score, fallback = src.score(
        [Sample(prompt="q", response="a"), Sample(prompt="q", response="NOLOGPROBS")]
    )
    first = server.requests[0] if "NOLOGPROBS" not in user_text(server.requests[0]) else None
    assert first is None or (first["logprobs"] is True and first["top_logprobs"] == 20)
    assert lp_score.detail["mode"] == "logprobs"
    assert lp_score.detail["expected_grade"] == pytest.approx(8 * 0.7 + 6 * 0.3, abs=1e-3)
    assert lp_score.value == pytest.approx((7.4 - 1) / 9, abs=1e-3)
    assert lp_score.detail["grades"] == [6, 6, 6, 8, 8, 8, 8, 8, 8, 8]
    assert fallback.detail["mode"] == "sample"
    assert "no logprobs" in fallback.detail["logprobs_fallback"]
    assert len(fallback.draws) == 10
    assert len(server.requests) == 3  # 1 logprobs request each + 1 n=10 sampling request


def test_groupwise_one_request_per_group(serve, client_kind, tmp_path):
    def responder(body, server):
        text = user_text(body)
        assert "### Response 1" in text and "### Response 2" in text
        return Reply(text="Both tried.\nResponse 1: Rating: 3\nResponse 2: Rating: 9")

    server = serve(responder)
    src = JudgeSource(http_options(client_kind, server, tmp_path, judging="groupwise", samples=2))
    samples = [
        Sample(prompt="p1", response="weak", group="g1"),
        Sample(prompt="p2", response="x", group="g2"),
        Sample(prompt="p1", response="strong", group="g1"),
        Sample(prompt="p2", response="y", group="g2"),
    ]
    scores = src.score(samples)
    assert len(server.requests) == 2
    assert [s.detail["grades"] for s in scores] == [[3, 3], [3, 3], [9, 9], [9, 9]]
    assert scores[2].detail["group_position"] == 2


def test_braces_big_and_chat_inputs_reach_the_judge_intact(serve, tmp_path):
    server = serve(lambda body, s: Reply(text="Rating: 4"))
    src = JudgeSource(http_options("openai", server, tmp_path, samples=1, max_response_chars=5000))
    tricky = "def f(): return {'a': {response}} {0} {{x}} ${prompt} %s"
    chat = [
        {"role": "system", "content": "be terse"},
        {"role": "user", "content": "Write f {with braces}"},
    ]
    huge = "x" * 1_000_000
    scores = src.score(
        [
            Sample(prompt=chat, response=tricky),
            Sample(prompt="q", response=huge),
            Sample(prompt="q", response=""),
        ]
    )
    assert all(s.ok for s in scores)
    texts = [user_text(b) for b in server.requests]
    tricky_text = next(t for t in texts if "def f()" in t)
    assert tricky in tricky_text
    assert "user: Write f {with braces}" in tricky_text
    huge_text = next(t for t in texts if "characters cut by the judge" in t)
    assert len(huge_text) < 7000
    assert scores[1].detail["truncated"] == {"original_chars": 1_000_000, "kept_chars": 5000}
    assert scores[2].detail["empty_response"] is True


def test_concurrency_and_rate_limits(serve, tmp_path):
    state = {"now": 0, "max": 0}
    lock = threading.Lock()

    def responder(body, server):
        with lock:
            state["now"] += 1
            state["max"] = max(state["max"], state["now"])
        time.sleep(0.1)
        with lock:
            state["now"] -= 1
        return Reply(text="Rating: 5")

    server = serve(responder)
    src = JudgeSource(http_options("openai", server, tmp_path, samples=1, concurrency=3))
    src.score([Sample(prompt="q", response=f"r{i}") for i in range(12)])
    assert state["max"] == 3
    limited = JudgeSource(
        http_options("openai", server, tmp_path, samples=1, requests_per_s=20, cache=False)
    )
    start = time.monotonic()
    limited.score([Sample(prompt="q", response=f"r{i}") for i in range(10)])
    assert time.monotonic() - start >= 9 / 20


def test_source_pickles_and_async_ascore(serve, tmp_path):
    import asyncio

    server = serve(lambda body, s: Reply(text='{"rating": 7, "why": "ok {braces}"}'))
    src = JudgeSource(http_options("openai", server, tmp_path, samples=2))
    src.score([Sample(prompt="q", response="warm up")])
    clone = pickle.loads(pickle.dumps(src))
    scores = asyncio.run(clone.ascore([Sample(prompt="q", response="r")]))
    assert scores[0].detail["grades"] == [7, 7]


def test_stack_uses_llm_judge_by_name(serve, tmp_path):
    import rewardplug

    server = serve(lambda body, s: Reply(texts=[f"Rating: {3 + i}" for i in range(body["n"])]))
    options = http_options("openai", server, tmp_path, samples=3)
    stack = rewardplug.load_stack(
        {"sources": [{"name": "judge", "use": "llm_judge", "with": options}]}
    )
    rewards = stack.score([Sample(prompt="q", response="a"), Sample(prompt="q", response="b")])
    assert [r.status for r in rewards] == ["ok", "ok"]
    assert rewards[0].sources["judge"].detail["grades"] == [3, 4, 5]
    with pytest.raises(Exception, match="samplez"):
        rewardplug.load_stack(
            {"sources": [{"name": "j", "use": "llm_judge", "with": {**options, "samplez": 3}}]}
        )


def test_nothing_listening_fails_fast_with_the_url(client_kind, tmp_path):
    """A judge pointed at a server that is not running fails on its first request, naming the
    URL, instead of retrying every draw into a silent abstention."""
    url = f"http://127.0.0.1:{closed_port()}/v1"
    model = "judge" if client_kind == "openai" else "openai/judge"
    options = {
        "backend": client_kind,
        "model": model,
        "base_url": url,
        "cache_dir": str(tmp_path / "cache"),
        "samples": 3,
        "max_retries": 6,
        "backoff_s": 1.0,  # six retries of a refused connection would take a minute
    }
    src = JudgeSource(options)
    start = time.monotonic()
    with pytest.raises(FatalBackendError) as caught:
        src.score([Sample(prompt="q", response=f"r{i}") for i in range(8)])
    assert time.monotonic() - start < 10
    message = str(caught.value)
    assert url in message
    # litellm reports the refusal as a 500 with its cause dropped: "Connection error."
    assert "connection refused" in message.lower() or "connection error" in message.lower()
    assert "server error 500" not in message


def test_server_gone_after_first_success_is_retried_not_fatal(serve, client_kind, tmp_path):
    """Once the judge has answered, a refused connection is an outage: retried, then the draws
    abstain with the reason (the run goes on)."""
    server = serve(lambda body, s: Reply(text="Rating: 7"))
    src = JudgeSource(http_options(client_kind, server, tmp_path, samples=1, max_retries=1))
    [first] = src.score([Sample(prompt="q", response="one")])
    assert first.ok
    server.__exit__()
    [second] = src.score([Sample(prompt="q", response="two")])
    assert second.status == "abstain"
    assert "connection" in second.reason.lower()
    assert "server error 500" not in second.reason


def test_unknown_model_fails_fast_naming_model_and_url(serve, client_kind, tmp_path):
    error = {"message": "The model `judge` does not exist.", "type": "NotFoundError"}
    server = serve(lambda body, s: Reply(status=404, error=error))
    src = JudgeSource(http_options(client_kind, server, tmp_path, samples=2, concurrency=1))
    with pytest.raises(FatalBackendError) as caught:
        src.score([Sample(prompt="q", response=f"r{i}") for i in range(10)])
    assert server.base_url in str(caught.value)
    assert "judge" in str(caught.value)
    assert len(server.requests) <= 2
