"""verifiers: the rewardplug group reward function scored by verifiers' own ``Rubric.score_group``.

verifiers 0.3.1 from PyPI (``make frameworks``: its classic stack, ``verifiers.legacy``; 0.4 ships
only the v1 stack). The states are built as verifiers builds them (``vf.State`` over the rollout
input, pydantic messages, a trajectory), then verifiers' Rubric scores the group.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest

from rewardplug.integrations import verifiers as rp_verifiers
from rewardplug.integrations import verl
from rewardplug.stack import load_stack
from tests.frameworks import require

STACK = (
    "sources:\n"
    "  - name: len\n    use: python\n    with: {function: 'rp_test_rewards:noisy_length'}\n"
)
REF_ONLY = (
    "sources:\n  - name: ref\n    use: python\n"
    "    with: {function: 'rp_test_rewards:contains_reference'}\n"
)


@pytest.fixture
def vf() -> Any:
    require("verifiers.legacy")
    import verifiers

    return verifiers


@pytest.fixture
def stack_file(tmp_path):
    path = tmp_path / "stack.yaml"
    path.write_text(STACK)
    rp_verifiers._warned.clear()
    yield str(path)
    verl.clear_cache()


def states(vf: Any, responses: list[str], answer: Any = "x", info: Any = None, example: int = 0):
    """One example's rollouts, as verifiers' Environment leaves them before scoring."""
    out = []
    for i, text in enumerate(responses):
        state = vf.State(
            input={
                "prompt": [{"role": "user", "content": f"question {example}"}],
                "answer": answer[i] if isinstance(answer, list) else answer,
                "info": info or {},
                "example_id": example,
            }
        )
        state["prompt"] = [vf.UserMessage(content=f"question {example}")]
        state["completion"] = [vf.AssistantMessage(content=text)]
        state["trajectory"] = [{"advantage": None, "reward": None}]
        state["trajectory_id"] = f"t{example}-{i}"
        state["is_truncated"] = False
        out.append(state)
    return out


def test_verifiers_scores_the_group_whole(vf, stack_file):
    rubric = rp_verifiers.rubric(stack_file)
    assert isinstance(rubric, vf.Rubric) and rubric.has_group_rewards  # group rollouts
    group = states(vf, ["x" * 10, "x" * 11, "x" * 30])
    asyncio.run(rubric.score_group(group))  # verifiers' own Rubric.score_group
    assert [s["reward"] for s in group] == pytest.approx([10.5, 10.5, 30.0])
    assert [s["metrics"]["rewardplug"] for s in group] == pytest.approx([10.5, 10.5, 30.0])
    assert [s["metrics"]["rewardplug_reward_mask"] for s in group] == [1.0, 1.0, 1.0]
    assert [s["rewardplug"]["tier"] for s in group] == [1, 1, 0]
    assert group[2]["advantage"] == pytest.approx(30.0 - 51.0 / 3)  # verifiers' own advantage
    samples = rp_verifiers.verifiers_samples(
        [s["prompt"] for s in group],
        [s["completion"] for s in group],
        [s["answer"] for s in group],
        [s["info"] for s in group],
        group,
    )
    assert [r.reward for r in load_stack(stack_file).score(samples)] == [s["reward"] for s in group]


def test_concurrent_groups_stay_apart(vf, stack_file):
    rubric = rp_verifiers.rubric(stack_file)
    a = states(vf, ["x" * 10, "x" * 11], example=0)
    b = states(vf, ["x" * 11, "x" * 40], example=1)

    async def both():
        await asyncio.gather(rubric.score_group(a), rubric.score_group(b))

    asyncio.run(both())
    assert [s["reward"] for s in a] == pytest.approx([10.5, 10.5])
    assert [s["reward"] for s in b] == [11.0, 40.0]


def test_abstention_is_filled_with_a_mask_metric(vf, tmp_path, caplog):
    path = tmp_path / "ref.yaml"
    path.write_text(REF_ONLY)
    rp_verifiers._warned.clear()
    rubric = rp_verifiers.rubric(str(path), abstain_reward=-1.0)
    group = states(vf, ["has x", "nothing"], answer=["x", ""])  # "": verifiers' missing answer
    with caplog.at_level(logging.WARNING, logger="rewardplug.integrations.verifiers"):
        asyncio.run(rubric.score_group(group))
    assert [s["reward"] for s in group] == [1.0, -1.0]
    assert [s["metrics"]["rewardplug_reward_mask"] for s in group] == [1.0, 0.0]
    assert group[1]["rewardplug"]["abstained"] and group[1]["rewardplug"]["reason"]
    assert "fill value -1.0" in caplog.text
    verl.clear_cache()


def test_a_failure_is_raised_not_scored_zero(vf, stack_file, caplog):
    # what verifiers does with an ordinary exception from a group function: zeros, one log line
    def broken(states, **_):
        raise RuntimeError("boom")

    plain = vf.Rubric(funcs=[broken])
    group = states(vf, ["a", "b"])
    asyncio.run(plain.score_group(group))
    assert [s["reward"] for s in group] == [0.0, 0.0]
    # rewardplug's: a malformed info cannot be scored -> ScoringFailed escapes verifiers
    rubric = rp_verifiers.rubric(stack_file)
    group = states(vf, ["a", "b"], info={"tests": "{not json"})
    with (
        caplog.at_level(logging.ERROR, logger="rewardplug.integrations.verifiers"),
        pytest.raises(rp_verifiers.ScoringFailed, match="not JSON"),
    ):
        asyncio.run(rubric.score_group(group))
    assert all(s.get("reward") is None for s in group)  # nothing was scored
    assert "does not score the group 0.0" in caplog.text
    assert not issubclass(rp_verifiers.ScoringFailed, Exception)


def test_fields_from_verifiers_states(vf):
    tests = {"kind": "call", "entry_point": "f", "cases": [{"args": [1], "expected": 2}]}
    prompt = [vf.SystemMessage(content="Be brief."), vf.UserMessage(content="Add one.")]
    completion = [
        vf.AssistantMessage(content="Let me check."),
        vf.ToolMessage(tool_call_id="1", content="tool output"),
        vf.AssistantMessage(content=[{"type": "text", "text": "def f(x): return x + 1"}]),
    ]
    info = {"tests": json.dumps(tests), "difficulty": "easy"}
    state = {"example_id": 5, "trajectory_id": "abc", "is_truncated": True}
    (s,) = rp_verifiers.verifiers_samples([prompt], [completion], [{"a": 1}], [info], [state])
    assert s.group == "example:5" and s.id == "abc"
    assert s.prompt == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Add one."},
    ]
    assert s.response == "Let me check.\ndef f(x): return x + 1"  # assistant messages only
    assert s.tests == tests and s.reference == '{"a": 1}'
    assert s.metadata == {"difficulty": "easy", "example_id": 5, "is_truncated": True}
    (plain,) = rp_verifiers.verifiers_samples(["text prompt"], ["text completion"], [""])
    assert plain.response == "text completion" and plain.reference is None


def test_missing_stack_is_named(monkeypatch):
    monkeypatch.delenv(rp_verifiers.STACK_ENV, raising=False)
    with pytest.raises(ValueError, match="REWARDPLUG_STACK"):
        rp_verifiers.group_reward()
