"""Hostile results fail their own case, never the batch or the output file; assert-style tests
keep Python's semantics (a tuple is not a list; the entry point is callable by name).

Each attack runs in the real sandbox, at both isolation levels, batched with honest samples
whose verdicts must come through untouched.
"""

from __future__ import annotations

import json

import pytest
from codehelpers import call_tests, sample
from rewardplug_code import protocol

LEVELS = ["source", "fallback_source"]
TOL = call_tests(([1], 1.5), ([2], 3.0), atol=1e-6)
HONEST = "def f(x):\n    return 1.5 * x"
HOSTILE = {
    "huge_int_vs_float_tolerance": "def f(x):\n    return 10**400",
    "huge_negative_int": "def f(x):\n    return -(10**5000)",
    "nan": "def f(x):\n    return float('nan')",
    "deep_nesting": "def f(x):\n    v = []\n    for _ in range(5000):\n        v = [v]\n    return v",
    "surrogate_in_error": "def f(x):\n    raise ValueError('lone \\ud800 surrogate')",
    "surrogate_in_value": "def f(x):\n    return '\\ud800'",
    "fake_bigint_marker": "def f(x):\n    return {'__bigint__': hex(int(1.5 * x))}",
    "str_subclass": "class S(str):\n    def __eq__(self, o): return True\n"
    "def f(x):\n    return S('1.5')",
}


@pytest.mark.parametrize("level", LEVELS)
def test_hostile_values_fail_alone_and_the_batch_completes(level, request):
    src = request.getfixturevalue(level)
    names = list(HOSTILE)
    batch = [sample(HONEST, TOL, id="honest-0")]
    batch += [sample(HOSTILE[n], TOL, id=n) for n in names]
    batch += [sample(HONEST, TOL, id="honest-1")]
    scores = src.score(batch)
    assert [s.status for s in scores] == ["ok"] * len(batch), [s.detail for s in scores]
    assert scores[0].value == scores[-1].value == 1.0
    for name, score in zip(names, scores[1:-1], strict=True):
        assert score.value == 0.0, (name, score.detail)
        assert score.detail["passed"] == 0
        json.dumps(score.detail).encode("utf-8")  # every reason is storable text


def test_comparison_of_out_of_range_numbers_is_false_not_an_error():
    assert protocol.equal(10**400, 1.5, atol=1e-6) is False
    assert protocol.within(10**400, 1.5, 0.1, inclusive=True) is False
    assert protocol.within(-(10**400), 1e308, 0.1, inclusive=False) is False
    assert protocol.equal(10**400, 10**400, atol=1e-6) is True  # exact ints still compare
    assert protocol.safe_text("a\ud800b").encode("utf-8") == b"a\\ud800b"


ASSERT_TUPLE = {
    "kind": "assert",
    "entry_point": "pair",
    "code": "def check(candidate):\n    assert candidate(1) == (1, 2)\n    assert candidate(3) == (3, 2)\n",
}
ASSERT_LIST = {
    "kind": "assert",
    "entry_point": "pair",
    "code": "def check(candidate):\n    assert candidate(1) == [1, 2]\n",
}
# HumanEval/33's test calls the entry point by its own name, next to `candidate`
BY_NAME = {
    "kind": "assert",
    "entry_point": "sort_third",
    "code": "def check(candidate):\n"
    "    assert tuple(candidate([1, 2, 3])) == tuple(sort_third([1, 2, 3]))\n"
    "    assert candidate([5, 1]) == [5, 1]\n",
}


@pytest.mark.parametrize("level", LEVELS)
def test_assert_tests_keep_python_semantics(level, request):
    src = request.getfixturevalue(level)
    batch = [
        sample("def pair(x):\n    return (x, 2)", ASSERT_TUPLE),
        sample("def pair(x):\n    return [x, 2]", ASSERT_TUPLE),  # HumanEval's check: fails
        sample("def pair(x):\n    return {'__tuple__': [x, 2]}", ASSERT_TUPLE),  # a forged marker
        sample("def pair(x):\n    return [x, 2]", ASSERT_LIST),
        sample("def pair(x):\n    return (x, 2)", ASSERT_LIST),
        sample("def sort_third(l):\n    return list(l)", BY_NAME),
    ]
    values = [s.value for s in src.score(batch)]
    assert values == [1.0, 0.0, 0.0, 1.0, 0.0, 1.0]
