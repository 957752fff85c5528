"""Entry point of the built-in ``neural`` plugin: registers ``neural_rm`` and ``embedding_similarity``.

Importing this module must stay cheap (``rewardplug --help`` loads it): the source modules are
imported inside the hook, and they import torch and transformers only when a source is used.
"""

from __future__ import annotations

from rewardplug.hookspecs import RegisterSource, hookimpl


@hookimpl
def register_sources(register: RegisterSource) -> None:
    """Register the MC-dropout sources (imported here, when the registry is first built)."""
    # import paths: a source's module is imported when a stack first uses it
    register("neural_rm", "rewardplug_neural.rm_source:NeuralRMSource")
    register("embedding_similarity", "rewardplug_neural.embedding_source:EmbeddingSimilaritySource")
