"""The discretizer's properties on the inputs an adversarial search uses: ragged K (K = 1 next to
K = 32), NaN/inf/huge/tiny values, groups of 1 and of 500, equal means -- both modes, both rules.
"""

from __future__ import annotations

import math

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rewardplug import discretize

value = st.one_of(
    st.floats(-5, 5, allow_nan=False, width=32),
    st.sampled_from([0.0, 1.0, -1.0, 1e-300, -1e-300, 5e-324, 1e300, -1e300, 1e308]),
)
row = st.one_of(
    st.lists(value, min_size=1, max_size=1),
    st.lists(value, min_size=2, max_size=32),
    st.just([float("nan")]),
    st.lists(value, min_size=1, max_size=4).map(lambda r: [*r, float("inf")]),
)


@st.composite
def batches(draw):
    n_groups = draw(st.integers(1, 4))
    rows, groups = [], []
    for g in range(n_groups):
        size = draw(st.sampled_from([1, 2, 3, 7]))
        base = draw(row)
        for _ in range(size):
            # equal means on purpose: often repeat the group's first row, sometimes reversed
            r = draw(st.one_of(st.just(base), st.just(base[::-1]), row))
            rows.append(list(r))
            groups.append(f"g{g}")
    return rows, groups


SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
MODES = st.sampled_from(["exact", "gaussian"])
RULES = st.sampled_from([("different", 0.0), ("equivalent", 0.5)])


def _check(rows, groups, method, rule, margin, confidence):
    res = discretize(rows, groups, confidence, method=method, rule=rule, margin=margin)
    n = len(rows)
    assert res.tier.shape == (n,) and res.reward.shape == (n,)
    for i, r in enumerate(rows):
        bad = any(math.isinf(x) for x in r) or all(math.isnan(x) for x in r)
        assert (res.tier[i] == -1) == bad, (i, r)
        if not bad:
            assert math.isfinite(res.reward[i])
    return res


@SETTINGS
@given(batches(), MODES, RULES, st.sampled_from([0.5, 0.9, 1.0]))
def test_no_crash_abstentions_exactly_where_due_and_finite_rewards(batch, method, rule, conf):
    rows, groups = batch
    _check(rows, groups, method, rule[0], rule[1], conf)


@SETTINGS
@given(batches(), batches(), MODES, RULES)
def test_a_group_is_bit_identical_next_to_any_other_groups(batch, others, method, rule):
    rows, groups = batch
    other_rows, other_groups = others
    alone = _check(rows, groups, method, *rule, 0.9)
    mixed = _check(other_rows + rows, [f"x{g}" for g in other_groups] + groups, method, *rule, 0.9)
    k = len(other_rows)
    assert mixed.tier[k:].tolist() == alone.tier.tolist()
    assert np.array_equal(mixed.reward[k:], alone.reward, equal_nan=True)


@SETTINGS
@given(batches(), MODES, RULES)
def test_identical_draws_in_any_order_share_a_tier(batch, method, rule):
    rows, groups = batch
    res = _check(rows, groups, method, *rule, 0.9)
    for i in range(len(rows)):
        for j in range(len(rows)):
            if groups[i] == groups[j] and sorted(rows[i]) == sorted(rows[j]) and res.tier[i] >= 0:
                assert res.tier[i] == res.tier[j]


def test_a_group_of_500_and_groups_of_one():
    rng = np.random.default_rng(0)
    rows = (rng.integers(0, 5, size=(500, 1)) + 0.3 * rng.standard_normal((500, 16))).tolist()
    rows += [[1.0], [2.0, 3.0]]
    groups = ["big"] * 500 + ["solo1", "solo2"]
    for method in ("exact", "gaussian"):
        res = discretize(rows, groups, 0.9, method=method)
        assert 2 <= res.n_tiers["big"] <= 10
        assert res.n_tiers["solo1"] == res.n_tiers["solo2"] == 1
        mean = np.array([np.mean(r) for r in rows[:500]])
        tiers = res.tier[:500]
        for t in range(res.n_tiers["big"] - 1):  # tiers are in order of the estimate
            assert mean[tiers == t].min() >= mean[tiers == t + 1].max()
