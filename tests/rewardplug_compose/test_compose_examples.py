"""The shaping, ensemble and steps example stacks validate and score real text offline."""

from __future__ import annotations

from pathlib import Path

import pytest

import rewardplug

STACKS = Path(__file__).resolve().parents[2] / "examples" / "stacks"

ROWS = [
    {
        "prompt": "A robe takes 2 bolts of blue fiber and half that much white fiber. How many bolts?",
        "response": "It takes 2/2 = 1 bolt of white fiber.\nSo it takes 2 + 1 = 3 bolts.\nA: 3",
        "reference": "It takes 2/2=<<2/2=1>>1 bolt of white fiber\nSo the total is 2+1=<<2+1=3>>3\nA: 3",
    },
    {
        "prompt": "A robe takes 2 bolts of blue fiber and half that much white fiber. How many bolts?",
        "response": "Blue is 100 meters long.\nSo 2 * 100 = 200 meters.\nA: 250",
        "reference": "It takes 2/2=<<2/2=1>>1 bolt of white fiber\nSo the total is 2+1=<<2+1=3>>3\nA: 3",
    },
]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["shaping.yaml", "ensemble.yaml", "steps.yaml"])
def test_example_stack_scores(name):
    pytest.importorskip("torch")
    with rewardplug.load_stack(STACKS / name) as stack:
        rewards = stack.score(ROWS)
        assert [r.status for r in rewards] == ["ok", "ok"]
        source = next(iter(stack.sources))
        scores = [r.sources[source] for r in rewards]
        assert all(s.std > 0 for s in scores)  # MC-dropout draws reach the reward
        assert scores[0].value > scores[1].value  # the right solution is closer to the reference
        if name == "shaping.yaml":
            assert [t["kind"] for t in scores[0].detail["transform"]] == ["par", "overlong"]
            assert 0 < scores[0].value < 1
        elif name == "ensemble.yaml":
            assert len(scores[0].draws) == 16
            assert set(scores[0].detail["members"]) == {"mean_pooled", "cls_token"}
        else:
            assert [s["text"] for s in scores[0].detail["steps"]] == ROWS[0]["response"].split("\n")
        # a row without a reference abstains with the reason instead of scoring 0
        mixed = stack.score([ROWS[0], {"prompt": ROWS[0]["prompt"], "response": "An answer."}])
        assert mixed[0].status == "ok"
        assert mixed[1].reward is None and "no reference" in mixed[1].reason
