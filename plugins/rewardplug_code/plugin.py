"""Plugin entry point of ``rewardplug_code``: registers the ``test_cases`` source.

Imports nothing heavy: the source module loads numpy and starts sandboxes only when it scores.
"""

from __future__ import annotations

from collections.abc import Callable

import rewardplug


@rewardplug.hookimpl
def register_sources(register: Callable[[str, type], None]) -> None:
    """Register ``test_cases`` (sandboxed pass rate of model-written Python)."""
    register("test_cases", "rewardplug_code.source:TestCasesSource")  # imported on first use
