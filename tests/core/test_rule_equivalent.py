"""``discretize.rule: equivalent`` -- together only when confidently within ``margin`` -- against
a plain reference, next to the default rule."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import rewardplug
from rewardplug import discretize
from rewardplug.config import StackError
from tests.core.reference import pair_probability


def p_within(x, y, method, margin):
    return 1.0 - pair_probability(x, y, method, margin) - pair_probability(y, x, method, margin)


rows = st.lists(
    st.lists(st.floats(-3, 3, allow_nan=False, width=32), min_size=4, max_size=4),
    min_size=2,
    max_size=6,
)


@settings(max_examples=80, deadline=None)
@given(
    draws=rows,
    margin=st.sampled_from([0.1, 0.5, 2.0]),
    confidence=st.sampled_from([0.6, 0.9]),
    method=st.sampled_from(["exact", "gaussian"]),
)
def test_members_of_a_tier_are_confidently_within_the_margin(draws, margin, confidence, method):
    x = np.array(draws)
    res = discretize(x, ["g"] * len(x), confidence, method=method, margin=margin, rule="equivalent")
    mean = np.cumsum(np.sort(x, axis=1), axis=1)[:, -1] / x.shape[1]
    for i in range(len(x)):
        for j in range(len(x)):
            if i != j and res.tier[i] == res.tier[j] and mean[i] != mean[j]:
                assert p_within(x[i], x[j], method, margin) >= confidence - 1e-12
            if res.tier[i] < res.tier[j]:
                assert mean[i] >= mean[j]


def test_a_very_uncertain_source_keeps_its_responses_apart_under_equivalent():
    """Under `different`, wide draws collapse a group to one tier; `equivalent` does not merge
    what it cannot show to be equivalent."""
    rng = np.random.default_rng(0)
    draws = [(q + 3.0 * rng.standard_normal(16)).tolist() for q in (0.0, 1.0, 2.0, 3.0)]
    groups = ["g"] * 4
    assert discretize(draws, groups, 0.9).n_tiers == {"g": 1}
    assert discretize(draws, groups, 0.9, margin=0.5, rule="equivalent").n_tiers == {"g": 4}


def test_identical_and_near_identical_responses_merge_under_equivalent():
    draws = [[1.0, 1.01, 0.99], [1.0, 1.01, 0.99], [1.02, 1.0, 1.01], [5.0, 5.1, 4.9]]
    res = discretize(draws, ["g"] * 4, 0.9, margin=0.2, rule="equivalent")
    assert res.tier.tolist() == [1, 1, 1, 0]


def test_the_rule_is_validated_in_the_stack():
    base = {
        "sources": [
            {"name": "a", "use": "python", "with": {"function": "tests.core.rewards_fixture:noisy"}}
        ]
    }
    with pytest.raises(StackError, match="margin > 0"):
        rewardplug.load_stack({**base, "discretize": {"rule": "equivalent"}})
    with pytest.raises(StackError, match="rule"):
        rewardplug.load_stack({**base, "discretize": {"rule": "similar"}})
    stack = rewardplug.load_stack({**base, "discretize": {"rule": "equivalent", "margin": 0.5}})
    rewards = stack.score(
        [
            {"prompt": "p", "response": "a", "quality": 1.0},
            {"prompt": "p", "response": "b", "quality": 1.05},
            {"prompt": "p", "response": "c", "quality": 3.0},
        ]
    )
    assert [r.tier for r in rewards] == [1, 1, 0]
    with pytest.raises(ValueError, match="margin > 0"):
        discretize([[1.0], [2.0]], ["g", "g"], rule="equivalent")
