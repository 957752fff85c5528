"""A group's rewards do not depend on the rest of the batch -- bit for bit: not on other groups'
numbers of draws, not on their order, not on how the batch is padded."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

import rewardplug

STACK = {
    "sources": [
        {
            "name": "d",
            "use": "python",
            "with": {"function": "tests.core.rewards_fixture:given_draws"},
        },
        {
            "name": "len",
            "use": "python",
            "weight": 0.0,
            "with": {"function": "tests.core.rewards_fixture:strict_signature"},
        },
    ],
    "discretize": {"enabled": True, "confidence": 0.9},
}


def rows(group: str, draws: list[list[float]]) -> list[dict]:
    return [
        {"id": f"{group}-{i}", "group": group, "prompt": group, "response": f"r{i}", "draws": d}
        for i, d in enumerate(draws)
    ]


def rewards_of(stack, batch, group):
    return {
        r.id: (r.reward, r.tier, r.n_tiers, r.raw, r.std)
        for r in stack.score(batch)
        if r.group == group
    }


def test_the_issues_example_does_not_change_next_to_a_group_with_more_draws():
    stack = rewardplug.load_stack(STACK)
    target = rows("g", [[-0.4, 0.23, -0.07], [-0.22, -0.16, -0.09]])
    other = rows("h", [[0.1, 0.2, 0.3, 0.4, 0.5], [1.0, 1.1, 1.2, 1.3, 1.4]])
    alone = rewards_of(stack, target, "g")
    assert {v[2] for v in alone.values()} == {1}  # one tier alone
    assert rewards_of(stack, target + other, "g") == alone
    assert rewards_of(stack, other + target, "g") == alone


draws = st.lists(st.floats(-10, 10, allow_nan=False, width=32), min_size=1, max_size=8)


@settings(max_examples=60, deadline=None)
@given(
    target=st.lists(draws, min_size=1, max_size=5),
    others=st.lists(st.lists(draws, min_size=1, max_size=4), max_size=3),
    seed=st.integers(0, 1000),
)
def test_any_other_groups_leave_a_groups_rewards_bit_identical(target, others, seed):
    stack = rewardplug.load_stack(STACK)
    mine = rows("target", target)
    batch = list(mine)
    for j, group in enumerate(others):
        batch += rows(f"other{j}", group)
    random.Random(seed).shuffle(batch)
    assert rewards_of(stack, batch, "target") == rewards_of(stack, mine, "target")
