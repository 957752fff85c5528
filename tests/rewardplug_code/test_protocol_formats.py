"""Pure-Python parts: strict comparison, payload decoding, assert conversion, code extraction."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rewardplug_code import protocol
from rewardplug_code.extract import CodeError, extract_code
from rewardplug_code.formats import parse_tests

plain = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=12,
)


# nested values are occasionally slow to draw on a loaded 2-core box; the check is not the point
@settings(suppress_health_check=[HealthCheck.too_slow])
@given(plain)
def test_equal_is_reflexive_and_survives_the_wire(value):
    assert protocol.equal(value, value)
    wire = json.dumps({"value": value})
    decoded = protocol.decode(wire)
    assert decoded.ok and protocol.equal(decoded.value, value)


@given(plain, plain)
def test_equal_is_symmetric(a, b):
    assert protocol.equal(a, b) == protocol.equal(b, a)


@given(st.integers(min_value=-5, max_value=5))
def test_bools_never_equal_numbers(n):
    assert not protocol.equal(True, n) and not protocol.equal(n, False)
    assert not protocol.equal([True], [1]) and not protocol.equal({"a": 1}, {"a": True})


def test_nan_and_tolerance():
    assert not protocol.equal(math.nan, math.nan)
    assert protocol.equal(1.0, 1.0000001, atol=1e-6) and not protocol.equal(1.0, 1.0000001)
    assert protocol.equal(2, 2.0)
    assert protocol.within(1.5, 1.4, 0.2, inclusive=False)
    assert not protocol.within(True, 1, 0.5, inclusive=True)


@pytest.mark.parametrize(
    "raw",
    [
        None,
        3,
        "",
        "not json",
        "[1]",
        '{"value": 1, "extra": 2}',
        '{"passed": true}',
        "{}",
        '{"error": 5}',
        "[" * 100000,
    ],
)
def test_malformed_payloads_are_errors(raw):
    assert not protocol.decode(raw).ok


def test_big_ints_travel_as_hex():
    big = 7**20000
    assert protocol.decode(json.dumps({"value": {"__bigint__": hex(big)}})).value == big


def test_assert_conversion():
    code = """
import math
def check(candidate):
    assert candidate([1, 2], k=3) == (1, 2)
    assert {'a': 1} == candidate('x')
    assert abs(candidate(2.0) - 1.41) <= 0.01
    assert candidate(1) is None
    assert not candidate(0)
    assert candidate(5), "truthy"
    assert True, "ignored"
    assert candidate(list(range(3))) == [0, 1, 2]
    for i in range(3):
        assert candidate(i) >= 0
"""
    plan = parse_tests({"kind": "assert", "entry_point": "f", "code": code})
    assert [c.compare for c in plan.cases] == ["eq", "eq", "tol", "eq", "falsy", "truthy"]
    first = plan.cases[0]
    # a tuple literal stays a tuple: HumanEval's check fails a list where it asserts a tuple
    assert first.args == ([1, 2],) and first.kwargs == {"k": 3}
    assert first.expected == {"__tuple__": [1, 2]}
    assert plan.cases[2].inclusive and plan.cases[2].tol == 0.01
    assert plan.unconverted == 2 and plan.total == 7
    assert "range(3)" in plan.check_code and "== (1, 2)" not in plan.check_code


def test_extraction():
    fenced = "Here:\n```python\ndef f():\n    return 1\n```\nand ```py\nx = 2\n```"
    assert extract_code(fenced) == "def f():\n    return 1\n"
    assert extract_code("```\nprint(1)\n```") == "print(1)\n"
    assert extract_code("x = 1") == "x = 1"
    assert (
        extract_code(
            "    return 1\n\ndef g(): pass", "def f():\n", prepend_prompt=True, stop=["\ndef"]
        )
        == "def f():\n    return 1\n"
    )
    for bad in ("", "```python\n\n```", "a\udcffb", "a\x00b"):
        with pytest.raises(CodeError):
            extract_code(bad)
    with pytest.raises(CodeError, match="over the cap"):
        extract_code("x" * 2000, max_bytes=1024)
