"""The rubric source inside a real stack, loaded by its registered name; and the GSM8K data."""

from __future__ import annotations

import pytest

import rewardplug
from rewardplug.types import Sample

STACK = """
sources:
  - name: math
    use: rubric
    with:
      rubric: math_solution
discretize: {enabled: true, confidence: 0.9, assign: mean}
"""


def test_stack_from_yaml_scores_and_ties(tmp_path):
    path = tmp_path / "stack.yaml"
    path.write_text(STACK)
    stack = rewardplug.load_stack(path)
    ref = "#### 18"
    rewards = stack.score(
        [
            Sample(group="g", response="16 - 7 = 9\n9 * 2 = 18\nA: 18", reference=ref),
            Sample(
                group="g",
                response="9 * 2 = 18. Then 18 + 0 = 18.\nThe answer is 18",
                reference=ref,
            ),
            Sample(group="g", response="18", reference=ref),
            Sample(group="g", response="16 - 3 = 13\n13 * 2 = 26\nA: 26", reference=ref),
        ]
    )
    assert [r.raw for r in rewards] == pytest.approx([1.0, 1.0, 0.5, 0.0])
    assert rewards[0].tier == rewards[1].tier == 0 and rewards[3].tier == 2
    assert rewards[0].sources["math"].detail["rubric"] == "math_solution"


def test_invalid_rubric_fails_at_stack_load():
    bad = {
        "sources": [
            {"name": "r", "use": "rubric",
             "with": {"rubric": {"criteria": [{"id": "x", "weight": 1, "check": {"kind": "regex", "pattern": "["}}]}}}
        ]
    }  # fmt: skip
    with pytest.raises(rewardplug.StackError) as info:
        rewardplug.load_stack(bad)
    assert "criteria[0] (id 'x'): check.pattern: invalid regular expression" in str(info.value)


def test_example_stacks_load():
    from rewardplug.paths import examples_dir

    for name in ("math.yaml", "chat.yaml"):
        stack = rewardplug.load_stack(examples_dir() / "stacks" / name)
        assert any(type(s).__name__ == "RubricSource" for s in stack.sources.values())


@pytest.mark.slow
def test_math_rubric_on_gsm8k_solutions(shared_data):
    from rewardplug_rubric.evaluate import run

    (shipped, *_rest) = run(
        shared_data / "gsm8k" / "example_model_solutions.jsonl", limit=100, n_boot=0
    )
    assert shipped["abstained"] == 0
    assert shipped["raw"]["discriminative_ability"] > 0.95
    assert shipped["raw"]["specificity"] > 0.95
