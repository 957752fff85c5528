"""Plugin entry point of ``rewardplug_code``: registers the ``test_cases`` source.

Imports nothing heavy: the source module loads numpy and starts sandboxes only when it scores.
"""

from __future__ import annotations

import rewardplug
from rewardplug.hookspecs import RegisterSource


@rewardplug.hookimpl
def register_sources(register: RegisterSource) -> None:
    """Register ``test_cases`` (sandboxed pass rate of model-written Python)."""
    register("test_cases", "rewardplug_code.source:TestCasesSource")  # imported on first use
