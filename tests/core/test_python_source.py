"""The ``python`` source wraps reward functions unchanged."""

from __future__ import annotations

import pickle

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rewardplug import Sample, Score
from rewardplug.sources.python import PythonSource

FIX = "tests.core.rewards_fixture"


def samples(*pairs, **extra):
    return [Sample(prompt="p", response=r, gold=g, **extra) for r, g in pairs]


def test_trl_style_batch_function_with_columns():
    src = PythonSource({"function": f"{FIX}:exact_match"})
    scores = src.score(samples(("4", "4"), ("5", "4")))
    assert [s.value for s in scores] == [1.0, 0.0]
    assert all(s.draws == [s.value] for s in scores)


def test_lists_are_draws_and_none_abstains():
    src = PythonSource({"function": f"{FIX}:noisy"})
    batch = [Sample(prompt="p", response="a", quality=0.5), Sample(prompt="p", response="b")]
    ok, missing = src.score(batch)
    assert ok.draws == [0.4, 0.5, 0.6] and ok.value == pytest.approx(0.5)
    assert missing.status == "abstain" and "returned None" in missing.reason


def test_columns_a_function_does_not_accept_are_not_passed():
    src = PythonSource({"function": f"{FIX}:strict_signature"})
    assert [s.value for s in src.score(samples(("abc", "x")))] == [3.0]


def test_one_failing_sample_does_not_fail_its_batch():
    src = PythonSource({"function": f"{FIX}:fragile"})
    scores = src.score(samples(("fine", ""), ("boom", ""), ("ok", "")))
    assert [s.status for s in scores] == ["ok", "error", "ok"]
    assert "boom inside" in scores[1].reason


def test_nan_abstains_with_reason():
    scores = PythonSource({"function": f"{FIX}:nan_for_empty"}).score(samples(("", ""), ("x", "")))
    assert scores[0].status == "abstain" and "non-finite" in scores[0].reason
    assert scores[1].value == 1.0


def test_per_sample_functions():
    src = PythonSource({"function": f"{FIX}:one_sample", "batched": False})
    assert [s.value for s in src.score(samples(("a", "a"), ("b", "a")))] == [1.0, 0.0]


def test_wrong_number_of_results_is_an_error_for_every_sample():
    scores = PythonSource({"function": f"{FIX}:wrong_length"}).score(samples(("a", ""), ("b", "")))
    assert all(s.status == "error" and "1 results for 2" in s.reason for s in scores)


def test_bad_import_path_fails_at_config_time():
    with pytest.raises(ValueError, match="no attribute"):
        PythonSource({"function": f"{FIX}:does_not_exist"})
    with pytest.raises(ValueError, match="import path"):
        PythonSource({"function": "no_colon"})


def test_source_pickles_without_its_function_and_reloads_it():
    src = PythonSource({"function": f"{FIX}:exact_match"})
    src.score(samples(("4", "4")))
    clone = pickle.loads(pickle.dumps(src))
    assert clone._fn is None
    assert clone.score(samples(("4", "4")))[0].value == 1.0


@given(st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-(10**6), 10**6)))
def test_the_fast_path_for_one_number_equals_a_validated_score(x):
    from rewardplug.sources.python import to_score

    fast = to_score(x)
    assert fast.model_dump() == Score.of(float(x)).model_dump()
