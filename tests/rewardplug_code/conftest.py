"""Fixtures for the test_cases source: one warm sandbox pool per isolation level, shared."""

from __future__ import annotations

import pytest
from rewardplug_code.source import TestCasesSource

FAST = {"timeout_s": 2.0, "total_timeout_s": 8.0, "workers": 2, "memory_mb": 512}


@pytest.fixture(scope="session")
def source():
    """The real source with the default (auto: bubblewrap when it works) isolation."""
    src = TestCasesSource(**FAST)
    yield src
    src.close()


@pytest.fixture(scope="session")
def fallback_source():
    """The real source forced onto the rlimits + seccomp fallback."""
    src = TestCasesSource(**FAST, isolation="rlimits+seccomp")
    yield src
    src.close()
