"""``llm`` criteria and ``implicit`` rubrics through the judge backends, on a real local server."""

from __future__ import annotations

import asyncio
import re

import pytest
from rewardplug_rubric.source import RubricSource

from rewardplug.types import Sample
from tests.chat_server import ChatServer, scripted, user_text

RUBRIC = {
    "name": "answer",
    "criteria": [
        {"id": "paris", "text": "Names Paris", "weight": 2, "check": {"kind": "contains", "value": "Paris"}},
        {"id": "polite", "text": "Is polite", "category": "important"},
        {"id": "rude", "text": "Insults the user", "category": "pitfall"},
        {"id": "depth", "text": "Explains why", "category": "optional", "check": {"kind": "llm", "scale": "score"}},
    ],
}  # fmt: skip
WEIGHTS = {"paris": 2.0, "polite": 0.7, "rude": 0.9, "depth": 0.3}


def judge(stub: ChatServer, tmp_path, **extra) -> dict:
    return {"backend": "openai", "model": "stub", "base_url": stub.base_url,
            "cache_dir": str(tmp_path / "cache"), "max_retries": 0, **extra}  # fmt: skip


def three_draws(body: dict, n: int) -> list[str]:
    # polite: yes, yes, no; rude (pitfall): no, yes, no; depth: 80, 60, 40
    replies = [
        "1: YES - thanks the user\n2: NO - no insult\n3: 80 - gives a reason",
        "**1:** yes\n2: YES - calls the user lazy\n3: 60",
        "1. NO - curt\n2. NO\n3. 40 - thin",
    ]
    return replies[:n]


def expected(paris: float, polite: float, rude_present: float, depth: float) -> float:
    total = sum(WEIGHTS.values())
    w = WEIGHTS
    return (
        w["paris"] * paris
        + w["polite"] * polite
        + w["rude"] * (1 - rude_present)
        + w["depth"] * depth
    ) / total


def test_llm_criteria_one_call_per_response_and_draw_wise(tmp_path):
    with ChatServer(scripted(three_draws)) as stub:
        src = RubricSource(rubric=RUBRIC, judge=judge(stub, tmp_path), samples=3)
        a, b = src.score([Sample(prompt="Capital of France?", response="Paris, my friend."),
                          Sample(prompt="Capital of France?", response="Lyon")])  # fmt: skip
        assert len(stub.requests) == 2  # one call per response, all llm criteria together
        assert all(r["n"] == 3 for r in stub.requests)
        asked = user_text(stub.requests[0])
        assert (
            "1. (YES/NO) Is polite" in asked
            and "Does the response show this problem? Insults" in asked
        )
        assert "3. (0-100) Explains why" in asked and "Names Paris" not in asked  # programmatic
    assert a.draws == pytest.approx(
        [expected(1, 1, 0, 0.8), expected(1, 1, 1, 0.6), expected(1, 0, 0, 0.4)]
    )
    assert b.draws == pytest.approx(
        [expected(0, 1, 0, 0.8), expected(0, 1, 1, 0.6), expected(0, 0, 0, 0.4)]
    )
    assert a.value == pytest.approx(sum(a.draws) / 3) and a.std > 0
    rows = {r["id"]: r for r in a.detail["criteria"]}
    assert rows["paris"]["satisfied"] == 1.0 and "draws" not in rows["paris"]  # exact
    assert rows["rude"]["draws"] == [1.0, 0.0, 1.0] and rows["rude"]["verdict"] == "avoided"
    assert rows["polite"]["rationale"] == ["thanks the user", "curt"]
    assert a.detail["judge"]["calls"] == 1 and a.detail["judge"]["samples"] == 3


def test_unanswered_criteria_are_retried_alone_then_missing(tmp_path):
    def replies(body: dict, n: int) -> list[str]:
        text = user_text(body)
        if "1. (YES/NO) Is polite" in text and "Insults" in text:  # the batched call
            return ["1: YES - fine\n3: 50"] * n  # forgets criterion 2
        if "Insults" in text:  # criterion 2 asked alone
            return ["1: NO - none"] * n
        return ["I cannot say."] * n

    with ChatServer(scripted(replies)) as stub:
        src = RubricSource(rubric=RUBRIC, judge=judge(stub, tmp_path), samples=2)
        (score,) = src.score([Sample(prompt="q", response="Paris")])
        assert len(stub.requests) == 2
    assert score.value == pytest.approx(expected(1, 1, 0, 0.5))
    assert score.detail["judge"]["calls"] == 2

    polite_only = {"criteria": [RUBRIC["criteria"][0], RUBRIC["criteria"][1]]}
    with ChatServer(scripted(lambda body, n: ["no idea"] * n)) as stub:
        src = RubricSource(rubric=polite_only, judge=judge(stub, tmp_path), samples=2)
        (score,) = src.score([Sample(prompt="q", response="Paris")])
    assert score.value == 1.0  # polite is missing: renormalized over "paris" alone
    row = score.detail["criteria"][1]
    assert (
        row["status"] == "missing"
        and "no readable answer" in row["reason"]
        and "no idea" in row["reason"]
    )


