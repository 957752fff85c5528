"""The shared discretizer: agreement with the plain reference, and every property DESIGN lists."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from rewardplug import discretize
from tests.core.reference import reference_discretize

METHODS = ["exact", "gaussian"]


def random_batch(rng, n_groups, max_size, k, spread=1.0):
    draws, groups = [], []
    for g in range(n_groups):
        size = int(rng.integers(1, max_size + 1))
        centers = rng.integers(0, 4, size=size) * spread
        for c in centers:
            draws.append(c + rng.normal(0, rng.uniform(0.05, 1.5), size=k))
            groups.append(f"g{g}")
    return np.array(draws), groups


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("assign", ["mean", "rank", "binary"])
@pytest.mark.parametrize("seed", range(4))
def test_fast_path_agrees_with_reference(method, assign, seed):
    rng = np.random.default_rng(seed)
    draws, groups = random_batch(rng, n_groups=40, max_size=9, k=int(rng.integers(1, 12)))
    conf = float(rng.choice([0.6, 0.8, 0.9, 0.99]))
    fast = discretize(draws, groups, confidence=conf, assign=assign, method=method)
    tier, reward, n_tiers = reference_discretize(list(draws), groups, conf, assign, method=method)
    np.testing.assert_array_equal(fast.tier, tier)
    np.testing.assert_allclose(fast.reward, reward)
    assert fast.n_tiers == n_tiers


@pytest.mark.parametrize("method", METHODS)
def test_margin_and_ragged_draws_agree_with_reference(method):
    rng = np.random.default_rng(7)
    rows = [
        list(rng.normal(rng.integers(0, 3), 0.5, size=int(rng.integers(1, 9)))) for _ in range(60)
    ]
    rows[5] = None  # abstains
    groups = [f"g{i % 7}" for i in range(60)]
    fast = discretize(rows, groups, confidence=0.8, method=method, margin=0.3)
    tier, reward, n_tiers = reference_discretize(rows, groups, 0.8, method=method, margin=0.3)
    np.testing.assert_array_equal(fast.tier, tier)
    np.testing.assert_allclose(fast.reward, reward)
    assert fast.n_tiers == n_tiers
    assert fast.tier[5] == -1 and np.isnan(fast.reward[5])


@pytest.mark.parametrize("k", [1, 5, 127, 128, 300])
@pytest.mark.parametrize("margin", [0.0, 0.25])
def test_exact_pair_probabilities_equal_brute_force(k, margin):
    """Every P(R_i - R_j > margin) of the exact path equals counting all draw pairs, across the
    count types it picks by K (int8 up to 127 draws, int16 above), with ties and NaN padding."""
    from rewardplug.pairs import p_exact
    from tests.core.reference import pair_probability

    rng = np.random.default_rng(k)
    n, g = 3, 5
    mat = np.round(rng.normal(size=(n, g, k)), 1)  # rounding makes ties common
    lengths = rng.integers(1, k + 1, size=(n, g))
    lengths[0] = k
    for a in range(n):
        for b in range(g):
            mat[a, b, lengths[a, b] :] = np.nan
    mat = np.sort(mat, axis=2)  # the fast path sees each row's draws sorted, NaN last
    got = p_exact(mat, lengths, margin)
    for a in range(n):
        for i in range(g):
            for j in range(g):
                x, y = mat[a, i, : lengths[a, i]], mat[a, j, : lengths[a, j]]
                assert got[a, i, j] == pytest.approx(pair_probability(x, y, "exact", margin))


@pytest.mark.parametrize("margin", [0.0, 0.15])
@pytest.mark.parametrize(("g", "k"), [(64, 4), (70, 9), (130, 2)])
def test_exact_pair_probabilities_in_large_groups_equal_brute_force(g, k, margin):
    """Groups of 64 and more take the blocked running count: still every draw pair counted, with
    ties, NaN padding and block boundaries that do not fall on a group's length."""
    from rewardplug.pairs import p_exact

    rng = np.random.default_rng(g * k)
    n = 2
    mat = np.round(rng.normal(size=(n, g, k)), 1)
    lengths = rng.integers(1, k + 1, size=(n, g))
    for a in range(n):
        for b in range(g):
            mat[a, b, lengths[a, b] :] = np.nan
    mat = np.sort(mat, axis=2)
    got = p_exact(mat, lengths, margin)
    x, y = mat[:, :, None, :, None], mat[:, None, :, None, :]
    with np.errstate(invalid="ignore"):
        pairs = np.sum(x - margin > y, axis=(3, 4))  # NaN compares False: padding never counts
    want = pairs / (lengths[:, :, None] * lengths[:, None, :])
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("shape", [(1, 256, 64), (3, 384, 65), (2, 1024, 200), (2, 300, 80)])
def test_running_count_equals_cumulative_sum(shape):
    """The blocked running count is numpy's cumulative sum exactly (int8 counts up to 127)."""
    from rewardplug.pairs import running_count

    rng = np.random.default_rng(sum(shape))
    a = (rng.random(shape) < 0.05).astype(np.int8)
    want = np.cumsum(a, axis=1, dtype=np.int8)
    running_count(a)
    np.testing.assert_array_equal(a, want)


