"""TRL adapter: a stack as a ``GRPOTrainer`` reward function (sync, or async for network-bound stacks).

TRL calls each reward function as ``fn(prompts=[...], completions=[...], completion_ids=[...],
**columns)`` where ``columns`` are the dataset's other columns as lists, and expects one float (or
None) per completion, in order. Prompts and completions are strings or chat-message lists. TRL
repeats every prompt ``num_generations`` times in a row, so consecutive equal prompts form a group.

TRL (>= 0.2x) also passes ``log_metric(name, value)`` and ``log_extra(column, values)``; when they
are there the adapter logs, next to TRL's own ``rewards/<name>/mean``:

* ``rewards/<name>/<source>/mean`` -- each source's mean point estimate over the samples it scored;
* ``rewards/<name>/<source>/failed`` -- the share of completions it could not score (a source
  that is down shows 1.0 here instead of quietly dropping out of the reward);
* ``rewards/<name>/raw/mean`` -- the combined score before discretizing;
* ``rewards/<name>/n_tiers/mean`` -- tiers per group (1 = the whole group tied);
* ``rewards/<name>/abstained`` -- the fraction of completions the stack abstained on (TRL turns
  their None into NaN and leaves them out of the advantage);
* completion-table columns ``<name>/<source>`` and ``<name>/tier``.

**Several processes.** With more than one process (``accelerate launch``, DeepSpeed, FSDP), TRL
calls every reward function on each process's *local* slice of the generations, and a group of
``num_generations`` completions can straddle two processes; discretizing each half alone would
give the same answer different rewards on different ranks. So when ``torch.distributed`` is
initialized with several processes, the adapter gathers every rank's slice (in rank order, which
is the global batch order), forms groups on the whole batch, lets each rank score a share of the
*whole* groups, gathers the rewards and returns the local slice: every rank gets exactly the
rewards a single process would compute for the whole batch. All ranks must call the reward
function the same number of times (TRL does); use one rewardplug reward function per trainer
(put every source in its stack) so that collectives cannot interleave.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from rewardplug.types import Reward, Sample, _digest

if TYPE_CHECKING:
    from rewardplug.stack import Stack

__all__ = [
    "log_to_trl",
    "make_async_reward_function",
    "make_reward_function",
    "score_across_ranks",
    "trl_samples",
]

#: keyword arguments TRL adds to every call that are not dataset columns
_TRL_KWARGS = ("completion_ids", "trainer_state", "log_metric", "log_extra", "environments")


def _sample_columns(n: int, columns: dict[str, Any]) -> dict[str, Any]:
    """The dataset columns of a call: lists with one entry per completion (not TRL's helpers)."""
    return {
        k: v
        for k, v in columns.items()
        if k not in _TRL_KWARGS and isinstance(v, list | tuple) and len(v) == n
    }


def trl_samples(prompts: Sequence[Any], completions: Sequence[Any], **columns: Any) -> list[Sample]:
    """Samples for a TRL call; consecutive equal prompts form one group.

    Columns that are lists with one entry per completion become sample fields (``reference``,
    ``tests``, ``rubric``, ``id``) or metadata; anything else (TRL's own helpers) is ignored.
    A ``tests`` column may hold JSON strings (nested specs do not fit Arrow schemas well).
    """
    n = len(completions)
    if len(prompts) != n:
        raise ValueError(f"TRL passed {len(prompts)} prompts for {n} completions")
    cols = _sample_columns(n, columns)
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
            # the share this source could not score: 1.0 is a source that is down, not a 0
            log_metric(f"rewards/{name}/{s}/failed", sum(v is None for v in values) / len(values))
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


def _ranks() -> tuple[int, int] | None:
    """(rank, world size) when torch.distributed runs several processes, else None."""
    import sys

    dist = sys.modules.get("torch.distributed")  # never import torch for a single process
    if dist is None or not dist.is_available() or not dist.is_initialized():
        return None
    world = dist.get_world_size()
    return (dist.get_rank(), world) if world > 1 else None


def score_across_ranks(
    stack: Stack,
    prompts: Sequence[Any],
    completions: Sequence[Any],
    rank: int,
    world: int,
    **columns: Any,
) -> list[Reward]:
    """This rank's rewards, computed on whole groups of the batch gathered from every rank.

    A collective call: every rank of the default process group must call it. Each rank scores
    the groups whose index (in order of first appearance) is its rank modulo ``world``.
    """
    import torch.distributed as dist

    n = len(completions)
    local = (
        list(prompts),
        list(completions),
        {k: list(v) for k, v in _sample_columns(n, columns).items()},
    )
    parts: list[Any] = [None] * world
    dist.all_gather_object(parts, local)
    keys = set.intersection(*(set(p[2]) for p in parts))
    samples = trl_samples(
        [x for p in parts for x in p[0]],
        [x for p in parts for x in p[1]],
        **{k: [x for p in parts for x in p[2][k]] for k in keys},
    )
    order = {g: i for i, g in enumerate(dict.fromkeys(s.group for s in samples))}
    mine = [i for i, s in enumerate(samples) if order[s.group] % world == rank]
    try:
        scored: Any = list(zip(mine, stack.score([samples[i] for i in mine]), strict=True))
    except Exception as exc:  # every rank must reach the next collective, or the others hang
        scored = f"rank {rank}: {type(exc).__name__}: {exc}"
    results: list[Any] = [None] * world
    dist.all_gather_object(results, scored)
    failed = [r for r in results if isinstance(r, str)]
    if failed:
        raise RuntimeError("scoring failed on another rank: " + "; ".join(failed))
    by_index = {i: r for part in results for i, r in part}
    start = sum(len(p[1]) for p in parts[:rank])
    return [by_index[i] for i in range(start, start + n)]


def _score_call(
    stack: Stack, prompts: Sequence[Any], completions: Sequence[Any], columns: dict[str, Any]
) -> list[Reward] | None:
    """The rewards of a TRL call on several processes, or None for a single process."""
    ranks = _ranks()
    if ranks is None:
        return None
    return score_across_ranks(stack, prompts, completions, *ranks, **columns)


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
        rewards = _score_call(stack, prompts, completions, columns)
        if rewards is None:
            rewards = stack.score(trl_samples(prompts, completions, **columns))
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
        if _ranks() is not None:
            # collectives block: run them off TRL's event loop
            rewards = await asyncio.to_thread(_score_call, stack, prompts, completions, columns)
        else:
            rewards = await stack.ascore(trl_samples(prompts, completions, **columns))
        if log:
            log_to_trl(rewards, name, columns.get("log_metric"), columns.get("log_extra"))
        return [r.reward for r in rewards]

    reward.__name__ = reward.__qualname__ = name
    return reward
