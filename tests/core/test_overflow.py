"""Scores too large for floats, infinite draws and mixed group labels never pass as ok, never
vanish silently, and never crash with a bare error."""

from __future__ import annotations

import math

import numpy as np
import pytest

import rewardplug
from rewardplug.types import Score


@pytest.mark.parametrize(
    ("draws", "value"),
    [([1e308, 1e308], 1e308), ([1e308, -1e308], 0.0), ([0.1, 0.2, 0.3], 0.2)],
)
def test_finite_draws_have_a_finite_mean_and_spread(draws, value):
    score = Score(draws=draws)
    assert score.status == "ok"
    assert score.value == pytest.approx(value)
    assert math.isfinite(score.std)


def test_a_spread_beyond_the_float_range_abstains_with_a_reason():
    score = Score(draws=[1.7e308, -1.7e308])
    assert score.status == "abstain"
    assert "overflow" in score.reason


def test_the_discretizer_handles_huge_groups_without_changing_ordinary_ones():
    draws = [[1e308, 1e308], [1e307, 1e307], [1.0, 2.0], [1.1, 2.1]]
    result = rewardplug.discretize(draws, ["big", "big", "small", "small"])
    assert result.tier.tolist() == [0, 1, 0, 0]
    assert result.reward.tolist()[:2] == [1e308, 1e307]
    alone = rewardplug.discretize(draws[2:], ["small", "small"])
    assert result.reward.tolist()[2:] == alone.reward.tolist()  # bit for bit
    gaussian = rewardplug.discretize(
        [[1e308, -1e308, 1e308], [1e307, 1e307, 1e307]], ["g", "g"], method="gaussian"
    )
    assert np.isfinite(gaussian.reward).all() and gaussian.n_tiers == {"g": 1}
    # huge but confidently different: the spread must not overflow and merge them
    apart = rewardplug.discretize(
        [[1e308, 1e308, 0.99e308], [-1e308, -1e308, -0.99e308]], ["g", "g"], method="gaussian"
    )
    assert apart.tier.tolist() == [0, 1]


def test_an_infinite_draw_makes_its_row_abstain():
    result = rewardplug.discretize([[1.0, np.inf], [1.0, 1.1]], ["a", "a"])
    assert result.tier.tolist() == [-1, 0]
    assert math.isnan(result.reward[0])


def test_mixed_group_label_kinds_say_what_to_do():
    with pytest.raises(TypeError, match="group labels must be of one kind"):
        rewardplug.discretize([[1.0], [2.0]], [1, "1"])


def test_a_combined_score_that_overflows_abstains_in_the_stack():
    stack = rewardplug.load_stack(
        {
            "sources": [
                {
                    "name": "a",
                    "use": "python",
                    "with": {"function": "tests.core.test_overflow:huge"},
                },
                {
                    "name": "b",
                    "use": "python",
                    "with": {"function": "tests.core.test_overflow:huge"},
                },
            ]
        }
    )
    (reward,) = stack.score([{"prompt": "p", "response": "r"}])
    assert reward.status == "abstain" and reward.reward is None
    assert "not finite" in reward.reason


def huge(prompts, completions, **_):
    return [1.5e308 for _ in completions]


def test_metrics_order_tiny_rewards_instead_of_tying_them():
    report = rewardplug.evaluate([2e-10, 1e-10], [1, 0], ["g", "g"], n_boot=0)
    assert report["discriminative_ability"] == 1.0
    tied = rewardplug.evaluate([0.1 + 0.2, 0.3], [1, 1], ["g", "g"], n_boot=0)
    assert tied["specificity"] == 1.0  # float noise is still a tie


def test_unknown_combine_settings_are_errors_not_fallbacks():
    from rewardplug.combine import combine_scores

    with pytest.raises(ValueError, match="combine method"):
        combine_scores([], {}, {}, method="average")
    with pytest.raises(ValueError, match="on_abstain"):
        combine_scores([], {}, {}, on_abstain="skip")


@pytest.mark.parametrize("method", ["exact", "gaussian"])
def test_identical_draws_in_another_order_share_a_tier_even_at_confidence_one_half(method):
    # two orders of the same draws whose plain sums differ in the last bits
    draws = [
        200.2392583645255,
        0.00018851919251246558,
        -63.319409019222675,
        -377.5635052328082,
        -1091.1461176191954,
        -12.77680166386608,
        630.4114907682319,
        581.1658124128057,
    ]
    shuffled = [draws[i] for i in (7, 5, 6, 3, 0, 1, 4, 2)]
    assert sum(draws) != sum(shuffled)
    result = rewardplug.discretize([draws, shuffled], ["g", "g"], confidence=0.5, method=method)
    assert result.tier.tolist() == [0, 0]
    assert result.reward[0] == result.reward[1]