@pytest.mark.parametrize("seed", range(3))
def test_best_first_order_equals_lexsort(seed):
    """The equal-size fast path orders exactly like lexsort: by group, best first, ties (signed
    zeros included) in input order; unequal sizes fall back to lexsort itself."""
    from rewardplug.blocks import best_first as _best_first

    rng = np.random.default_rng(seed)
    for equal_sizes in (True, False):
        for _ in range(100):
            n_groups, g = int(rng.integers(1, 20)), int(rng.integers(1, 9))
            labels = np.repeat(np.arange(n_groups), g)
            if not equal_sizes:
                labels = rng.integers(0, n_groups, size=n_groups * g)
            _, codes = np.unique(rng.permutation(labels), return_inverse=True)
            point = np.round(rng.normal(size=len(codes)), 1)
            point[::4] = -0.0
            point[1::4] = 0.0
            np.testing.assert_array_equal(_best_first(codes, point), np.lexsort((-point, codes)))


def test_exact_probability_counts_ties_as_not_greater():
    # identical single draws: never confidently different, even at confidence 0.5
    res = discretize([[1.0], [1.0], [0.0]], ["a"] * 3, confidence=0.5)
    assert res.tier.tolist() == [0, 0, 1]


def test_clear_example():
    # two clearly separated clusters with wide noise inside each
    rng = np.random.default_rng(0)
    draws = np.vstack([rng.normal(m, 0.05, 32) for m in (1.0, 1.01, 0.0, 0.02)])
    res = discretize(draws, ["q"] * 4, confidence=0.95)
    assert res.tier.tolist() == [0, 0, 1, 1]
    assert res.n_tiers == {"q": 2}
    assert res.reward[0] == res.reward[1] == pytest.approx(draws[:2].mean())


def test_rejects_bad_arguments():
    with pytest.raises(ValueError, match="confidence"):
        discretize([[1.0]], ["a"], confidence=0.4)
    with pytest.raises(ValueError, match="assign"):
        discretize([[1.0]], ["a"], assign="median")
    with pytest.raises(ValueError, match="group labels"):
        discretize([[1.0], [2.0]], ["a"])


# -- properties (hypothesis) -------------------------------------------------------------------

values = st.floats(-5, 5, allow_nan=False).map(lambda x: round(x, 2))


@st.composite
def batches(draw, max_k=6):
    k = draw(st.integers(1, max_k))
    n = draw(st.integers(1, 14))
    rows = [draw(st.lists(values, min_size=k, max_size=k)) for _ in range(n)]
    groups = [draw(st.sampled_from("abc")) for _ in range(n)]
    conf = draw(st.sampled_from([0.5, 0.7, 0.9, 0.99, 1.0]))
    method = draw(st.sampled_from(METHODS))
    return np.array(rows), groups, conf, method


