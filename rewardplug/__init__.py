"""rewardplug: rewards you can trust for RL on language models.

Every reward source (neural reward model, LLM judge, rubric, test cases, your own function) gives
each response a score *with uncertainty*; one shared discretizer turns those uncertain scores into
tie-grouped rewards, so responses that are not confidently different get the same reward.

Public API (imported lazily, so ``import rewardplug`` stays fast and pulls in no heavy library)::

    import rewardplug
    stack = rewardplug.load_stack("stack.yaml")
    rewards = stack.score([rewardplug.Sample(prompt="2+2?", response="4", reference="4")])
    result = rewardplug.discretize(draws, groups, confidence=0.9, assign="mean")

The public API is this namespace's ``__all__`` plus that of a few modules: ``rewardplug.hookspecs``
and ``rewardplug.plugin_api`` (for plugin authors), ``rewardplug.server``,
``rewardplug.ray_engine`` and the trainers' front ends ``rewardplug.integrations.{trl, verl,
openrlhf, nemo_gym, nemo_rl, areal, skyrl, slime, verifiers}``. Every other module is internal.
docs/api.md lists every public name.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from rewardplug.hookspecs import hookimpl

__version__ = "0.1.0"

# name -> module that defines it ("module:attr" where the name there differs); resolved on first
# attribute access (PEP 562). docs/api.md lists these names and tests/core/test_public_api.py
# keeps the page, __all__ and this map in step.
_LAZY = {
    "Sample": "rewardplug.types",
    "Score": "rewardplug.types",
    "Reward": "rewardplug.types",
    "RewardSource": "rewardplug.source",
    "SourceConfig": "rewardplug.source",
    "TransformConfig": "rewardplug.rules",
    "TransformContext": "rewardplug.rules",
    "CombineConfig": "rewardplug.rules",
    "discretize": "rewardplug.discretizer",
    "DiscretizeResult": "rewardplug.discretizer",
    "Stack": "rewardplug.stack",
    "load_stack": "rewardplug.stack",
    "StackError": "rewardplug.config",
    "get_plugin_manager": "rewardplug.plugins",
    "Host": "rewardplug.plugins",
    "read_samples": "rewardplug.io",
    "evaluate": "rewardplug.metrics",
    "Criterion": "rewardplug.criteria",
    "GroupAssembler": "rewardplug.groups",
    "RewardplugWarning": "rewardplug.notices",
    "sample_seed": "rewardplug.combine",
    "warm_kernels": "rewardplug.compiled_loader:warm",
}

__all__ = [
    "CombineConfig",
    "Criterion",
    "DiscretizeResult",
    "GroupAssembler",
    "Host",
    "Reward",
    "RewardSource",
    "RewardplugWarning",
    "Sample",
    "Score",
    "SourceConfig",
    "Stack",
    "StackError",
    "TransformConfig",
    "TransformContext",
    "__version__",
    "discretize",
    "evaluate",
    "get_plugin_manager",
    "hookimpl",
    "load_stack",
    "read_samples",
    "sample_seed",
    "warm_kernels",
]

if TYPE_CHECKING:
    from rewardplug.combine import sample_seed
    from rewardplug.compiled_loader import warm as warm_kernels
    from rewardplug.config import StackError
    from rewardplug.criteria import Criterion
    from rewardplug.discretizer import DiscretizeResult, discretize
    from rewardplug.groups import GroupAssembler
    from rewardplug.io import read_samples
    from rewardplug.metrics import evaluate
    from rewardplug.notices import RewardplugWarning
    from rewardplug.plugins import Host, get_plugin_manager
    from rewardplug.rules import CombineConfig, TransformConfig, TransformContext
    from rewardplug.source import RewardSource, SourceConfig
    from rewardplug.stack import Stack, load_stack
    from rewardplug.types import Reward, Sample, Score


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'rewardplug' has no attribute {name!r}")
    module, _, attr = module.partition(":")
    value = getattr(importlib.import_module(module), attr or name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
