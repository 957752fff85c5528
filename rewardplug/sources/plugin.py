"""The core plugin: registers the ``python`` source (imported when the registry is first built).

Written like every other plugin, and as cheap to import: ``rewardplug --help`` loads it.
"""

from __future__ import annotations

from rewardplug.hookspecs import RegisterSource, hookimpl


@hookimpl
def register_sources(register: RegisterSource) -> None:
    """Register ``python`` (a user's reward function, e.g. a TRL one, unchanged)."""
    register("python", "rewardplug.sources.python:PythonSource")  # imported on first use
