"""``noise: {std: X}`` gives a one-number source its known measurement noise as draws, seeded by
the sample alone; discretizing groups that have no uncertainty at all says so, once."""

from __future__ import annotations

import warnings

import pytest

import rewardplug

LENGTH = {
    "name": "len",
    "use": "python",
    "with": {"function": "tests.core.rewards_fixture:strict_signature"},
}


def rows(*responses, group="g"):
    return [{"prompt": group, "response": r, "gold": "x"} for r in responses]


def test_noise_ties_close_one_number_scores_and_keeps_far_ones_apart():
    plain = rewardplug.load_stack({"sources": [LENGTH]})
    noisy = rewardplug.load_stack({"sources": [{**LENGTH, "noise": {"std": 1.0}}]})
    batch = rows("aaaa", "aaaaa", "a" * 40)
    with pytest.warns(UserWarning, match="single draw"):
        before = plain.score(batch)
    assert [r.n_tiers for r in before] == [3, 3, 3]  # no uncertainty: nothing ever ties
    after = noisy.score(batch)
    assert after[0].tier == after[1].tier != after[2].tier
    assert after[0].sources["len"].detail["noise_std"] == 1.0
    assert len(after[0].sources["len"].draws) == 32


def test_noise_draws_depend_on_the_sample_only():
    noisy = rewardplug.load_stack({"sources": [{**LENGTH, "noise": {"std": 0.5, "draws": 8}}]})
    alone = noisy.score(rows("abc"))[0].sources["len"].draws
    mixed = noisy.score(rows("zz", "abc", "q" * 9))[1].sources["len"].draws
    assert alone == mixed and len(alone) == 8


def test_no_uncertainty_warning_comes_once_per_stack():
    stack = rewardplug.load_stack({"sources": [LENGTH]})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        stack.score(rows("a", "bb"))
        stack.score(rows("a", "bb"))
    assert sum("single draw" in str(w.message) for w in caught) == 1


def test_noise_is_validated():
    with pytest.raises(rewardplug.StackError, match="std"):
        rewardplug.load_stack({"sources": [{**LENGTH, "noise": {"std": 0}}]})