SETTINGS = settings(max_examples=120, deadline=None)


@SETTINGS
@given(batches(), st.randoms(use_true_random=False))
def test_rewards_do_not_depend_on_sample_order(batch, rnd):
    draws, groups, conf, method = batch
    perm = list(range(len(groups)))
    rnd.shuffle(perm)
    a = discretize(draws, groups, conf, method=method)
    b = discretize(draws[perm], [groups[i] for i in perm], conf, method=method)
    np.testing.assert_allclose(b.reward, a.reward[perm])
    np.testing.assert_array_equal(b.tier, a.tier[perm])


@SETTINGS
@given(batches(), batches())
def test_groups_do_not_affect_each_other(batch, other):
    draws, groups, conf, method = batch
    alone = discretize(draws, groups, conf, method=method)
    o_draws, o_groups, _, _ = other
    if o_draws.shape[1] != draws.shape[1]:
        return
    both = discretize(
        np.vstack([draws, o_draws]), groups + [f"other-{g}" for g in o_groups], conf, method=method
    )
    np.testing.assert_allclose(both.reward[: len(groups)], alone.reward)


@SETTINGS
@given(batches(), st.sampled_from(["mean", "rank", "binary"]))
@example(  # found by hypothesis: equal means (-5.66 / 6) that differ in the last bit
    batch=(
        np.array([[0.0, 0.0, -1.09, -1.22, -0.35, -3.0], [0.0, 1.1, 2.95, -2.45, -2.3, -4.96]]),
        ["a", "a"],
        0.5,
        "exact",
    ),
    assign="mean",
)
def test_higher_mean_never_gets_lower_reward(batch, assign):
    draws, groups, conf, method = batch
    res = discretize(draws, groups, conf, assign=assign, method=method)
    mean = draws.mean(axis=1)
    # Means that agree to rounding are equal estimates (sums in another order differ in the last
    # bits: -5.66 / 6 two ways); the order is only promised where the means really differ.
    slack = 8 * np.finfo(float).eps * np.abs(draws).max(axis=1)
    for i in range(len(groups)):
        for j in range(len(groups)):
            if groups[i] == groups[j] and mean[i] > mean[j] + slack[i] + slack[j]:
                assert res.reward[i] >= res.reward[j]
                assert res.tier[i] <= res.tier[j]


@SETTINGS
@given(batches())
def test_identical_draws_share_a_tier(batch):
    draws, groups, conf, method = batch
    draws = np.vstack([draws, draws[:1]])  # a duplicate of the first sample, same group
    groups = [*groups, groups[0]]
    res = discretize(draws, groups, conf, method=method)
    assert res.tier[0] == res.tier[-1]
    assert res.reward[0] == res.reward[-1]


@SETTINGS
@given(batches(max_k=1))
def test_without_uncertainty_distinct_values_are_never_merged(batch):
    draws, groups, conf, method = batch
    res = discretize(draws, groups, conf, method=method)
    for i in range(len(groups)):
        for j in range(len(groups)):
            if groups[i] == groups[j] and draws[i, 0] != draws[j, 0]:
                assert res.tier[i] != res.tier[j]


@SETTINGS
@given(batches())
def test_tiers_are_complete_linkage_and_contiguous(batch):
    draws, groups, conf, method = batch
    res = discretize(draws, groups, conf, method=method)
    from tests.core.reference import pair_probability

    # the discretizer's own mean: sorted draws, summed left to right
    mean = np.cumsum(np.sort(draws, axis=1), axis=1)[:, -1] / draws.shape[1]
    for i in range(len(groups)):
        for j in range(len(groups)):
            if i == j or groups[i] != groups[j]:
                continue
            if mean[i] == mean[j]:
                # the documented rule: equal estimates always share a tier, even when their
                # draws are confidently different (tiers follow the estimate)
                assert res.tier[i] == res.tier[j]
            elif res.tier[i] == res.tier[j]:
                p = max(
                    pair_probability(draws[i], draws[j], method, 0.0),
                    pair_probability(draws[j], draws[i], method, 0.0),
                )
                assert p < conf
            if res.tier[i] < res.tier[j]:
                assert mean[i] >= mean[j]


