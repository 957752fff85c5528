"""The compiled discretizer (numba, the ``fast`` extra) gives the numpy path's results to the bit:
tiers, rewards and tier counts, on hostile inputs (ties, signed zeros, ragged and missing draws,
infinities, values near overflow, groups above the insertion-sort size, K above numpy's
pairwise-sum block), and ``backend`` picks, falls back and fails as documented."""

from __future__ import annotations

import importlib
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from rewardplug import discretize
from rewardplug.blocks import row_std, row_sum
from rewardplug.compiled_loader import LOADER, KernelLoader

pytest.importorskip(
    "numba", reason="the compiled kernels need numba: pip install 'rewardplug[fast]'"
)

D = importlib.import_module("rewardplug.discretizer")


def assert_same(a, b):
    assert np.array_equal(a.tier, b.tier)
    # bit for bit, NaN where abstained, and the sign of zero too
    assert np.array_equal(a.reward.view(np.int64), b.reward.view(np.int64))
    assert a.n_tiers == b.n_tiers


def both(draws, groups, confidence=0.9, **kw):
    fast = discretize(draws, groups, confidence, backend="numba", **kw)
    slow = discretize(draws, groups, confidence, backend="numpy", **kw)
    assert_same(fast, slow)
    return fast


value = st.one_of(
    st.floats(-3, 3, allow_nan=False).map(lambda x: round(x, 1)),  # ties are common
    st.sampled_from([0.0, -0.0, 1.0, 1e-300, 1e300, -1e300, 1.5e308]),
)


@st.composite
def batches(draw):
    k = draw(st.sampled_from([1, 2, 5, 16]))
    rows, groups = [], []
    for g in range(draw(st.integers(1, 5))):
        size = draw(st.sampled_from([1, 2, 3, 8, 33]))
        base = draw(st.lists(value, min_size=k, max_size=k))
        for _ in range(size):
            kinds = ["same", "reversed", "new", "short", "none", "inf", "-inf"]
            kind = draw(st.sampled_from(kinds))
            if kind == "same":
                row = list(base)
            elif kind == "reversed":
                row = base[::-1]
            elif kind == "new":
                row = draw(st.lists(value, min_size=k, max_size=k))
            elif kind == "short":  # ragged: NaN-padded
                row = draw(st.lists(value, min_size=1, max_size=k))
            elif kind == "none":
                row = None
            elif kind == "inf":
                row = [*base[:-1], float("inf")]
            else:
                row = [float("-inf"), *base[1:]]
            rows.append(row)
            groups.append(g)
    order = draw(st.permutations(range(len(rows))))
    return [rows[i] for i in order], [groups[i] for i in order]


SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(
    batches(),
    st.sampled_from(["exact", "gaussian"]),
    st.sampled_from(["mean", "rank", "binary"]),
    st.sampled_from([0.5, 0.7, 0.9, 1.0]),
    st.sampled_from([0.0, 0.25]),
)
def test_compiled_equals_numpy_on_hostile_batches(batch, method, assign, confidence, margin):
    rows, groups = batch
    both(rows, groups, confidence, assign=assign, method=method, margin=margin)


@SETTINGS
@given(batches(), st.sampled_from(["exact", "gaussian"]), st.data())
def test_compiled_equals_numpy_with_given_values(batch, method, data):
    """``values`` order the samples and make the rewards; equal values with different draws,
    and NaN values (abstentions), included."""
    rows, groups = batch
    values = data.draw(
        st.lists(
            st.one_of(st.sampled_from([0.0, 0.5, 1.0, float("nan")]), st.floats(-2, 2)),
            min_size=len(rows),
            max_size=len(rows),
        )
    )
    both(rows, groups, 0.8, values=np.array(values), method=method)


@pytest.mark.parametrize("method", ["exact", "gaussian"])
@pytest.mark.parametrize("in_order", [True, False])
def test_compiled_equals_numpy_on_large_chunked_inputs(method, in_order):
    """Above 65,536 samples both backends chunk (at different sizes): every group the same;
    groups of mixed sizes, some larger than the insertion-sort limit, string labels when shuffled."""
    rng = np.random.default_rng(3)
    sizes = rng.choice([1, 4, 16, 40], size=5000)
    labels = np.repeat(np.arange(len(sizes)), sizes)
    n = len(labels)
    draws = np.round(rng.normal(0, 0.5, size=(n, 8)) + rng.integers(0, 4, size=(n, 1)), 1)
    draws[rng.random(n) < 0.01, 3:] = np.nan
    if not in_order:
        perm = rng.permutation(n)
        labels, draws = np.array([f"q{x}" for x in labels[perm]], dtype=object), draws[perm]
    assert n > D._COMPILED_CHUNK_SAMPLES
    both(draws, labels, 0.9, method=method)


