"""The rubric criterion interface that ``register_criteria`` plugins implement.

A criterion check is a pydantic model of the fields of a rubric's ``check:`` mapping (its ``kind``
selects the class; other keys are validated when the rubric loads, so a bad regex or a missing
value fails before scoring). ``check(sample)`` returns the outcome: ``True``/``False`` or a score
in [0, 1]. Checks that need a judge (``kind: llm``) set ``judged = True`` and are scored by the
rubric source in one batched judge call instead of through ``check``.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from rewardplug.types import Sample

__all__ = ["Criterion"]


class Criterion(BaseModel):
    """Base class of rubric check kinds; subclasses add their fields and implement ``check``."""

    model_config = ConfigDict(extra="forbid")

    kind: str
    #: True for checks answered by an LLM judge (batched by the rubric source, not ``check``)
    judged: ClassVar[bool] = False

    def check(self, sample: Sample) -> bool | float:
        """Outcome for one response: a bool or a score in [0, 1]. Raise to mark it as failed to run."""
        raise TypeError(f"criterion kind {self.kind!r} has no programmatic check")

    def describe(self) -> dict[str, Any]:
        """The check as shown in ``Score.detail`` (its fields, JSON-ready)."""
        return self.model_dump(mode="json")
