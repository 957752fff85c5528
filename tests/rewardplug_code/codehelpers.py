"""Helpers shared by the test_cases tests (sample and test builders)."""

from __future__ import annotations

from rewardplug.types import Sample


def call_tests(*pairs, entry="f", atol=0.0):
    """``call`` tests from (args, expected) pairs."""
    return {
        "kind": "call",
        "entry_point": entry,
        "atol": atol,
        "cases": [{"args": list(a), "expected": e} for a, e in pairs],
    }


def sample(code: str, tests, **kw) -> Sample:
    return Sample(prompt="write f", response=f"```python\n{code}\n```", tests=tests, **kw)
