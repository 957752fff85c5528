"""What raising ``confidence`` does to tiers (rule ``different``), as docs/discretizer.md says:
tiers never multiply and boundaries only move down -- but a pair that shared a tier can be split,
so specificity (and DA) are not monotone in confidence."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from rewardplug import discretize
from rewardplug.metrics import evaluate


def _boundaries(tier: np.ndarray) -> list[int]:
    """How many samples lie above each tier boundary (tiers are contiguous in the ranking)."""
    return [int((tier < k).sum()) for k in range(1, int(tier.max()) + 1)]


@settings(max_examples=300, deadline=None)
@given(
    rows=st.lists(st.lists(st.integers(0, 6), min_size=1, max_size=6), min_size=1, max_size=8),
    low=st.floats(0.5, 0.99),
    step=st.floats(0.001, 0.5),
    method=st.sampled_from(["exact", "gaussian"]),
)
def test_a_higher_confidence_never_adds_a_tier_and_only_moves_boundaries_down(
    rows, low, step, method
):
    k = max(len(r) for r in rows)
    draws = np.array([r * (k // len(r)) + r[: k % len(r)] for r in rows], dtype=float)
    groups = np.zeros(len(rows), dtype=object)
    high = min(low + step, 1.0)
    a = discretize(draws, groups, confidence=low, method=method)
    b = discretize(draws, groups, confidence=high, method=method)
    assert b.n_tiers[0] <= a.n_tiers[0]
    assert set(np.flatnonzero(a.tier == 0)) <= set(np.flatnonzero(b.tier == 0))
    before, after = _boundaries(a.tier), _boundaries(b.tier)
    assert all(x >= y for x, y in zip(after, before, strict=False))


def test_specificity_and_da_can_both_fall_when_confidence_rises():
    """The documented example: test_cases' Beta posteriors of a correct answer (5/5) and two
    wrong ones (4/5, 3/5). At 0.8 the wrong ones share a tier; at 0.9 4/5 joins the correct one
    and 3/5 is left alone."""
    rng = np.random.default_rng(2)
    draws = np.stack([rng.beta(p + 0.5, 5 - p + 0.5, 4000) for p in (5, 4, 3)])
    groups = np.zeros(3, dtype=object)
    gold = [1, 0, 0]
    at = {}
    for confidence in (0.8, 0.9):
        result = discretize(draws, groups, confidence=confidence)
        at[confidence] = (result.tier.tolist(), evaluate(result.reward, gold, groups, n_boot=0))
    assert at[0.8][0] == [0, 1, 1] and at[0.9][0] == [0, 0, 1]
    assert at[0.8][1]["specificity"] == 1.0 and at[0.9][1]["specificity"] == 0.0
    assert at[0.8][1]["discriminative_ability"] == 1.0
    assert at[0.9][1]["discriminative_ability"] == 0.5


def test_confidence_a_hair_below_one_is_answered_at_once_and_exactly():
    """z for 1 - 2**-53 was found by stepping z one ulp at a time from ndtri: ~10^13 steps, which
    hung a CI run inside the property test above. It is now the exact smallest z, at once."""
    from scipy.special import ndtr

    from rewardplug.pairs import z_threshold

    for confidence in (1 - 2**-53, 1 - 2**-50, 1.0, 0.999999, 0.9, 0.5):
        z = z_threshold(confidence)
        assert ndtr(z) >= confidence
        assert z == 0.0 or ndtr(np.nextafter(z, -np.inf)) < confidence
    draws = np.array([[0.0, 1.0, 2.0], [50.0, 51.0, 52.0], [50.0, 51.0, 52.5]])
    result = discretize(draws, np.zeros(3, dtype=object), confidence=1 - 2**-53, method="gaussian")
    assert result.tier.tolist() == [1, 0, 0]
