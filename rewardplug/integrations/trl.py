"""TRL adapter: a stack as a ``GRPOTrainer`` reward function (sync, or async for network-bound stacks).

TRL calls each reward function as ``fn(prompts=[...], completions=[...], completion_ids=[...],
**columns)`` where ``columns`` are the dataset's other columns as lists, and expects one float (or
None) per completion, in order. Prompts and completions are strings or chat-message lists.

**Groups.** TRL generates ``G`` completions per prompt and lays them out as consecutive blocks of
``G`` (``RepeatSampler``); its advantages are computed per block of the gathered global batch. The
adapter finds the same blocks, by position and not by prompt text (a prompt the dataset holds
twice is two groups, even when both copies land next to each other), with ``G``:

* read from the trainer when TRL hands it over: TRL passes ``log_metric``, a bound method of the
  trainer, whose ``num_generations`` (training) or ``num_generations_eval`` (evaluation, i.e.
  ``trainer.model.training`` is False -- TRL's own test) is used. An explicit
  ``num_generations=`` must then agree with the trainer's in training (else a ValueError naming
  both); evaluation always uses the trainer's ``num_generations_eval`` (TRL sets it to
  ``num_generations`` when not given).
* else the explicit ``num_generations=`` (``stack.as_trl_reward(num_generations=G)``);
* else (no trainer in reach, no ``G``: direct calls, other trainers) runs of consecutive equal
  prompts form a group -- and a prompt repeated next to itself in a batch then pools both of its
  trainer groups into one comparison pool (logged once, at INFO, when runs of one call differ in
  length).

A batch whose length is not a multiple of ``G`` raises a ValueError; a block whose prompts are not
all equal is still one group, with a warning (once per reward function).

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
is the global batch order), forms groups on the whole batch (blocks of ``G`` of the global batch,
as TRL does), lets each rank score a share of the *whole* groups, gathers the rewards and returns
the local slice: every rank gets exactly the rewards a single process would compute for the whole
batch. All ranks must call the reward
function the same number of times (TRL does); use one rewardplug reward function per trainer
(put every source in its stack) so that collectives cannot interleave.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from rewardplug.integrations.trl_groups import (
    call_samples,
    check_num_generations,
    group_size_of,
    sample_columns,
    trl_samples,
)
from rewardplug.integrations.trl_logs import log_missing, log_to_trl
from rewardplug.types import Reward

if TYPE_CHECKING:
    from rewardplug.types import Sample

__all__ = [
    "log_to_trl",
    "make_async_reward_function",
    "make_reward_function",
    "score_across_ranks",
    "trl_samples",
]

log = logging.getLogger(__name__)


class ScoringStack(Protocol):
    """What these reward functions use of a :class:`rewardplug.stack.Stack`, typed structurally:
    the stack builds them (``Stack.as_trl_reward``), so this front end does not import it."""

    missing_inputs: Counter[tuple[str, str]]

    def score(self, samples: Iterable[Sample | Mapping[str, Any]]) -> list[Reward]: ...

    async def ascore(self, samples: Iterable[Sample | Mapping[str, Any]]) -> list[Reward]: ...


def _ranks() -> tuple[int, int] | None:
    """(rank, world size) when torch.distributed runs several processes, else None."""
    import sys

    dist = sys.modules.get("torch.distributed")  # never import torch for a single process
    if dist is None or not dist.is_available() or not dist.is_initialized():
        return None
    world = dist.get_world_size()
    return (dist.get_rank(), world) if world > 1 else None


def score_across_ranks(
    stack: ScoringStack,
    prompts: Sequence[Any],
    completions: Sequence[Any],
    rank: int,
    world: int,
    *,
    num_generations: int | None = None,
    **columns: Any,
) -> list[Reward]:
    """This rank's rewards, computed on whole groups of the batch gathered from every rank.

    A collective call: every rank of the default process group must call it. The groups are
    formed on the gathered global batch (in rank order) as :func:`trl_samples` forms them: blocks
    of ``num_generations`` when given, else runs of equal prompts. Each rank scores the groups
    whose index (in batch order) is its rank modulo ``world``.
    """
    size = (check_num_generations(num_generations), "score_across_ranks(num_generations=...)")
    return _score_across_ranks(stack, prompts, completions, rank, world, columns, size, set())


def _score_across_ranks(
    stack: ScoringStack,
    prompts: Sequence[Any],
    completions: Sequence[Any],
    rank: int,
    world: int,
    columns: dict[str, Any],
    size: tuple[int | None, str],
    seen: set[str],
) -> list[Reward]:
    import torch.distributed as dist

    n = len(completions)
    local = (
        list(prompts),
        list(completions),
        {k: list(v) for k, v in sample_columns(n, columns).items()},
    )
    parts: list[Any] = [None] * world
    dist.all_gather_object(parts, local)
    keys = set.intersection(*(set(p[2]) for p in parts))
    # every rank holds the same global batch, so every rank raises here alike (no rank hangs)
    samples = call_samples(
        [x for p in parts for x in p[0]],
        [x for p in parts for x in p[1]],
        {k: [x for p in parts for x in p[2][k]] for k in keys},
        size,
        seen,
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
    stack: ScoringStack,
    prompts: Sequence[Any],
    completions: Sequence[Any],
    columns: dict[str, Any],
    size: tuple[int | None, str],
    seen: set[str],
) -> list[Reward] | None:
    """The rewards of a TRL call on several processes, or None for a single process."""
    ranks = _ranks()
    if ranks is None:
        return None
    return _score_across_ranks(stack, prompts, completions, *ranks, columns, size, seen)


def make_reward_function(
    stack: ScoringStack,
    name: str = "rewardplug",
    *,
    log: bool = True,
    num_generations: int | None = None,
) -> Callable[..., list[float | None]]:
    """Wrap ``stack`` as a TRL reward function named ``name`` (TRL logs rewards by ``__name__``).

    :param log: report per-source means etc. through TRL's ``log_metric``/``log_extra`` hooks.
    :param num_generations: G, the completions per prompt: groups are consecutive blocks of G
        (of the global batch on several processes). Under a TRL trainer G is read from it (its
        ``num_generations`` in training, ``num_generations_eval`` in evaluation) and an explicit
        G must match the training one; without a trainer and without G, runs of equal prompts
        are the groups (a prompt repeated next to itself then pools two trainer groups).
    """
    check_num_generations(num_generations)
    seen: set[str] = set()  # what this function already warned about

    def reward(
        prompts: Sequence[Any],
        completions: Sequence[Any],
        completion_ids: Any = None,
        **columns: Any,
    ) -> list[float | None]:
        size = group_size_of(num_generations, columns)
        before = Counter(stack.missing_inputs)
        rewards = _score_call(stack, prompts, completions, columns, size, seen)
        if rewards is None:
            rewards = stack.score(call_samples(prompts, completions, columns, size, seen))
        if log:
            log_to_trl(rewards, name, columns.get("log_metric"), columns.get("log_extra"))
            log_missing(stack.missing_inputs - before, name, columns.get("log_metric"))
        return [r.reward for r in rewards]

    reward.__name__ = reward.__qualname__ = name
    return reward


def make_async_reward_function(
    stack: ScoringStack,
    name: str = "rewardplug",
    *,
    log: bool = True,
    num_generations: int | None = None,
) -> Callable[..., Awaitable[list[float | None]]]:
    """The async variant of :func:`make_reward_function` (``async def``; TRL awaits it).

    TRL runs async reward functions concurrently with each other on its own event loop, and the
    stack's sources run concurrently through their native ``ascore`` -- the choice for stacks of
    network-bound sources (LLM judges behind an API). Groups are found as in
    :func:`make_reward_function`.
    """
    check_num_generations(num_generations)
    seen: set[str] = set()

    async def reward(
        prompts: Sequence[Any],
        completions: Sequence[Any],
        completion_ids: Any = None,
        **columns: Any,
    ) -> list[float | None]:
        size = group_size_of(num_generations, columns)
        before = Counter(stack.missing_inputs)
        ranks = _ranks()
        if ranks is not None:
            # collectives block: run them off TRL's event loop
            rank, world = ranks
            rewards = await asyncio.to_thread(
                _score_across_ranks, stack, prompts, completions, rank, world, columns, size, seen
            )
        else:
            rewards = await stack.ascore(call_samples(prompts, completions, columns, size, seen))
        if log:
            log_to_trl(rewards, name, columns.get("log_metric"), columns.get("log_extra"))
            log_missing(stack.missing_inputs - before, name, columns.get("log_metric"))
        return [r.reward for r in rewards]

    reward.__name__ = reward.__qualname__ = name
    return reward
