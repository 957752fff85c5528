"""SkyRL: rewardplug's environment run through skyrl-gym's own registry, and the generator
wrapper that discretizes each group of a ``GeneratorOutput`` whole.

skyrl-gym 0.4.0 from PyPI (``make frameworks``): ``register`` / ``make``, ``BaseTextEnv``, its
metric aggregation. SkyRL's trainer package (``skyrl`` 0.3.0) does not import on Python 3.11 (a
pydantic ``TypedDict`` error), so the generator it wraps is a stand-in that lays out a
``GeneratorOutput`` as ``SkyRLGymGenerator.generate`` does (one row per trajectory, token-level
rewards with the environment's reward on the last token, ``env_metrics`` from
``env.get_metrics()``) for an input batch made as ``prepare_generator_input`` makes it
(``n_samples_per_prompt`` rows per prompt, each with a ``TrajectoryID`` whose ``instance_id`` is
the prompt's uid).
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import pytest

from rewardplug.integrations import skyrl, verl
from tests.frameworks import require

STACK = (
    "sources:\n"
    "  - name: len\n    use: python\n    with: {function: 'rp_test_rewards:noisy_length'}\n"
)
REF_ONLY = (
    "sources:\n  - name: ref\n    use: python\n    with: {function: 'test_skyrl:needs_reference'}\n"
)


def needs_reference(completions: list[str], **columns: Any) -> list[float | None]:
    """1.0 / 0.0: whether the reference occurs in the completion; None (abstain) without one."""
    refs = columns.get("reference") or [None] * len(completions)
    return [None if r is None else float(r in c) for c, r in zip(completions, refs, strict=True)]


@dataclass
class TrajectoryID:
    instance_id: str
    repetition_id: int


@pytest.fixture
def gym() -> Any:
    require("skyrl_gym")
    import skyrl_gym
    from skyrl_gym.envs import register
    from skyrl_gym.envs.registration import registry

    if "rewardplug" not in registry:  # as a SkyRL entry point registers it, once per process
        register(id="rewardplug", entry_point="rewardplug.integrations.skyrl:RewardplugEnv")
    return skyrl_gym


@pytest.fixture
def stack_file(tmp_path, monkeypatch):
    path = tmp_path / "stack.yaml"
    path.write_text(STACK)
    monkeypatch.setenv(skyrl.STACK_ENV, str(path))
    yield str(path)
    verl.clear_cache()


class Generator:
    """SkyRLGymGenerator's shape: one skyrl-gym environment per trajectory."""

    def __init__(self, gym: Any, responses: dict[str, list[str]], env_config: Any = None):
        self.gym, self.responses, self.env_config = gym, responses, env_config or {}
        self.name = "stand-in"

    async def generate(self, batch: dict[str, Any]) -> dict[str, Any]:
        rows: dict[str, Any] = {"response_ids": [], "rewards": [], "loss_masks": []}
        rows["env_metrics"] = []
        columns = ("prompts", "env_classes", "env_extras", "trajectory_ids")
        for prompt, env_class, extras, tid in zip(*(batch[c] for c in columns), strict=True):
            env = self.gym.make(env_class, env_config=self.env_config, extras=extras)
            env.init(prompt)
            text = self.responses[tid.instance_id][tid.repetition_id]
            out = env.step(text + "<|im_end|>")
            assert out["done"]
            tokens = list(range(len(text) + 1))
            rewards = [0.0] * len(tokens)
            rewards[-1] = out["reward"]
            rows["response_ids"].append(tokens)
            rows["rewards"].append(rewards)
            rows["loss_masks"].append([1] * len(tokens))
            rows["env_metrics"].append(env.get_metrics())
            env.close()
        rows["trajectory_ids"] = None  # as SkyRL leaves it outside step-wise training
        return rows


def batch(rows: list[tuple[str, dict]], n: int, env_class: str = "rewardplug") -> dict[str, Any]:
    """``prepare_generator_input``'s layout: n rows per prompt, uid = instance_id."""
    out: dict[str, Any] = {"prompts": [], "env_classes": [], "env_extras": []}
    out["trajectory_ids"] = []
    for uid, extras in rows:
        for r in range(n):
            out["prompts"].append([{"role": "user", "content": f"prompt {uid}"}])
            out["env_classes"].append(env_class)
            out["env_extras"].append(dict(extras))
            out["trajectory_ids"].append(TrajectoryID(uid, r))
    return out


