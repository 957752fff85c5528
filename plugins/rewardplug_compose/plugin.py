"""Entry point of the built-in ``compose`` plugin: registers ``ensemble`` and ``steps``.

Imports nothing heavy: each source module is imported when a stack first uses it, and the
sources inside it load their own models lazily as usual.
"""

from __future__ import annotations

import rewardplug
from rewardplug.hookspecs import RegisterSource


@rewardplug.hookimpl
def register_sources(register: RegisterSource) -> None:
    """Register ``ensemble`` (members' draws pooled) and ``steps`` (process rewards)."""
    register("ensemble", "rewardplug_compose.ensemble:EnsembleSource")
    register("steps", "rewardplug_compose.steps:StepsSource")
