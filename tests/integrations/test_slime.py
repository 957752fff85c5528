"""slime's ``--custom-rm-path``: whole groups with ``--group-rm``, one sample at a time without.

slime (THUDM/slime) is not installable from PyPI (the ``slime`` there is an unrelated package), so
these tests cannot run slime's own code. They call the functions the way slime's rollout does,
read from its source (``slime/rollout/rm_hub/__init__.py``, ``slime/rollout/sglang_rollout.py``):
the function is found by its dotted path (module, then attribute), awaited as ``fn(args,
samples)`` once per group with ``--group-rm`` and as ``fn(args, sample)`` per sample without, and
the rewards are written to ``sample.reward``; ``SlimeSample`` carries the fields of slime's
``Sample`` dataclass that the adapter reads or writes.
"""

from __future__ import annotations

import asyncio
import enum
import importlib
import inspect
import json
import logging
from argparse import Namespace
from dataclasses import dataclass, field
from typing import Any

import pytest

from rewardplug.integrations import slime, verl
from rewardplug.stack import load_stack


class Status(enum.Enum):
    COMPLETED = "completed"
    TRUNCATED = "truncated"


@dataclass
class SlimeSample:
    group_index: int | None = None
    index: int | None = None
    prompt: str | list[dict[str, str]] = ""
    response: str = ""
    label: Any = None
    reward: Any = None
    status: Status = Status.COMPLETED
    metadata: dict = field(default_factory=dict)
    remove_sample: bool = False


def load_function(path: str) -> Any:
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


async def reward_group(args: Namespace, group: list[SlimeSample]) -> None:
    """What slime does for one group with ``--group-rm``: one call, rewards written back."""
    rewards = await load_function(args.custom_rm_path)(args, group)
    assert isinstance(rewards, list) and len(rewards) == len(group)
    for sample, reward in zip(group, rewards, strict=True):
        sample.reward = reward


async def reward_sample(args: Namespace, sample: SlimeSample) -> None:
    """What slime does per sample without ``--group-rm`` (and in every evaluation rollout)."""
    sample.reward = await load_function(args.custom_rm_path)(args, sample)


def make_args(**overrides: Any) -> Namespace:
    base = dict(
        custom_rm_path="rewardplug.integrations.slime.group_rm",
        group_rm=True,
        n_samples_per_prompt=3,
        reward_key=None,
        eval_reward_key=None,
    )
    return Namespace(**{**base, **overrides})


def group(gi: int, responses: list[str], label: Any = "x", start: int = 0) -> list[SlimeSample]:
    return [
        SlimeSample(group_index=gi, index=start + i, prompt=f"p{gi}", response=r, label=label)
        for i, r in enumerate(responses)
    ]


STACK = (
    "sources:\n"
    "  - name: len\n    use: python\n    with: {function: 'rp_test_rewards:noisy_length'}\n"
    "  - name: ref\n    use: python\n    weight: 0\n"
    "    with: {function: 'rp_test_rewards:contains_reference'}\n"
)


@pytest.fixture
def stack_file(tmp_path, monkeypatch):
    path = tmp_path / "slime_stack.yaml"
    path.write_text(STACK)
    monkeypatch.setenv(slime.STACK_ENV, str(path))
    monkeypatch.delenv(slime.ABSTAIN_ENV, raising=False)
    slime._warned.clear()
    yield str(path)
    verl.clear_cache()


def test_signatures_are_slimes_contract():
    # slime's plugin contract test checks the first two parameter names of each mode
    assert tuple(inspect.signature(slime.group_rm).parameters)[:2] == ("args", "samples")
    assert tuple(inspect.signature(slime.rm).parameters)[:2] == ("args", "sample")
    assert inspect.iscoroutinefunction(slime.group_rm) and inspect.iscoroutinefunction(slime.rm)


def test_group_rm_discretizes_each_group_whole(stack_file):
    args = make_args()
    groups = [group(0, ["x" * 10, "x" * 11, "x" * 30]), group(1, ["x" * 5, "x" * 40], start=3)]

    async def rollout():  # slime runs many groups concurrently on its rollout event loop
        await asyncio.gather(*(reward_group(args, g) for g in groups))

    asyncio.run(rollout())
    first, second = groups
    assert [s.reward for s in first] == pytest.approx(
        [10.5, 10.5, 30.0]
    )  # tied: not confidently apart
    assert [s.metadata["rewardplug"]["tier"] for s in first] == [1, 1, 0]
    assert [s.reward for s in second] == [5.0, 40.0]
    assert all(isinstance(s.reward, float) for g in groups for s in g)
    details = first[0].metadata["rewardplug"]
    assert details["group_size"] == 3 and details["partial_group"] is False
    assert details["reward_mask"] == 1.0 and details["abstained"] is False
    assert not any(s.remove_sample for g in groups for s in g)
    # exactly one Stack.score call on the group
    expected = load_stack(stack_file).score(slime.slime_samples(first))
    assert [s.reward for s in first] == [r.reward for r in expected]


