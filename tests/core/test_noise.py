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


def correlated(prompts, completions, **kwargs):
    """The same 16 draws for two sources: perfectly correlated measurement noise."""
    import numpy as np

    return [(1.0 + np.random.default_rng(len(c)).standard_normal(16)).tolist() for c in completions]


def test_paired_draws_keep_the_spread_of_correlated_sources():
    import numpy as np

    spec = {"use": "python", "with": {"function": "tests.core.test_noise:correlated"}}
    sources = [{"name": "a", **spec}, {"name": "b", **spec}]
    batch = [{"prompt": "p", "response": "x" * n} for n in range(1, 41)]
    spreads = {}
    for pairing in ("shuffled", "paired"):
        stack = rewardplug.load_stack({"sources": sources, "pairing": pairing})
        spreads[pairing] = np.mean([r.std for r in stack.score(batch)])
    truth = np.mean(
        [2 * np.std(correlated([], [b["response"]])[0], ddof=1) for b in batch]
    )  # a + b = 2a: twice each source's spread
    assert spreads["paired"] == pytest.approx(truth, rel=1e-9)
    assert spreads["shuffled"] < 0.8 * truth  # independent pairing shrinks it (about 0.71x)
