"""What a plugin needs from rewardplug beyond the top-level namespace: one public place to import it.

A reward source, a rubric check kind, a transform or a combine rule is written against the
top-level names (``rewardplug.RewardSource``, ``SourceConfig``, ``Sample``, ``Score``,
``Criterion``, ``TransformConfig``, ``CombineConfig``, ``sample_seed``, ...) and the hook types of
:mod:`rewardplug.hookspecs`. The helpers here are the rest, the ones the built-in plugins use
(they are written exactly like a third-party plugin)::

    from rewardplug import RewardSource, Sample, Score, SourceConfig
    from rewardplug.plugin_api import Input, cache_dir

Names resolve lazily (like the top level), so importing this module costs nothing; each stays
importable from where it is defined.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# name -> module that defines it; resolved on first attribute access (PEP 562)
_LAZY = {
    "CombineFn": "rewardplug.rules",
    "Input": "rewardplug.inputs",
    "Message": "rewardplug.types",
    "SourceSpec": "rewardplug.config",
    "StackConfig": "rewardplug.config",
    "TransformFn": "rewardplug.rules",
    "UnknownNameError": "rewardplug.plugins",
    "align": "rewardplug.combine",
    "cache_dir": "rewardplug.paths",
    "content_text": "rewardplug.types",
    "current_host": "rewardplug.plugins",
    "digest": "rewardplug.types",
    "import_object": "rewardplug.plugins",
    "prompt_text": "rewardplug.types",
    "rubrics_dir": "rewardplug.paths",
    "safe_load_named": "rewardplug.config",
}

__all__ = [
    "CombineFn",
    "Input",
    "Message",
    "SourceSpec",
    "StackConfig",
    "TransformFn",
    "UnknownNameError",
    "align",
    "cache_dir",
    "content_text",
    "current_host",
    "digest",
    "import_object",
    "prompt_text",
    "rubrics_dir",
    "safe_load_named",
]

if TYPE_CHECKING:
    from rewardplug.combine import align
    from rewardplug.config import SourceSpec, StackConfig, safe_load_named
    from rewardplug.inputs import Input
    from rewardplug.paths import cache_dir, rubrics_dir
    from rewardplug.plugins import UnknownNameError, current_host, import_object
    from rewardplug.rules import CombineFn, TransformFn
    from rewardplug.types import Message, content_text, digest, prompt_text


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