@pytest.mark.parametrize("k", [127, 128, 129, 300, 1031])
def test_row_stats_sum_in_numpys_order(k):
    """Means and spreads above numpy's pairwise block of 128 (its halving), with padding."""
    from rewardplug import compiled

    rng = np.random.default_rng(k)
    mat = rng.normal(size=(400, k)) * rng.lognormal(0, 3, size=(400, k)) + 100.0
    counts = rng.integers(0, k + 1, size=400)
    for r, c in enumerate(counts):
        mat[r, c:] = np.nan
    mat = np.sort(mat, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = row_sum(mat, counts) / counts
        spread = row_std(mat, mean, counts)
    got_mean, got_spread = compiled.row_stats(mat, counts)
    assert np.array_equal(got_mean, mean, equal_nan=True)
    assert np.array_equal(got_spread, spread, equal_nan=True)


@example(size=200)
@given(st.integers(33, 90))
@settings(max_examples=10, deadline=None)
def test_large_groups_sort_stably(size):
    """Groups above 32 take numba's merge sort: ties in the point estimate still end in one tier."""
    rng = np.random.default_rng(size)
    draws = np.round(rng.normal(0, 1, size=(size, 4)), 0)
    both(draws, np.zeros(size, dtype=int), 0.9, method="gaussian")
    both(draws, np.zeros(size, dtype=int), 0.9, method="exact", margin=0.5)


def test_auto_compiles_only_large_inputs():
    assert LOADER.wait(600)  # compiled (or loaded from numba's cache) in the background
    assert D._kernels("auto", D._COMPILED_MIN_SAMPLES - 1) is None
    assert D._kernels("auto", D._COMPILED_MIN_SAMPLES).__name__ == "rewardplug.compiled"
    assert D._kernels("numpy", 10**7) is None
    assert D._kernels("numba", 1).__name__ == "rewardplug.compiled"
    with pytest.raises(ValueError, match="backend must be"):
        discretize([[1.0]], ["a"], backend="cuda")


def test_without_numba_auto_falls_back_and_numba_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "numba", None)  # import numba -> ImportError
    monkeypatch.delitem(sys.modules, "rewardplug.compiled", raising=False)
    loader = KernelLoader()  # a loader of its own: the failure it remembers goes with it
    monkeypatch.setattr(D, "LOADER", loader)
    draws = np.random.default_rng(0).normal(size=(5000, 4))
    groups = np.arange(5000) // 10
    res = discretize(draws, groups, backend="auto")
    assert_same(res, discretize(draws, groups, backend="numpy"))
    with pytest.raises(ImportError, match=r"rewardplug\[fast\]"):
        discretize(draws, groups, backend="numba")
    assert loader._failed  # the failed import is not retried on every call
    assert not loader.wait(0)


def test_rule_equivalent_runs_on_numpys_kernels_with_the_compiled_statistics():
    rng = np.random.default_rng(5)
    draws = rng.normal(0, 0.3, size=(6000, 6)) + rng.integers(0, 3, size=(6000, 1))
    groups = np.arange(6000) // 12
    for method in ("exact", "gaussian"):
        both(draws, groups, 0.8, method=method, rule="equivalent", margin=0.5)


def test_a_gap_exactly_at_the_threshold_is_apart_as_in_numpys_rule():
    """``|d| - margin >= z * s`` decides, ``>=`` included: std 0.75 and 1.0 make s = 1.25 and
    z = 2 a threshold of exactly 2.5 (all exact in binary)."""
    from rewardplug import compiled
    from rewardplug.pairs import differ_gaussian

    mean, std = np.array([2.5, 0.0]), np.array([0.75, 1.0])
    tier, reward, n_tiers = np.empty(2, np.int64), np.empty(2), np.empty(1, np.int64)
    codes, margin, k = np.zeros(2, np.int64), np.zeros(2), np.full(2, 2)
    compiled.group_tiers(codes, 1, mean, mean, std, np.zeros((2, 2)), k, False, margin, 2.0, 0,
                         tier, reward, n_tiers)  # fmt: skip
    assert tier.tolist() == [0, 1]
    # the numpy rule agrees at the same z (confidence = Phi(2))
    from scipy.special import ndtr

    assert differ_gaussian(mean[None], std[None], 0.0, float(ndtr(2.0)))[0, 0, 1]


def test_exact_probability_exactly_at_the_confidence_is_apart():
    both([[1.0, 2.0], [0.0, 1.5]], ["a", "a"], 0.75, method="exact")  # P = 3/4
    assert discretize([[1.0, 2.0], [0.0, 1.5]], ["a", "a"], 0.75, method="exact",
                      backend="numba").tier.tolist() == [0, 1]  # fmt: skip


def test_row_stats_keep_the_sign_of_an_all_negative_zero_row():
    from rewardplug import compiled

    for k in (1, 3, 8, 16):
        mat = np.full((2, k), -0.0)
        mat[1, 0] = 0.0
        mat = np.sort(mat, axis=1)
        counts = np.full(2, k)
        mean, _ = compiled.row_stats(mat, counts)
        want = row_sum(mat, counts) / counts
        assert np.array_equal(np.signbit(mean), np.signbit(want)), k
