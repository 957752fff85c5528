"""Entry point of the built-in ``compose`` plugin: registers ``ensemble`` and ``steps``.

Imports nothing heavy: each source module is imported when a stack first uses it, and the
sources inside it load their own models lazily as usual.
"""

from __future__ import annotations

from collections.abc import Callable

import rewardplug


@rewardplug.hookimpl
def register_sources(register: Callable[[str, type], None]) -> None:
    """Register ``ensemble`` (members' draws pooled) and ``steps`` (process rewards)."""
    register("ensemble", "rewardplug_compose.ensemble:EnsembleSource")
    register("steps", "rewardplug_compose.steps:StepsSource")
