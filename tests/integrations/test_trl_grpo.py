"""A real TRL GRPOTrainer, 2 steps on CPU, rewarded by a python + test_cases stack."""

from __future__ import annotations

import json
import math

import pytest
import rp_test_rewards
from trl_helpers import grpo_config, tiny_model_and_tokenizer

from rewardplug import load_stack
from rewardplug.integrations.trl import trl_samples

pytest.importorskip("trl")

PROBLEMS = [
    ("Write a Python function add(a, b) that returns a + b.\n", "add", [[[1, 2], 3], [[-1, 1], 0]]),
    ("Write a Python function neg(x) that returns -x.\n", "neg", [[[3], -3], [[0], 0]]),
    ("Write a Python function sq(x) that returns x * x.\n", "sq", [[[3], 9], [[-2], 4]]),
    ("Write a Python function inc(x) that returns x + 1.\n", "inc", [[[1], 2], [[9], 10]]),
]


def dataset():
    from datasets import Dataset

    rows = []
    for prompt, entry, cases in PROBLEMS:
        tests = {
            "kind": "call",
            "entry_point": entry,
            "cases": [{"args": a, "expected": e} for a, e in cases],
        }
        # Nested specs go in as JSON strings (Arrow would coerce ragged structures).
        rows.append({"prompt": prompt, "tests": json.dumps(tests)})
    return Dataset.from_list(rows)


@pytest.mark.slow
def test_grpo_trainer_two_steps_with_sync_and_async_stack_rewards(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("WANDB_DISABLED", "true")
    from trl import GRPOTrainer

    stack = load_stack(
        {
            "sources": [
                {
                    "name": "len",
                    "use": "python",
                    "weight": 0.5,
                    "with": {"function": "rp_test_rewards:recording_length"},
                },
                {
                    "name": "tests",
                    "use": "test_cases",
                    "with": {"workers": 1, "timeout_s": 2, "draws": 16},
                },
            ],
        }
    )
    rp_test_rewards.CALLS.clear()
    corpus = [p for p, _, _ in PROBLEMS] + ["def add(a, b):\n    return a + b\n", "print('ok')"]
    model, tokenizer = tiny_model_and_tokenizer(corpus)
    args = grpo_config(tmp_path, max_completion_length=24)
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=[stack.as_trl_reward("stack"), stack.as_async_trl_reward("stack_async")],
        args=args,
        train_dataset=dataset(),
        processing_class=tokenizer,
    )
    trainer.train()
    stack.close()

    assert trainer.state.global_step == 2
    logs = [entry for entry in trainer.state.log_history if "reward" in entry]
    assert len(logs) == 2
    for entry in logs:
        assert math.isfinite(entry["reward"])
        for fn in ("stack", "stack_async"):
            # Per-source means reach TRL's logs next to TRL's own per-function mean.
            assert 0.0 <= entry[f"rewards/{fn}/tests/mean"] <= 1.0
            assert entry[f"rewards/{fn}/len/mean"] > 0.0
            assert 1.0 <= entry[f"rewards/{fn}/n_tiers/mean"] <= 4.0
            assert entry[f"rewards/{fn}/abstained"] == 0.0
            assert math.isfinite(entry[f"rewards/{fn}/mean"])
    # Lengths differ by far more than the test posterior's spread, so groups split into tiers
    # and GRPO gets advantages (a fully tied group would give zero gradient).
    assert max(entry["rewards/stack/n_tiers/mean"] for entry in logs) > 1.0
    assert max(entry["grad_norm"] for entry in logs) > 0.0
    # Both functions saw every completion; TRL repeats each prompt num_generations times in a
    # row, so each call holds 2 prompts x 4 completions: two groups of 4.
    assert len(rp_test_rewards.CALLS) == 4
    for prompts in rp_test_rewards.CALLS:
        assert len(prompts) == 8
        groups = {s.group for s in trl_samples(prompts, ["x"] * 8)}
        assert len(groups) == 2
        assert prompts[:4] == [prompts[0]] * 4 and prompts[4:] == [prompts[4]] * 4


def test_trl_samples_columns_and_groups():
    tests = {"kind": "call", "entry_point": "f", "cases": [{"args": [1], "expected": 1}]}
    samples = trl_samples(
        ["a", "a", "b", "a"],
        [[{"role": "assistant", "content": "x"}], "y", "z", "w"],
        tests=[json.dumps(tests), tests, None, None],
        reference=["1", "1", "2", "1"],
        gold=[1, 0, 1, 0],
        trainer_state=object(),
        log_metric=print,
        completion_ids=[[1], [2], [3], [4]],
    )
    assert [s.response for s in samples] == ["x", "y", "z", "w"]
    assert samples[0].tests == tests and samples[1].tests == tests
    assert samples[0].reference == "1" and samples[2].metadata == {"gold": 1}
    # Runs of equal prompts are groups; "a" coming back after "b" is a new group.
    assert samples[0].group == samples[1].group
    assert len({samples[1].group, samples[2].group, samples[3].group}) == 3
    assert (
        "trainer_state" not in samples[0].metadata and "completion_ids" not in samples[0].metadata
    )
    with pytest.raises(ValueError, match="not a JSON object"):
        trl_samples(["a"], ["x"], tests=["{bad"])


def test_log_hooks_receive_per_source_means():
    stack = load_stack(
        {
            "sources": [
                {"name": "len", "use": "python", "with": {"function": "rp_test_rewards:length"}},
                {
                    "name": "ref",
                    "use": "python",
                    "with": {"function": "rp_test_rewards:contains_reference"},
                },
            ],
            # "ref" abstains on the row without a reference; "len" still scores it
            "on_abstain": "renormalize",
        }
    )
    metrics: dict[str, float] = {}
    extra: dict[str, list] = {}
    fn = stack.as_trl_reward("rp")
    out = fn(
        prompts=["p"] * 3,
        completions=["ab", "abcd", "abcdef"],
        reference=["cd", "cd", None],
        log_metric=metrics.__setitem__,
        log_extra=extra.__setitem__,
    )
    assert len(out) == 3 and fn.__name__ == "rp"
    assert metrics["rewards/rp/len/mean"] == pytest.approx(4.0)
    assert metrics["rewards/rp/ref/mean"] == pytest.approx(0.5)  # the None row is left out
    assert metrics["rewards/rp/abstained"] == 0.0  # renormalized: "len" still scored it
    assert extra["rp/ref"] == [0.0, 1.0, None]
    assert extra["rp/tier"] == [2, 1, 0]


def test_async_reward_function_matches_sync():
    import asyncio
    import inspect

    stack = load_stack(
        {
            "sources": [
                {
                    "name": "len",
                    "use": "python",
                    "with": {"function": "rp_test_rewards:noisy_length"},
                }
            ]
        }
    )
    kwargs = {
        "prompts": ["p"] * 4 + ["q"] * 2,
        "completions": ["a", "ab", "abcdefgh", "a", "x", "yyyyy"],
    }
    afn = stack.as_async_trl_reward()
    assert inspect.iscoroutinefunction(afn)
    assert asyncio.run(afn(**kwargs)) == stack.as_trl_reward()(**kwargs)
