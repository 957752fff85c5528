"""The ``ensemble`` source: several sources (reward models, judges, ...) as one uncertain source.

``with: {members: [<source specs as in a stack>], draws: pool | mean}``. Each member scores the
batch as it would in a stack (its ``with:``, ``noise:`` and ``transform:`` apply). Per sample:

* ``value`` is the weighted mean of the members' values;
* ``draws: pool`` (default) pools the members' draws -- a sample of the weighted mixture of the
  members' draw distributions: with K the largest member K and M members, member m contributes
  ``round(M * K * w_m / sum(w))`` of its draws (aligned as in combining). Members that disagree
  therefore widen the spread, and the discretizer ties responses the ensemble is unsure about;
* ``draws: mean`` averages the members draw by draw (aligned to K, paired at random): the spread
  of the ensemble mean, which shrinks as members are added -- their disagreement does not count.

A member that abstains or fails on a sample is left out of it (``detail.failed`` names it with
its reason); with fewer than ``min_members`` members left the sample abstains (or errors, when
every member errored). ``detail.members`` gives each member's value, spread and status, and
``detail.disagreement`` the standard deviation of the members' values.

To use the members' disagreement as an objective instead (Coste et al., 2023), list the reward
models as sources of the stack itself: ``combine: min`` is the worst-case objective (WCO) and
``combine: mean_minus_var`` the uncertainty-weighted one (UWO); see ``docs/stacks.md``.
"""

from __future__ import annotations

import asyncio
import statistics
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
from pydantic import Field, field_validator, model_validator

from rewardplug import RewardSource, Sample, Score, SourceConfig
from rewardplug.plugin_api import SourceSpec
from rewardplug_compose.members import Member, aligned, named_specs

__all__ = ["EnsembleSource"]


class EnsembleSource(RewardSource):
    """Members' scores as one source whose draws include their disagreement."""

    class Config(SourceConfig):
        members: list[SourceSpec] = Field(min_length=1)
        """The member sources, written as entries of a stack's ``sources:`` (name optional)."""
        draws: Literal["pool", "mean"] = "pool"
        """``pool``: the members' draws together; ``mean``: their draw-wise weighted mean."""
        min_members: int = Field(1, ge=1)
        """Fewest members that must score a sample; with fewer it abstains."""

        @field_validator("members", mode="before")
        @classmethod
        def _names(cls, value: Any) -> Any:
            return named_specs(value, "member")

        @model_validator(mode="after")
        def _check(self) -> EnsembleSource.Config:
            names = [m.name for m in self.members]
            twice = sorted({n for n in names if names.count(n) > 1})
            if twice:
                raise ValueError(f"member names must be unique; used twice: {', '.join(twice)}")
            if not any(m.weight > 0 for m in self.members):
                raise ValueError("at least one member needs a weight > 0")
            if self.min_members > len(self.members):
                raise ValueError(
                    f"min_members is {self.min_members} but there are {len(self.members)} members"
                )
            return self

    config: Config

    def __init__(self, config: Any = None, **options: Any):
        super().__init__(config, **options)
        self.members = [Member(spec, f"members[{i}]") for i, spec in enumerate(self.config.members)]

    def score(self, samples: Sequence[Sample]) -> list[Score]:
        if not samples:
            return []
        per_member = [m.score(samples) for m in self.members]
        return self.combine_members(samples, per_member)

    async def ascore(self, samples: Sequence[Sample]) -> list[Score]:
        if not samples:
            return []
        per_member = await asyncio.gather(*(m.ascore(samples) for m in self.members))
        return self.combine_members(samples, list(per_member))

    def close(self) -> None:
        for member in self.members:
            member.close()

    def combine_members(
        self, samples: Sequence[Sample], per_member: list[list[Score]]
    ) -> list[Score]:
        """The ensemble's scores from its members' scores (``per_member[m][i]``: member m, sample i)."""
        return [
            self._one(sample, [scores[i] for scores in per_member])
            for i, sample in enumerate(samples)
        ]

    def _one(self, sample: Sample, scores: list[Score]) -> Score:
        members = {m.name: _summary(s, m.weight) for m, s in zip(self.members, scores, strict=True)}
        failed = {m.name: s.reason for m, s in zip(self.members, scores, strict=True) if not s.ok}
        used = [
            (i, m, s)
            for i, (m, s) in enumerate(zip(self.members, scores, strict=True))
            if s.ok and m.weight > 0
        ]
        detail: dict[str, Any] = {"members": members, "draws_mode": self.config.draws}
        if failed:
            detail["failed"] = failed
        if len(used) < self.config.min_members:
            reason = (
                f"{len(used)} of {len(self.members)} members scored it "
                f"(min_members: {self.config.min_members})"
            )
            if failed:
                reason += " -- " + "; ".join(f"{n}: {r}" for n, r in failed.items())
            weighted = [s for m, s in zip(self.members, scores, strict=True) if m.weight > 0]
            if all(s.status == "error" for s in weighted):
                return Score.error(reason, **detail)
            return Score.abstain(reason, **detail)
        w = np.array([m.weight for _, m, _ in used])
        w = w / w.sum()
        values = np.array([s.value for _, _, s in used])
        k = max(len(s.draws) for _, _, s in used)
        if self.config.draws == "mean":
            # each member aligned with a seed of its own (its index), paired with the others at random
            x = np.stack([aligned([s], [sample], k, 6007 + i)[0] for i, _, s in used])
            draws = (w[:, None] * x).sum(axis=0)
        else:
            total = len(used) * k
            parts = [
                aligned([s], [sample], max(1, round(total * wi)), 6007 + i)[0]
                for (i, _, s), wi in zip(used, w, strict=True)
            ]
            draws = np.concatenate(parts)
        if len(used) > 1:
            detail["disagreement"] = statistics.stdev(values.tolist())
        return Score(value=float(w @ values), draws=draws.tolist(), detail=detail)


def _summary(score: Score, weight: float) -> dict[str, Any]:
    out: dict[str, Any] = {"status": score.status, "weight": weight}
    if score.ok:
        out.update(value=score.value, std=score.std, k=len(score.draws))
    else:
        out["reason"] = score.reason
    return out
