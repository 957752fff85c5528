"""Entry point of the built-in ``neural`` plugin: registers ``neural_rm`` and ``embedding_similarity``.

Importing this module must stay cheap: the source modules import torch and transformers only
inside functions, when a source is first used.
"""

from __future__ import annotations

from collections.abc import Callable

from rewardplug.hookspecs import hookimpl
from rewardplug.source import RewardSource
from rewardplug_neural.embedding_source import EmbeddingSimilaritySource
from rewardplug_neural.rm_source import NeuralRMSource


@hookimpl
def register_sources(register: Callable[[str, type[RewardSource]], None]) -> None:
    """Register the MC-dropout sources."""
    register("neural_rm", NeuralRMSource)
    register("embedding_similarity", EmbeddingSimilaritySource)
