"""A group's rewards do not depend on the rest of the batch -- bit for bit: not on other groups'
numbers of draws, not on their order, not on how the batch is padded."""

from __future__ import annotations

import random

import numpy as np
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


@settings(max_examples=60, deadline=None)
@given(
    st.integers(0, 2**32 - 1),
    st.sampled_from(["exact", "gaussian"]),
    st.sampled_from(["different", "equivalent"]),
    st.booleans(),
)
def test_chunked_large_inputs_equal_one_pass(seed, method, rule, with_values):
    """Inputs above the chunk size are discretized in chunks of whole groups: exactly the
    result of one pass (labels interleaved, groups of mixed sizes, abstentions, a group larger
    than a chunk)."""
    import importlib

    D = importlib.import_module("rewardplug.discretizer")

    rng = np.random.default_rng(seed)
    sizes = [*rng.integers(1, 12, size=25).tolist(), 40]
    labels = np.array([f"g{i}" for i, size in enumerate(sizes) for _ in range(size)], dtype=object)
    rng.shuffle(labels)
    n = len(labels)
    draws = rng.normal(0, 1, size=(n, 6)) + rng.integers(0, 3, size=(n, 1))
    draws[rng.random(n) < 0.05] = np.nan
    values = draws.mean(axis=1) + 0.01 if with_values else None
    kw = dict(method=method, rule=rule, margin=0.3 if rule == "equivalent" else 0.0)
    whole = D.discretize(draws, labels, 0.8, values=values, **kw)
    small = (D._CHUNK_SAMPLES, D._CHUNK_PAIRS)
    try:
        D._CHUNK_SAMPLES, D._CHUNK_PAIRS = 20, 150
        chunked = D.discretize(draws, labels, 0.8, values=values, **kw)
    finally:
        D._CHUNK_SAMPLES, D._CHUNK_PAIRS = small
    assert np.array_equal(whole.tier, chunked.tier)
    assert np.array_equal(whole.reward, chunked.reward, equal_nan=True)
    assert whole.n_tiers == chunked.n_tiers
