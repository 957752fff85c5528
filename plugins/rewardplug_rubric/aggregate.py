"""Per-criterion verdicts and their draw-wise aggregation into one rubric score.

Every criterion ends up with a list of *outcomes*: what its check said, one per draw (1 = the
check holds, 0 = it does not, or a fraction). A programmatic check is exact, so it has a single
outcome, used in every draw; an ``llm`` criterion has up to K judge samples. Draw k of the rubric
score aggregates each criterion's k-th outcome (cycling through a criterion's outcomes when it has
fewer than K), so the judge's per-criterion inconsistency becomes the score's uncertainty.

Satisfaction is the outcome, except for a ``pitfall`` criterion: its check detects the thing to
avoid, so its satisfaction is ``1 - outcome`` (satisfied when the pitfall is avoided).

A criterion whose check failed to run is *missing*: by default it is left out and the weights of
the others renormalize (``on_error: renormalize``); with ``on_error: abstain`` the sample abstains.
Under ``essential_gate`` a missing essential criterion always abstains, since the gate cannot be
decided without it. A criterion that does not apply to the sample (a ``bind`` field is absent) is
left out without affecting the policy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from rewardplug import Score
from rewardplug_rubric.model import Rubric, RubricCriterion

__all__ = ["OnError", "Verdict", "aggregate"]

OnError = Literal["renormalize", "abstain"]
VerdictStatus = Literal["ok", "missing", "not_applicable"]


@dataclass
class Verdict:
    """What one criterion said about one response."""

    criterion: RubricCriterion
    status: VerdictStatus = "ok"
    outcomes: list[float] = field(default_factory=list)
    """The check's outcome per draw (for a pitfall: 1 = the pitfall occurs)."""
    reason: str | None = None
    """Why the criterion is missing or not applicable."""
    rationales: list[str] = field(default_factory=list)
    """The judge's words, for ``llm`` criteria (one per sample that gave one)."""

    @property
    def satisfaction(self) -> list[float]:
        """Per-draw satisfaction in [0, 1] (pitfalls flipped: avoided = 1)."""
        if self.criterion.is_pitfall:
            return [1.0 - o for o in self.outcomes]
        return list(self.outcomes)

    def as_detail(self, threshold: float) -> dict[str, Any]:
        """The verdict as a JSON-ready row of ``Score.detail["criteria"]``."""
        c = self.criterion
        row: dict[str, Any] = {
            "id": c.id,
            "text": c.text,
            "kind": c.kind,
            "category": c.category,
            "weight": c.effective_weight,
            "status": self.status,
        }
        if self.status == "ok":
            sat = self.satisfaction
            mean = sum(sat) / len(sat)
            row["satisfied"] = round(mean, 6)
            row["passed"] = mean >= threshold
            row["verdict"] = _verdict_word(c, mean, threshold)
            if len(self.outcomes) > 1:
                row["draws"] = [round(s, 6) for s in sat]
        else:
            row["reason"] = self.reason
        if self.rationales:
            row["rationale"] = self.rationales[0] if len(self.rationales) == 1 else self.rationales
        return row


def _verdict_word(c: RubricCriterion, satisfied: float, threshold: float) -> str:
    if c.is_pitfall:
        return "avoided" if satisfied >= threshold else "pitfall present"
    return "met" if satisfied >= threshold else "not met"


def aggregate(
    rubric: Rubric, verdicts: list[Verdict], on_error: OnError = "renormalize"
) -> tuple[list[float] | None, str | None]:
    """Draw-wise rubric score from the verdicts: ``(draws, None)`` or ``(None, reason)``.

    ``weighted_mean`` and ``essential_gate`` only; ``implicit`` grades come from the judge.
    """
    missing = [v for v in verdicts if v.status == "missing"]
    if missing and on_error == "abstain":
        ids = ", ".join(v.criterion.id for v in missing)
        return None, f"criteria could not be checked ({ids}) and on_error is 'abstain'"
    gate = rubric.aggregate == "essential_gate"
    if gate and any(v.criterion.category == "essential" for v in missing):
        ids = ", ".join(v.criterion.id for v in missing if v.criterion.category == "essential")
        return None, f"essential criteria could not be checked ({ids}), so the gate is undecided"
    present = [v for v in verdicts if v.status == "ok" and v.outcomes]
    if not present:
        return None, "no criterion of the rubric could be checked on this response"
    weights = np.array([v.criterion.effective_weight for v in present])
    if weights.sum() <= 0:
        return None, "the criteria that could be checked all have weight 0"
    k = max(len(v.outcomes) for v in present)
    # satisfaction matrix: criteria x draws; a criterion with fewer outcomes cycles through them
    sat = np.array([[v.satisfaction[j % len(v.outcomes)] for j in range(k)] for v in present])
    draws = weights @ sat / weights.sum()
    if gate:
        essential = np.array([v.criterion.category == "essential" for v in present])
        if essential.any():
            failed = (sat[essential] < rubric.threshold).any(axis=0)
            draws = np.where(failed, 0.0, draws)
    return [float(d) for d in draws], None


def to_score(
    rubric: Rubric,
    verdicts: list[Verdict],
    on_error: OnError = "renormalize",
    **extra: Any,
) -> Score:
    """The sample's :class:`Score`, with every criterion's verdict in ``detail["criteria"]``."""
    detail: dict[str, Any] = {
        "rubric": rubric.name,
        "aggregate": rubric.aggregate,
        "criteria": [v.as_detail(rubric.threshold) for v in verdicts],
        **extra,
    }
    missing = [v.criterion.id for v in verdicts if v.status == "missing"]
    if missing:
        detail["missing"] = missing
    draws, reason = aggregate(rubric, verdicts, on_error)
    if draws is None:
        return Score.abstain(reason or "rubric could not be scored", **detail)
    return Score(draws=draws, detail=detail)