def test_env_scores_each_trajectory_alone(gym, stack_file):
    env = gym.make("rewardplug", env_config={}, extras={"reward_spec": {"ground_truth": "x"}})
    env.init([{"role": "user", "content": "q"}])
    out = env.step("x" * 7 + "<|im_end|>")
    assert out["reward"] == 7.0 and out["done"] and out["observations"] == []
    metrics = env.get_metrics()
    assert metrics["rewardplug_reward_mask"] == 1.0
    assert metrics[skyrl.RECORD]["sample"]["reference"] == "x"
    # SkyRL averages environment metrics per step: the record is not a number and is left out
    assert env.aggregate_metrics([metrics, metrics]) == {"rewardplug_reward_mask": 1.0}


def test_grouped_generator_discretizes_each_uid_group(gym, stack_file):
    responses = {"a": ["x" * 10, "x" * 11, "x" * 30], "b": ["x" * 5, "x" * 11, "x" * 40]}
    generator = skyrl.GroupedGenerator(Generator(gym, responses))
    assert generator.name == "stand-in"  # the wrapped generator's attributes
    out = asyncio.run(generator.generate(batch([("a", {}), ("b", {})], 3)))
    final = [r[-1] for r in out["rewards"]]
    assert final[:3] == pytest.approx([10.5, 10.5, 30.0])  # one group, tied
    assert final[3:] == [5.0, 11.0, 40.0]
    assert all(sum(r) == r[-1] for r in out["rewards"])  # still token-level, on the last token
    assert all(all(m) for m in out["loss_masks"])
    json.dumps(out["env_metrics"])  # SkyRL may dump environment metrics as JSONL


def test_zero_reward_on_non_stop_stays_zero(gym, stack_file):
    class Truncating(Generator):
        generator_cfg = SimpleNamespace(zero_reward_on_non_stop=True)

        async def generate(self, batch: dict[str, Any]) -> dict[str, Any]:
            out = await super().generate(batch)
            out["stop_reasons"] = ["stop", "length"]
            out["rewards"][1] = [0.0] * len(out["rewards"][1])  # what SkyRL does to "length"
            return out

    generator = skyrl.GroupedGenerator(Truncating(gym, {"a": ["x" * 3, "x" * 20]}))
    out = asyncio.run(generator.generate(batch([("a", {})], 2)))
    assert [r[-1] for r in out["rewards"]] == [3.0, 0.0]


def test_abstention_zeroes_the_loss_mask(gym, tmp_path, monkeypatch, caplog):
    path = tmp_path / "ref.yaml"
    path.write_text(REF_ONLY)
    monkeypatch.setenv(skyrl.STACK_ENV, str(path))
    responses = {"a": ["has x", "no"], "b": ["p", "q"]}
    generator = skyrl.GroupedGenerator(Generator(gym, responses, {"abstain_reward": -1.0}))
    rows = [("a", {"reward_spec": {"ground_truth": "x"}}), ("b", {})]  # b: no reference
    with caplog.at_level(logging.WARNING, logger="rewardplug.integrations.skyrl"):
        out = asyncio.run(generator.generate(batch(rows, 2)))
    assert [r[-1] for r in out["rewards"]] == [1.0, 0.0, -1.0, -1.0]
    assert [sum(m) > 0 for m in out["loss_masks"]] == [True, True, False, False]
    assert [m["rewardplug_reward_mask"] for m in out["env_metrics"]] == [1.0, 1.0, 0.0, 0.0]
    assert "fill value -1.0" in caplog.text
    verl.clear_cache()


def test_other_environments_and_response_level_rewards(gym, stack_file):
    output = {
        "response_ids": [[1], [2], [3]],
        "rewards": [0.5, 0.7, 3.0],
        "loss_masks": [[1], [1], [1]],
        "env_metrics": [{"acc": 1.0}, {}, {}],  # another environment's rows stay as they are
    }
    assert skyrl.regroup(output, ["u", "u", "v"])["rewards"] == [0.5, 0.7, 3.0]

    class NoIds:
        async def generate(self, batch: dict[str, Any]) -> dict[str, Any]:
            return {**output, "trajectory_ids": None}

    with pytest.raises(ValueError, match="trajectory ids"):
        asyncio.run(skyrl.GroupedGenerator(NoIds()).generate({"trajectory_ids": None}))


def test_fields_from_env_extras():
    s = skyrl.skyrl_sample(
        [{"role": "user", "content": "Add."}],
        "def f(): pass<|im_end|>",
        {
            "reward_spec": {"method": "rule", "ground_truth": {"answer": 3}},
            "extra_info": {"tests": '{"kind": "call"}', "split": "train"},
            "max_turns": 1,
        },
    )
    assert s.response == "def f(): pass" and s.reference == '{"answer": 3}'
    assert s.tests == {"kind": "call"} and s.metadata == {"split": "train"}