def test_abstention_is_filled_and_removed(stack_file, tmp_path, monkeypatch, caplog):
    ref_only = tmp_path / "ref_only.yaml"
    ref_only.write_text(
        "sources:\n  - name: ref\n    use: python\n"
        "    with: {function: 'rp_test_rewards:contains_reference'}\n"
    )
    monkeypatch.setenv(slime.STACK_ENV, str(ref_only))
    monkeypatch.setenv(slime.ABSTAIN_ENV, "-1.0")
    g = group(0, ["has x", "xx"])
    g[1].label = None  # no reference: the `ref` source abstains, so the sample does
    with caplog.at_level(logging.WARNING, logger="rewardplug.integrations.slime"):
        asyncio.run(reward_group(make_args(n_samples_per_prompt=2), g))
    assert g[0].reward == 1.0 and g[0].remove_sample is False
    assert g[1].reward == -1.0 and g[1].remove_sample is True  # slime zeroes its loss mask
    details = g[1].metadata["rewardplug"]
    assert details["abstained"] is True and details["reward_mask"] == 0.0 and details["reason"]
    assert "fill value -1.0" in caplog.text and "remove_sample=True" in caplog.text


def test_per_sample_calls_are_groups_of_one(stack_file, caplog):
    # without --group-rm slime awaits the function per sample: answered at once, raw score
    args = make_args(group_rm=False)
    samples = group(0, ["x" * 10, "x" * 11])
    with caplog.at_level(logging.WARNING, logger="rewardplug.integrations.slime"):
        asyncio.run(reward_sample(args, samples[0]))
    assert samples[0].reward == 10.0 and samples[0].metadata["rewardplug"]["group_size"] == 1
    assert "tie-grouping does nothing" in caplog.text
    # the per-sample function (evaluation): the same, without the warning
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="rewardplug.integrations.slime"):
        asyncio.run(
            reward_sample(make_args(custom_rm_path="rewardplug.integrations.slime.rm"), samples[1])
        )
    assert samples[1].reward == 11.0 and not caplog.text


def test_fan_out_lists_without_group_rm_are_scored_each_alone(stack_file):
    # a custom generate function returned two samples for one rollout; no --group-rm
    siblings = group(0, ["x" * 10, "x" * 11])
    rewards = asyncio.run(slime.group_rm(make_args(group_rm=False), siblings))
    assert rewards == [10.0, 11.0]
    assert [s.metadata["rewardplug"]["group_size"] for s in siblings] == [1, 1]
    # with --group-rm slime would pass a group of such lists, which it cannot reward
    with pytest.raises(TypeError, match="group of lists"):
        asyncio.run(slime.group_rm(make_args(), [siblings]))


def test_reward_key_gets_a_dict(stack_file):
    args = make_args(reward_key="score", eval_reward_key="score", n_samples_per_prompt=2)
    g = group(0, ["x" * 3, "x" * 20])
    asyncio.run(reward_group(args, g))
    assert g[1].reward["score"] == 20.0 and g[1].reward["reward_mask"] == 1.0
    assert set(g[0].reward) == {"score", "raw", "reward_mask", "abstained"}


def test_sample_fields_from_label_and_metadata():
    tests = {"kind": "call", "entry_point": "f", "cases": [{"args": [1], "expected": 2}]}
    chat = [{"role": "user", "content": "Add one."}]
    samples = [
        SlimeSample(
            group_index=7,
            index=12,
            prompt=chat,
            response="def f(x):\n    return x + 1\n<|im_end|>",
            label=json.dumps({"reference": "2", "tests": tests, "difficulty": "easy"}),
            status=Status.TRUNCATED,
            metadata={"source_name": "code"},
        ),
        SlimeSample(
            group_index=7,
            index=13,
            prompt=chat,
            response="42",
            label={"answer": 42},  # a mapping without sample fields: metadata
            metadata={"tests": json.dumps(tests), "rubric": "be brief"},
        ),
        SlimeSample(group_index=7, index=14, prompt=chat, response="r", label=["a", 1]),
    ]
    a, b, c = slime.slime_samples(samples)
    assert a.group == b.group == c.group == "group:7"
    assert (a.id, b.id) == ("12", "13")
    assert a.prompt == chat and a.response == "def f(x):\n    return x + 1"  # end marker cut
    assert a.reference == "2" and a.tests == tests
    assert a.metadata == {
        "difficulty": "easy",
        "source_name": "code",
        "status": "truncated",
        "group_index": 7,
    }
    assert b.reference is None and b.tests == tests and b.rubric == "be brief"
    assert b.metadata["answer"] == 42
    assert c.reference == '["a", 1]'
    alone = slime.slime_samples(samples[:2], whole_group=False)
    assert alone[0].group != alone[1].group


def test_missing_stack_names_the_environment_variable(monkeypatch):
    monkeypatch.delenv(slime.STACK_ENV, raising=False)
    with pytest.raises(ValueError, match=r"REWARDPLUG_STACK=.*runtime-env-json"):
        asyncio.run(slime.group_rm(make_args(), group(0, ["x"])))
