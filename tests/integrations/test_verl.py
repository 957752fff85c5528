"""verl custom reward functions: per-sample and batch, grouping, stack cache, real test_cases."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from rewardplug.integrations import verl, verl_common


@pytest.fixture
def stack_file(tmp_path):
    path = tmp_path / "verl_stack.yaml"
    path.write_text(
        "sources:\n"
        "  - name: len\n    use: python\n    with: {function: 'rp_test_rewards:noisy_length'}\n"
        "  - name: ref\n    use: python\n    weight: 0\n"
        "    with: {function: 'rp_test_rewards:contains_reference'}\n"
    )
    yield str(path)
    verl.clear_cache()


def test_compute_score_single_sample_is_its_own_group(stack_file):
    out = verl.compute_score("gsm8k", "x" * 7, "x", {"index": 3}, stack=stack_file)
    assert out == {
        "score": 7.0,
        "raw": 7.0,
        "tier": 0.0,
        "n_tiers": 1.0,
        "abstained": 0.0,
        "reward_mask": 1.0,
        "group_size": 1.0,
        "partial_group": 0.0,
        "src/len": 7.0,
        "src/ref": 1.0,
    }


def test_batch_groups_by_extra_info_index_and_ties_uncertain_scores(stack_file):
    # The call verl's batch reward manager makes: numpy object arrays and reward_kwargs.
    solutions = ["a" * 10, "a" * 11, "a" * 30, "b" * 10, "b" * 40, "b" * 41]
    extras = np.array([{"index": 0}] * 3 + [{"index": 1}] * 3, dtype=object)
    out = verl.compute_score_batch(
        data_sources=np.array(["d"] * 6, dtype=object),
        solution_strs=solutions,
        ground_truths=np.array(["a"] * 3 + ["zz"] * 3, dtype=object),
        extra_infos=extras,
        stack=stack_file,
    )
    assert [o["tier"] for o in out] == [1.0, 1.0, 0.0, 1.0, 0.0, 0.0]
    assert out[0]["score"] == out[1]["score"] == pytest.approx(10.5)  # not confidently different
    assert out[4]["score"] == out[5]["score"] == pytest.approx(40.5)
    assert [o["src/ref"] for o in out] == [1.0, 1.0, 1.0, 0.0, 0.0, 0.0]  # ground_truth = reference
    assert len({tuple(sorted(o)) for o in out}) == 1  # the same keys for every sample


def test_group_size_and_fallback_grouping(stack_file):
    solutions = ["a" * 5, "a" * 20, "a" * 5, "a" * 20]
    same = dict(
        data_sources=["d"] * 4, solution_strs=solutions, ground_truths=["g"] * 4, stack=stack_file
    )
    # No extra_info: one run of equal (data_source, ground_truth) -> one group of four.
    assert [o["n_tiers"] for o in verl.compute_score_batch(**same)] == [2.0] * 4
    # group_size=2 (verl's rollout.n): two groups of two.
    out = verl.compute_score_batch(**same, group_size=2)
    assert [o["tier"] for o in out] == [1.0, 0.0, 1.0, 0.0]
    with pytest.raises(ValueError, match="does not divide"):
        verl.compute_score_batch(**same, group_size=3)


def test_abstentions_get_the_fill_value(tmp_path):
    path = tmp_path / "ref_only.yaml"
    path.write_text(
        "sources:\n  - name: ref\n    use: python\n"
        "    with: {function: 'rp_test_rewards:contains_reference'}\n"
    )
    verl_common.warned.discard("fill")  # the one-time warnings of verl and its reward loop
    with pytest.warns(UserWarning, match=r"fill value -1.0 .*reward_mask = 0.0"):
        out = verl.compute_score_batch(
            ["d", "d"], ["has 42", "x"], ["42", None], stack=str(path), abstain_reward=-1.0
        )
    assert out[0]["score"] == 1.0 and out[0]["abstained"] == 0.0
    assert out[1]["score"] == -1.0 and out[1]["abstained"] == 1.0 and out[1]["tier"] == -1.0
    # the fill value reaches verl with a mask, never as a plain reward
    assert out[0]["reward_mask"] == 1.0 and out[1]["reward_mask"] == 0.0
    verl.clear_cache()


def test_stacks_are_cached_per_path(stack_file, tmp_path, monkeypatch):
    first = verl.get_stack(stack_file)
    assert verl.get_stack(stack_file) is first
    other = tmp_path / "other.yaml"
    other.write_text(Path(stack_file).read_text())
    assert verl.get_stack(str(other)) is not first
    monkeypatch.setenv(verl.STACK_ENV, stack_file)
    assert verl.get_stack() is first
    monkeypatch.delenv(verl.STACK_ENV)
    with pytest.raises(ValueError, match=r"reward_kwargs\.stack"):
        verl.compute_score("d", "x", "y")


def test_verl_samples_fields():
    tests = {"kind": "call", "entry_point": "f", "cases": [{"args": [1], "expected": 2}]}
    samples = verl.verl_samples(
        ["ds"],
        ["resp"],
        [{"answer": 3}],
        [{"question": "What?", "tests": json.dumps(tests), "split": "train", "index": np.int64(4)}],
    )
    s = samples[0]
    assert s.prompt == "What?" and s.tests == tests and s.reference == '{"answer": 3}'
    assert s.metadata == {"split": "train", "index": 4, "data_source": "ds"}
    with pytest.raises(ValueError, match="must match"):
        verl.verl_samples(["a"], ["x", "y"], ["g"])


@pytest.mark.slow
def test_batch_with_real_test_cases(tmp_path):
    path = tmp_path / "code.yaml"
    path.write_text(
        "sources:\n  - name: tests\n    use: test_cases\n    with: {workers: 1, timeout_s: 5}\n"
    )
    tests = json.dumps(
        {
            "kind": "call",
            "entry_point": "add",
            "cases": [{"args": [1, 2], "expected": 3}, {"args": [2, 2], "expected": 4}],
        }
    )
    solutions = [
        "```python\ndef add(a, b):\n    return a + b\n```",
        "```python\ndef add(a, b):\n    return a - b\n```",
        "```python\nimport sys\nsys.exit(0)\n```",
    ]
    out = verl.compute_score_batch(
        ["code"] * 3, solutions, [None] * 3, [{"index": 0, "tests": tests}] * 3, stack=str(path)
    )
    verl.clear_cache()
    assert out[0]["src/tests"] == 1.0 and out[0]["tier"] == 0.0
    assert out[1]["src/tests"] == 0.0 and out[2]["src/tests"] == 0.0
    assert out[0]["score"] > out[1]["score"]


def test_per_sample_and_positional_grouping_warn(stack_file, monkeypatch):
    monkeypatch.setattr(verl_common, "warned", set())
    with pytest.warns(UserWarning, match="tie-grouping does nothing"):
        verl.compute_score("gsm8k", "xx", "x", None, stack=stack_file)
    with pytest.warns(UserWarning, match="balance_batch"):
        verl.compute_score_batch(
            ["d"] * 2, ["a", "bb"], ["x"] * 2, None, stack=stack_file, group_size=2
        )


def test_batch_groups_by_uid_wherever_the_samples_are(stack_file):
    # balance_batch interleaves prompts; samples sharing a uid are still one group
    uids = ["a", "b", "a", "b"]
    out = verl.compute_score_batch(
        ["d"] * 4,
        ["x" * 10, "x" * 40, "x" * 11, "x" * 41],
        ["x"] * 4,
        [{"uid": u} for u in uids],
        stack=stack_file,
    )
    assert out[0]["score"] == out[2]["score"] and out[1]["score"] == out[3]["score"]
    assert [o["group_size"] for o in out] == [2.0] * 4


def test_every_result_flags_the_fields_a_source_needs_and_the_sample_lacks(tmp_path):
    path = tmp_path / "rubric_stack.yaml"
    path.write_text(
        "sources:\n"
        "  - name: len\n    use: python\n    with: {function: 'rp_test_rewards:noisy_length'}\n"
        "  - name: style\n    use: rubric\n"  # no rubric of its own: each sample must bring one
    )
    rubric = {
        "criteria": [
            {
                "id": "short",
                "text": "short",
                "weight": 1,
                "check": {"kind": "max_words", "value": 5},
            }
        ]
    }
    out = verl.compute_score_batch(
        ["d"] * 4,
        ["a b", "a b c d e f g", "a", "a b c"],
        ["g"] * 4,
        [
            {"index": 0, "rubric": rubric},
            {"index": 0, "rubric": rubric},
            {"index": 1},
            {"index": 1},
        ],
        stack=str(path),
    )
    assert [o["missing/style/rubric"] for o in out] == [0.0, 0.0, 1.0, 1.0]
    assert len({tuple(sorted(o)) for o in out}) == 1  # the same keys for every sample
    assert out[0]["src/style"] == 1.0 and out[1]["src/style"] == 0.0
    # the gap is never paid: the samples without a rubric are abstained on and masked
    assert [o["reward_mask"] for o in out] == [1.0, 1.0, 0.0, 0.0]
    verl.clear_cache()
