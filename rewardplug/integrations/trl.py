"""TRL adapter: a stack as a ``GRPOTrainer`` reward function.

TRL calls each reward function as ``fn(prompts=[...], completions=[...], completion_ids=[...],
**columns)`` where ``columns`` are the dataset's other columns as lists, and expects one float (or
None) per completion, in order. Prompts and completions are strings or chat-message lists.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from rewardplug.types import Sample, _digest

if TYPE_CHECKING:
    from rewardplug.stack import Stack

__all__ = ["make_reward_function", "trl_samples"]

_FIELDS = ("reference", "tests", "rubric", "id")


def trl_samples(prompts: Sequence[Any], completions: Sequence[Any], **columns: Any) -> list[Sample]:
    """Samples for a TRL call; consecutive equal prompts form one group."""
    n = len(completions)
    if len(prompts) != n:
        raise ValueError(f"TRL passed {len(prompts)} prompts for {n} completions")
    cols = {k: v for k, v in columns.items() if isinstance(v, list | tuple) and len(v) == n}
    samples, run, previous = [], -1, object()
    for i, (prompt, completion) in enumerate(zip(prompts, completions, strict=True)):
        key = _digest(prompt)
        if key != previous:
            run, previous = run + 1, key
        fields = {k: v[i] for k, v in cols.items()}
        fields.setdefault("id", str(i))
        fields["id"] = str(fields["id"]) + (f"#{i}" if "id" in cols else "")
        samples.append(
            Sample.model_validate(
                {**fields, "group": f"{run}:{key}", "prompt": prompt, "response": completion}
            )
        )
    return samples


def make_reward_function(stack: Stack, name: str = "rewardplug") -> Any:
    """Wrap ``stack`` as a TRL reward function named ``name`` (TRL logs rewards by ``__name__``)."""

    def reward(
        prompts: Sequence[Any],
        completions: Sequence[Any],
        completion_ids: Any = None,
        **columns: Any,
    ) -> list[float | None]:
        samples = trl_samples(prompts, completions, **columns)
        return [r.reward for r in stack.score(samples)]

    reward.__name__ = reward.__qualname__ = name
    return reward
