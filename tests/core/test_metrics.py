"""Discriminative ability, specificity, accuracy and their bootstrap CIs."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rewardplug.metrics import evaluate


def brute_force(rewards, gold, groups):
    diff = ordered = equal = tied = 0
    for i, j in itertools.combinations(range(len(rewards)), 2):
        if groups[i] != groups[j] or rewards[i] is None or rewards[j] is None:
            continue
        if gold[i] == gold[j]:
            equal += 1
            tied += rewards[i] == rewards[j]
        else:
            diff += 1
            ordered += rewards[i] != rewards[j] and (rewards[i] > rewards[j]) == (gold[i] > gold[j])
    return diff, ordered, equal, tied


def test_hand_computed_example():
    # group a: gold 1,1,0 ; rewards 0.9,0.8,0.1 -> equal pair untied, both diff pairs ordered
    # group b: gold 2,0 ; rewards tie -> diff pair not ordered
    rewards = [0.9, 0.8, 0.1, 0.5, 0.5]
    gold = [1, 1, 0, 2, 0]
    groups = ["a", "a", "a", "b", "b"]
    m = evaluate(rewards, gold, groups, n_boot=0)
    assert m["discriminative_ability"] == pytest.approx(2 / 3)
    assert m["specificity"] == 0.0 and m["oversensitivity"] == 1.0
    assert m["accuracy"] == pytest.approx(2 / 4)
    assert (m["pairs_gold_differs"], m["pairs_gold_equal"]) == (3, 1)


def test_accuracy_is_the_weighted_sum_of_da_and_sp():
    rng = np.random.default_rng(1)
    gold = rng.integers(0, 3, 200)
    rewards = np.round(gold + rng.normal(0, 0.6, 200), 0)
    groups = np.repeat(np.arange(50), 4)
    m = evaluate(rewards, gold, groups, n_boot=0)
    n = m["pairs_gold_differs"] + m["pairs_gold_equal"]
    expected = (
        m["pairs_gold_differs"] * m["discriminative_ability"]
        + m["pairs_gold_equal"] * m["specificity"]
    ) / n
    assert m["accuracy"] == pytest.approx(expected)


@settings(max_examples=80, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from([0.0, 0.5, 1.0, None]), st.integers(0, 2), st.sampled_from("xyz")
        ),
        min_size=0,
        max_size=25,
    )
)
def test_vectorized_counts_match_brute_force(rows):
    rewards = [r for r, _, _ in rows]
    gold = [g for _, g, _ in rows]
    groups = [k for _, _, k in rows]
    m = evaluate(rewards, gold, groups, n_boot=0)
    diff, ordered, equal, tied = brute_force(rewards, gold, groups)
    assert (m["pairs_gold_differs"], m["pairs_gold_equal"]) == (diff, equal)
    if diff:
        assert m["discriminative_ability"] == pytest.approx(ordered / diff)
    if equal:
        assert m["specificity"] == pytest.approx(tied / equal)


def test_bootstrap_ci_brackets_the_point_estimate_and_narrows_with_data():
    rng = np.random.default_rng(0)

    def data(n_groups):
        gold = rng.integers(0, 2, n_groups * 4)
        rewards = gold + rng.normal(0, 0.8, n_groups * 4)
        return rewards, gold, np.repeat(np.arange(n_groups), 4)

    small = evaluate(*data(20), n_boot=500)
    large = evaluate(*data(400), n_boot=500)
    lo, hi = large["ci"]["discriminative_ability"]
    assert lo <= large["discriminative_ability"] <= hi
    width = lambda m: m["ci"]["discriminative_ability"][1] - m["ci"]["discriminative_ability"][0]  # noqa: E731
    assert width(large) < width(small)


def test_samples_without_reward_or_gold_are_excluded_and_counted():
    m = evaluate([1.0, None, 0.0, 0.5], [1, 1, 0, None], ["g"] * 4, n_boot=0)
    assert m["excluded_samples"] == 2 and m["pairs_gold_differs"] == 1


def test_format_metric_prints_the_value_with_its_ci_or_n_a():
    from rewardplug.metrics import evaluate, format_metric

    report = evaluate([0.9, 0.1, 0.5, 0.5], [1, 0, 1, 1], ["a", "a", "b", "b"], n_boot=50)
    assert format_metric(report, "discriminative_ability").startswith("1.000 [")
    assert format_metric({"specificity": None}, "specificity") == "n/a"
    assert format_metric({"accuracy": 0.25}, "accuracy") == "0.250"