@SETTINGS
@given(st.lists(values, min_size=1, max_size=5))
def test_a_group_of_one_is_its_own_tier(row):
    res = discretize([row], ["solo"], 0.9)
    assert res.tier.tolist() == [0]
    assert res.n_tiers == {"solo": 1}
    assert res.reward[0] == pytest.approx(np.mean(row))


@SETTINGS
@given(batches(), st.data())
def test_abstaining_samples_get_none_and_do_not_affect_others(batch, data):
    draws, groups, conf, method = batch
    extra = data.draw(st.integers(1, 3))
    rows = [list(r) for r in draws] + [None] * extra
    all_groups = groups + [data.draw(st.sampled_from("abc")) for _ in range(extra)]
    with_abstain = discretize(rows, all_groups, conf, method=method)
    without = discretize(draws, groups, conf, method=method)
    assert (with_abstain.tier[len(groups) :] == -1).all()
    assert np.isnan(with_abstain.reward[len(groups) :]).all()
    np.testing.assert_allclose(with_abstain.reward[: len(groups)], without.reward)


def test_package_level_function_works_in_any_import_order():
    """``rewardplug.discretize`` (contract) is the function whatever was imported before: the
    module is ``rewardplug.discretizer``, so importing it rebinds nothing."""
    import importlib

    import rewardplug

    module = importlib.import_module("rewardplug.discretizer")
    assert rewardplug.discretize is module.discretize
    res = rewardplug.discretize([[1.0], [0.0]], ["g", "g"], confidence=0.9, assign="mean")
    assert res.tier.tolist() == [0, 1]


def test_equal_estimates_share_a_tier_even_when_confidently_different():
    """A = [1] * 10 and B = [0] * 9 + [10] have the same mean, and P(A > B) = 0.9: the
    documented rule keeps them in one tier (docs/discretizer.md, "Equal estimates")."""
    a, b = [1.0] * 10, [0.0] * 9 + [10.0]
    from tests.core.reference import pair_probability

    assert pair_probability(np.array(a), np.array(b), "exact", 0.0) == pytest.approx(0.9)
    res = discretize([a, b, [5.0] * 10], ["g", "g", "g"], 0.9)
    assert res.tier.tolist() == [1, 1, 0]
    assert res.reward[0] == res.reward[1]


@pytest.mark.parametrize("g", [2, 7, 8, 9, 16, 33, 64, 65, 80])
def test_segment_equals_the_greedy_walk(g):
    """The split (bit words up to 64 samples a group, masks above) is the plain greedy walk: a
    sample opens a tier when it differs from any member of the current one, and the new tier
    starts at its first equal point estimate."""
    from rewardplug.pairs import segment

    rng = np.random.default_rng(g)
    n = 40
    upper = rng.random((n, g, g)) < rng.random((n, 1, 1)) * 0.5  # sparse to dense conflicts
    differ = np.triu(upper, 1)
    differ = differ | differ.transpose(0, 2, 1)
    point = -np.sort(rng.integers(0, max(2, g // 2), size=(n, g)), axis=1).astype(float)
    differ &= point[:, :, None] != point[:, None, :]
    got = segment(differ, point)
    for a in range(n):
        opens, start = {0}, 0
        for p in range(1, g):
            if differ[a, p, start:p].any():
                start = next(q for q in range(p + 1) if point[a, q] == point[a, p])
                opens.add(start)
        want = np.cumsum([q in opens for q in range(g)]) - 1
        np.testing.assert_array_equal(got[a], want)
