"""Plugin entry point of ``rewardplug_judge`` (entry point ``judge``): registers ``llm_judge``
and ``hack_check``.

Imports nothing heavy: the source class itself only imports a client or a model when it first
scores.
"""

from __future__ import annotations

from rewardplug.hookspecs import RegisterSource, hookimpl


@hookimpl
def register_sources(register: RegisterSource) -> None:
    """Register the ``llm_judge`` and ``hack_check`` sources."""
    register("llm_judge", "rewardplug_judge.source:JudgeSource")  # imported on first use
    register("hack_check", "rewardplug_judge.hack_check:HackCheckSource")
