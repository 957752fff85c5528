"""TRL adapter: a stack as a ``GRPOTrainer`` reward function (sync, or async for network-bound stacks).

TRL calls each reward function as ``fn(prompts=[...], completions=[...], completion_ids=[...],
**columns)`` where ``columns`` are the dataset's other columns as lists, and expects one float (or
None) per completion, in order. Prompts and completions are strings or chat-message lists. TRL
repeats every prompt ``num_generations`` times in a row, so consecutive equal prompts form a group.

TRL (>= 0.2x) also passes ``log_metric(name, value)`` and ``log_extra(column, values)``; when they
are there the adapter logs, next to TRL's own ``rewards/<name>/mean``:

* ``rewards/<name>/<source>/mean`` -- each source's mean point estimate over the samples it scored;
* ``rewards/<name>/raw/mean`` -- the combined score before discretizing;
* ``rewards/<name>/n_tiers/mean`` -- tiers per group (1 = the whole group tied);
* ``rewards/<name>/abstained`` -- the fraction of completions the stack abstained on (TRL turns
  their None into NaN and leaves them out of the advantage);
* completion-table columns ``<name>/<source>`` and ``<name>/tier``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from rewardplug.types import Reward, Sample, _digest

if TYPE_CHECKING:
    from rewardplug.stack import Stack

__all__ = ["log_to_trl", "make_async_reward_function", "make_reward_function", "trl_samples"]

#: keyword arguments TRL adds to every call that are not dataset columns
_TRL_KWARGS = ("completion_ids", "trainer_state", "log_metric", "log_extra", "environments")


def trl_samples(prompts: Sequence[Any], completions: Sequence[Any], **columns: Any) -> list[Sample]:
    """Samples for a TRL call; consecutive equal prompts form one group.

    Columns that are lists with one entry per completion become sample fields (``reference``,
    ``tests``, ``rubric``, ``id``) or metadata; anything else (TRL's own helpers) is ignored.
    A ``tests`` column may hold JSON strings (nested specs do not fit Arrow schemas well).
    """
    n = len(completions)
    if len(prompts) != n:
        raise ValueError(f"TRL passed {len(prompts)} prompts for {n} completions")
    cols = {
        k: v
        for k, v in columns.items()
        if k not in _TRL_KWARGS and isinstance(v, list | tuple) and len(v) == n
    }
    samples, run, previous = [], -1, object()
    for i, (prompt, completion) in enumerate(zip(prompts, completions, strict=True)):
        key = _digest(prompt)
        if key != previous:
            run, previous = run + 1, key
        fields = {k: v[i] for k, v in cols.items()}
        if isinstance(fields.get("tests"), str):
            # Nested test specs are awkward in Arrow-backed datasets: a JSON string is accepted.
            fields["tests"] = _json_object(fields["tests"], "tests", i)
        fields.setdefault("id", str(i))
        fields["id"] = str(fields["id"]) + (f"#{i}" if "id" in cols else "")
        samples.append(
            Sample.model_validate(
                {**fields, "group": f"{run}:{key}", "prompt": prompt, "response": completion}
            )
        )
    return samples


def _json_object(text: str, column: str, index: int) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"column {column!r}, row {index}: not a JSON object ({exc})") from None


def _mean(values: Sequence[float]) -> float | None:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return sum(finite) / len(finite) if finite else None


def log_to_trl(
    rewards: Sequence[Reward],
    name: str,
    log_metric: Callable[[str, float], None] | None,
    log_extra: Callable[[str, list[Any]], None] | None,
) -> None:
    """Report per-source means and tie statistics through TRL's logging hooks (when given)."""
    if not rewards:
        return
    sources: dict[str, None] = {}
    for r in rewards:
        sources.update(dict.fromkeys(r.sources))
    per_source = {
        s: [sc.value if (sc := r.sources.get(s)) is not None and sc.ok else None for r in rewards]
        for s in sources
    }
    if log_metric is not None:
        for s, values in per_source.items():
            mean = _mean(values)
            if mean is not None:  # a source that scored nothing has no mean (NaN would poison it)
                log_metric(f"rewards/{name}/{s}/mean", mean)
        raw = _mean([r.raw for r in rewards])
        if raw is not None:
            log_metric(f"rewards/{name}/raw/mean", raw)
        tiers = {r.group: r.n_tiers for r in rewards if r.n_tiers is not None}
        if tiers:
            log_metric(f"rewards/{name}/n_tiers/mean", sum(tiers.values()) / len(tiers))
        log_metric(
            f"rewards/{name}/abstained", sum(r.reward is None for r in rewards) / len(rewards)
        )
    if log_extra is not None:
        for s, values in per_source.items():
            log_extra(f"{name}/{s}", values)
        log_extra(f"{name}/tier", [r.tier for r in rewards])


def make_reward_function(stack: Stack, name: str = "rewardplug", *, log: bool = True) -> Any:
    """Wrap ``stack`` as a TRL reward function named ``name`` (TRL logs rewards by ``__name__``).

    :param log: report per-source means etc. through TRL's ``log_metric``/``log_extra`` hooks.
    """

    def reward(
        prompts: Sequence[Any],
        completions: Sequence[Any],
        completion_ids: Any = None,
        **columns: Any,
    ) -> list[float | None]:
        samples = trl_samples(prompts, completions, **columns)
        rewards = stack.score(samples)
        if log:
            log_to_trl(rewards, name, columns.get("log_metric"), columns.get("log_extra"))
        return [r.reward for r in rewards]

    reward.__name__ = reward.__qualname__ = name
    return reward


def make_async_reward_function(stack: Stack, name: str = "rewardplug", *, log: bool = True) -> Any:
    """The async variant of :func:`make_reward_function` (``async def``; TRL awaits it).

    TRL runs async reward functions concurrently with each other on its own event loop, and the
    stack's sources run concurrently through their native ``ascore`` -- the choice for stacks of
    network-bound sources (LLM judges behind an API).
    """

    async def reward(
        prompts: Sequence[Any],
        completions: Sequence[Any],
        completion_ids: Any = None,
        **columns: Any,
    ) -> list[float | None]:
        samples = trl_samples(prompts, completions, **columns)
        rewards = await stack.ascore(samples)
        if log:
            log_to_trl(rewards, name, columns.get("log_metric"), columns.get("log_extra"))
        return [r.reward for r in rewards]

    reward.__name__ = reward.__qualname__ = name
    return reward