def test_unreachable_judge_fails_fast_naming_the_url(tmp_path):
    """Nothing listens at the judge's URL: the first request fails the batch at once (a
    configuration error, which the stack reports as the source's failure), not every criterion
    after retries."""
    from rewardplug_judge.backends import FatalBackendError

    settings = {"backend": "openai", "model": "m", "base_url": "http://127.0.0.1:9/v1",
                "max_retries": 5, "timeout_s": 2, "cache": False}  # fmt: skip
    src = RubricSource(rubric=RUBRIC, judge=settings, samples=1, on_error="abstain")
    with pytest.raises(FatalBackendError, match=re.escape("http://127.0.0.1:9/v1")):
        src.score([Sample(prompt="q", response="Paris")])


def test_judge_failing_after_it_answered_marks_llm_criteria_missing(tmp_path):
    with ChatServer(scripted(three_draws)) as stub:
        src = RubricSource(
            rubric=RUBRIC, judge=judge(stub, tmp_path), samples=1, on_error="abstain"
        )
        assert src.score([Sample(prompt="q", response="Paris")])[0].ok
    (score,) = src.score([Sample(prompt="q", response="Paris, again")])
    assert score.status == "abstain"
    assert "every judge call failed" in score.detail["criteria"][1]["reason"]


def test_implicit_rubric_one_grade_per_draw(tmp_path):
    implicit = {**RUBRIC, "aggregate": "implicit"}
    with ChatServer(scripted(lambda body, n: ["Good.\nGRADE: 90", "GRADE: 70", "hmm"][:n])) as stub:
        src = RubricSource(rubric=implicit, judge=judge(stub, tmp_path), samples=3)
        (score,) = src.score([Sample(prompt="q", response="Paris")])
        shown = user_text(stub.requests[0])
    assert len(stub.requests) == 1
    assert (
        "1. [criterion, weight 2] Names Paris" in shown and "[pitfall, weight 0.9] Insults" in shown
    )
    assert score.draws == pytest.approx([0.9, 0.7])  # the unreadable draw is dropped, not a 0
    assert score.detail["aggregate"] == "implicit"


def test_cache_and_async_path(tmp_path):
    with ChatServer(scripted(three_draws)) as stub:
        settings = judge(stub, tmp_path)
        samples = [Sample(prompt="q", response="Paris")]
        first = RubricSource(rubric=RUBRIC, judge=settings, samples=3).score(samples)
        again = asyncio.run(RubricSource(rubric=RUBRIC, judge=settings, samples=3).ascore(samples))
        assert len(stub.requests) == 1  # the second run was served by the judge's cache
    assert first[0].draws == again[0].draws
    assert again[0].detail["judge"]["cached"] == 3


def test_per_sample_checklists_with_llm_items(tmp_path):
    def replies(body: dict, n: int) -> list[str]:
        return ["1: YES\n2: NO"] * n if "Mentions the Seine" in user_text(body) else ["1: NO"] * n

    own = {"criteria": [{"text": "Mentions the Seine", "category": "important"},
                        {"text": "Mentions the Thames", "category": "important"}]}  # fmt: skip
    with ChatServer(scripted(replies)) as stub:
        src = RubricSource(rubric=RUBRIC, judge=judge(stub, tmp_path), samples=1)
        (score,) = src.score([Sample(prompt="q", response="Paris", rubric=own)])
    assert score.value == 0.5 and [r["id"] for r in score.detail["criteria"]] == ["c1", "c2"]


def test_judge_settings_validated_at_load():
    with pytest.raises(ValueError, match=r"judge\.temprature"):
        RubricSource(rubric=RUBRIC, judge={"backend": "openai", "model": "m", "temprature": 1})
    with pytest.raises(ValueError, match="needs `model`"):
        RubricSource(rubric=RUBRIC, judge={"backend": "openai"})


@pytest.mark.slow
def test_real_smollm2_judge(tmp_path, monkeypatch):
    """The bundled SmolLM2-135M judges an llm criterion through the transformers backend."""
    pytest.importorskip("transformers")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    rubric = {"criteria": [
        {"id": "paris", "weight": 1, "check": {"kind": "contains", "value": "Paris"}},
        {"id": "answers", "text": "The response names a city.", "category": "important"},
    ]}  # fmt: skip
    settings = {"backend": "transformers", "max_tokens": 6, "temperature": 1.0,
                "cache_dir": str(tmp_path / "cache")}  # fmt: skip
    src = RubricSource(rubric=rubric, judge=settings, samples=2)
    (score,) = src.score([Sample(prompt="What is the capital of France?", response="Paris.")])
    judged = score.detail["criteria"][1]
    assert score.detail["judge"]["completion_tokens"] > 0
    if judged["status"] == "ok":  # the prefilled "1:" keeps it on format: a yes/no per draw
        assert len(score.draws) == 2 and all(1 / 1.7 - 1e-9 <= d <= 1.0 + 1e-9 for d in score.draws)
    else:  # a garbled reply must surface as missing with what the model said, never as a 0
        assert "no readable answer" in judged["reason"] and score.value == 1.0
