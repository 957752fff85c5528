"""The example files: reward functions behave, configs point at real functions."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import yaml

from rewardplug import load_stack
from rewardplug.integrations import verl

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def load_rewards():
    spec = importlib.util.spec_from_file_location("rewards", EXAMPLES / "rewards.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_example_reward_functions():
    r = load_rewards()
    completions = ["so the answer is \\boxed{1,234}", "#### 12", "it is 12.0", "no idea", "x"]
    refs = ["1234", "12", "#### 12", "5", None]
    assert r.math_answer(completions, refs) == [1.0, 1.0, 1.0, 0.0, None]
    assert r.exact_match([" Paris. ", "paris", "Rome"], ["paris", "PARIS", None]) == [
        1.0,
        1.0,
        None,
    ]
    assert r.fenced_code(["```python\nx = 1\n```", "x = 1"]) == [1.0, 0.0]
    assert r.short_enough(["a" * 10, "a" * 15, "a" * 30], max_chars=10) == [1.0, 0.5, 0.0]
    # Chat-style completions (TRL conversational datasets) work too.
    assert r.math_answer([[{"role": "assistant", "content": "#### 7"}]], ["7"]) == [1.0]


def test_example_stack_and_verl_snippet(monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLES))
    stack = load_stack(
        {"sources": [{"name": "m", "use": "python", "with": {"function": "rewards:math_answer"}}]}
    )
    rewards = stack.score(
        [
            {"prompt": "2+2?", "response": "#### 4", "reference": "4"},
            {"prompt": "2+2?", "response": "#### 5", "reference": "4"},
        ]
    )
    assert [r.reward for r in rewards] == [1.0, 0.0]
    snippet = yaml.safe_load((EXAMPLES / "verl" / "reward.yaml").read_text())
    manager = snippet["reward"]["reward_manager"]
    assert manager["source"] == "importlib"
    assert manager["module"]["path"].endswith("rewardplug/integrations/verl.py")
    # the snippet's settings are accepted as they are (with a real stack path)
    kwargs = snippet["reward"]["custom_reward_function"]["reward_kwargs"]
    kwargs["stack"] = str(EXAMPLES / "stacks" / "code.yaml")
    built = getattr(verl, manager["name"])(config=snippet, tokenizer=None)
    assert built.group_size == snippet["actor_rollout_ref"]["rollout"]["n"] == 8
    assert built.timeout_s == 60.0 and built.abstain_reward == 0.0
