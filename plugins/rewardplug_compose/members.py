"""Inner sources of a composite source, built from source specs exactly as a stack builds them.

A member is written like an entry of a stack's ``sources:`` (``name``, ``use``, ``weight``,
``with``, ``noise``, ``transform``) and runs through a one-source :class:`~rewardplug.Stack`, so
its ``with:`` is validated by its own ``Config``, its noise and transforms apply, and an
exception inside it becomes per-sample errors instead of failing the batch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from rewardplug import Sample, Score, Stack, StackError, sample_seed
from rewardplug.plugin_api import SourceSpec, StackConfig, align

__all__ = ["Member", "aligned", "named_specs"]


def named_specs(value: Any, default: str) -> Any:
    """Give specs without a ``name`` one (``<default>`` or ``<use>_<i>``), so that a member can
    be written as briefly as ``{use: neural_rm, with: {...}}``."""
    if isinstance(value, Mapping):
        return {"name": default, **value} if "name" not in value else value
    if isinstance(value, list):
        return [
            {"name": f"{v.get('use', default)}_{i}", **v}
            if isinstance(v, Mapping) and "name" not in v
            else v
            for i, v in enumerate(value)
        ]
    return value


class Member:
    """One inner source: ``score``/``ascore`` return its (noised, transformed) scores."""

    def __init__(self, spec: SourceSpec, where: str):
        self.name = spec.name
        self.weight = spec.weight
        # the one-source stack needs a weight > 0; the member's own weight is the composite's
        config = StackConfig(
            sources=[spec.model_copy(update={"weight": 1.0})], discretize={"enabled": False}
        )
        try:
            self.stack = Stack(config)
        except StackError as exc:
            raise ValueError(
                "; ".join(p.replace("sources[0]", where, 1) for p in exc.problems)
            ) from None

    def score(self, samples: Sequence[Sample]) -> list[Score]:
        if not samples:
            return []
        return self.stack.score_sources(list(samples))[self.name]

    async def ascore(self, samples: Sequence[Sample]) -> list[Score]:
        if not samples:
            return []
        return (await self.stack.ascore_sources(list(samples)))[self.name]

    def close(self) -> None:
        self.stack.close()


def aligned(scores: Sequence[Score], samples: Sequence[Sample], k: int, salt: int) -> np.ndarray:
    """(len(scores), k) draws: each ok score's draws aligned to ``k`` and shuffled with a seed of
    its own sample (so nothing depends on the batch); rows of scores that are not ok are NaN."""
    out = np.full((len(scores), k), np.nan)
    for i, (score, sample) in enumerate(zip(scores, samples, strict=True)):
        if score.ok:
            out[i] = align(score.draws, k, sample_seed(sample, salt + i))
    return out
