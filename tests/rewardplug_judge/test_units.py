"""Prompt filling, grade parsing, logprob distributions and retry decisions (no model, no server)."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st
from rewardplug_judge.backends.types import TokenLogprob
from rewardplug_judge.distribution import grade_distribution, quantile_draws
from rewardplug_judge.parsing import parse_grades
from rewardplug_judge.prompts import load_template, truncate
from rewardplug_judge.retry import BadReply, answered, backoff_delay, classify


@given(st.text(max_size=300), st.text(max_size=100))
def test_filling_inserts_text_verbatim(response, prompt):
    messages = load_template("pointwise").render(
        prompt=prompt, response=response, reference=None, scale_min=1, scale_max=10
    )
    user = messages[-1]["content"]
    assert response.strip() in user
    assert "Reference answer" not in user  # the if-block is dropped without a reference


def test_template_sections_and_prefill():
    messages = load_template("pointwise_direct").render(
        prompt="p", response="{response} {prompt}", reference="R", scale_min=0, scale_max=5
    )
    assert [m["role"] for m in messages] == ["system", "user", "assistant"]
    assert messages[-1]["content"] == "Rating:"
    assert "{response} {prompt}" in messages[1]["content"] and "R" in messages[1]["content"]
    with pytest.raises(FileNotFoundError, match="pointwise"):
        load_template("no-such-prompt")


def test_truncate_keeps_start_and_end():
    text, note = truncate("A" * 5000 + "END", 300)
    assert text.startswith("A") and text.endswith("END") and "cut by the judge" in text
    assert note == {"original_chars": 5003, "kept_chars": 300}
    assert truncate("short", 300) == ("short", None)


@pytest.mark.parametrize(
    ("text", "count", "expected"),
    [
        ("Good.\nRating: 7", 1, [7]),
        ("Rating: 3 ... on reflection\nRating: 8", 1, [8]),
        ('{"rating": 9, "reason": "ok {x}"}', 1, [9]),
        ("**Rating:** 6/10", 1, [6]),
        ("Rating: 11", 1, [None]),
        ("I like it", 1, [None]),
        ("Response 2: Rating: 4\nResponse 1: Rating: 9", 2, [9, 4]),
        ('{"ratings": [2, 10]}', 2, [2, 10]),
        ("Rating: 5\nRating: 6\nRating: 7", 3, [5, 6, 7]),
        ("Response 1: Rating: 5", 2, [5, None]),
    ],
)
def test_parse_grades(text, count, expected):
    got = [None if g is None else g.value for g in parse_grades(text, count, (1, 10))]
    assert got == expected


def test_grade_span_points_at_the_number():
    text = "ok\nRating: 7"
    [g] = parse_grades(text)
    assert text[g.start : g.end] == "7"


def _tok(token, top):
    return TokenLogprob(token, top.get(token, -0.1), top)


def test_grade_distribution_and_two_digit_grades():
    import math

    tokens = [
        _tok("Rating", {}),
        _tok(":", {}),
        _tok(" ", {}),
        _tok("1", {"1": math.log(0.6), "9": math.log(0.4)}),
        _tok("0", {"0": math.log(0.5), "\n": math.log(0.5)}),
    ]
    [g] = parse_grades("".join(t.token for t in tokens))
    dist = grade_distribution(tokens, g, (1, 10))
    assert dist == pytest.approx({1: 0.3, 9: 0.4, 10: 0.3})
    assert grade_distribution([_tok("x", {})], g, (1, 10)) is None


@given(
    st.dictionaries(st.integers(1, 10), st.floats(0.01, 1.0), min_size=1),
    st.integers(1, 30),
)
def test_quantile_draws_properties(weights, k):
    total = sum(weights.values())
    dist = {g: w / total for g, w in sorted(weights.items())}
    draws = quantile_draws(dist, k)
    assert len(draws) == k and draws == sorted(draws)
    assert set(draws) <= set(dist)
    if len(dist) == 1:
        assert set(draws) == set(dist)


class _Err(Exception):
    def __init__(self, status, message="", headers=None):
        super().__init__(message)
        self.status_code = status
        self.response = type("R", (), {"headers": headers or {}, "status_code": status})()


def test_classify():
    assert classify(_Err(429, headers={"retry-after": "3"})).retry_after == 3
    assert classify(_Err(429)).kind == "retry"
    assert classify(_Err(429, "You exceeded your current quota")).kind == "fatal"
    assert classify(_Err(401)).kind == "fatal"
    assert classify(_Err(404)).kind == "fatal"
    assert classify(_Err(503)).kind == "retry"
    assert classify(_Err(400)).kind == "fail"
    assert classify(TimeoutError()).kind == "retry"
    assert classify(BadReply("no choices")).kind == "retry"
    assert classify(_Err(400, "LLM Provider NOT provided. You passed model=judge")).kind == "fatal"


def _wrapped(outer: Exception, *inner: BaseException) -> Exception:
    """``outer`` raised from ``inner[0]`` raised from ``inner[1]`` ... (as clients wrap errors)."""
    chain = [outer, *inner]
    for exc, cause in itertools.pairwise(chain):
        exc.__cause__ = cause
    return outer


def test_a_connection_failure_wrapped_as_a_500_is_a_connection_error():
    # litellm: InternalServerError(500) <- APIConnectionError <- ... <- ConnectionRefusedError
    class APIConnectionError(Exception):
        pass

    refused = _wrapped(
        _Err(500, "litellm.InternalServerError: OpenAIException - Connection error."),
        APIConnectionError("Connection error."),
        ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 9)"),
    )
    verdict = classify(refused)
    assert verdict.kind == "retry" and verdict.unreachable
    assert verdict.reason.startswith("connection refused")
    assert "500" not in verdict.reason
    assert not answered(refused)

    reset = _wrapped(APIConnectionError("Connection error."), ConnectionResetError(104, "reset"))
    assert classify(reset).kind == "retry" and not classify(reset).unreachable
    assert answered(_Err(503)) and not answered(TimeoutError())


@given(st.integers(0, 10), st.floats(0.01, 2))
def test_backoff_is_capped_and_jittered(attempt, base):
    delay = backoff_delay(attempt, base, 5.0)
    assert 0 <= delay <= 5.0
    assert delay >= min(5.0, base * 2**attempt * 0.5) - 1e-9
    assert backoff_delay(attempt, base, 5.0, retry_after=100) == 5.0
