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
import json
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

from rewardplug import notices
from rewardplug.integrations.trl_logs import log_missing, log_to_trl
from rewardplug.types import Reward, Sample, digest

if TYPE_CHECKING:
    from rewardplug.stack import Stack

__all__ = [
    "log_to_trl",
    "make_async_reward_function",
    "make_reward_function",
    "score_across_ranks",
    "trl_samples",
]

log = logging.getLogger(__name__)

#: keyword arguments TRL adds to every call that are not dataset columns
_TRL_KWARGS = ("completion_ids", "trainer_state", "log_metric", "log_extra", "environments")


def _sample_columns(n: int, columns: dict[str, Any]) -> dict[str, Any]:
    """The dataset columns of a call: lists with one entry per completion (not TRL's helpers)."""
    return {
        k: v
        for k, v in columns.items()
        if k not in _TRL_KWARGS and isinstance(v, list | tuple) and len(v) == n
    }


def trl_samples(
    prompts: Sequence[Any],
    completions: Sequence[Any],
    *,
    num_generations: int | None = None,
    **columns: Any,
) -> list[Sample]:
    """Samples for a TRL call, grouped as TRL groups them.

    With ``num_generations`` (G), consecutive blocks of G completions form the groups (TRL's
    layout; a prompt repeated in the batch is two groups); the batch length must be a multiple of
    G. Without it, consecutive equal prompts form one group (a prompt repeated next to itself then
    pools both of its trainer groups). This helper takes G as given; the reward functions of
    :func:`make_reward_function` read it from the trainer.

    Columns that are lists with one entry per completion become sample fields (``reference``,
    ``tests``, ``rubric``, ``id``) or metadata; anything else (TRL's own helpers) is ignored.
    A ``tests`` column may hold JSON strings (nested specs do not fit Arrow schemas well).
    """
    size = (_check_size(num_generations), "trl_samples(num_generations=...)")
    return _samples(prompts, completions, columns, size, set())


def _check_size(num_generations: int | None) -> int | None:
    if num_generations is not None and (
        isinstance(num_generations, bool)
        or not isinstance(num_generations, int)
        or num_generations < 1
    ):
        raise ValueError(f"num_generations must be a positive int or None, not {num_generations!r}")
    return num_generations


def _trainer(columns: dict[str, Any]) -> Any | None:
    """The trainer behind TRL's ``log_metric`` hook (a bound method of it), if it has a G."""
    trainer = getattr(columns.get("log_metric"), "__self__", None)
    size = getattr(trainer, "num_generations", None)
    return trainer if isinstance(size, int) and not isinstance(size, bool) else None


def _group_size(num_generations: int | None, columns: dict[str, Any]) -> tuple[int | None, str]:
    """G for one call, and where it came from (for messages); None: group by prompt runs.

    The trainer's (reached through TRL's ``log_metric`` hook) ``num_generations`` in training,
    ``num_generations_eval`` in evaluation (``trainer.model.training`` False, as TRL decides);
    else the explicit ``num_generations``. In training an explicit value that differs from the
    trainer's is a ValueError.
    """
    trainer = _trainer(columns)
    if trainer is None:
        return num_generations, "as_trl_reward(num_generations=...)"
    training = getattr(getattr(trainer, "model", None), "training", True)
    train_size = trainer.num_generations
    if not training:
        size = getattr(trainer, "num_generations_eval", None) or train_size
        return size, "the trainer's num_generations_eval (evaluation)"
    if num_generations is not None and num_generations != train_size:
        raise ValueError(
            f"the reward function was built with num_generations={num_generations}, but the "
            f"trainer ({type(trainer).__name__}) generates num_generations={train_size} "
            "completions per prompt: pass the trainer's value (or leave num_generations out, "
            "and it is read from the trainer)"
        )
    return train_size, "the trainer's num_generations (training)"


def _notice(
    seen: set[str], topic: str, message: str, level: int = logging.WARNING, warn: bool = True
) -> None:
    """Log ``message`` (and warn, when ``warn``) the first time ``topic`` comes up in ``seen``.

    A warning points at the trainer's call of the reward function; the log record repeats it
    only for a configured log (never twice on stderr)."""
    if topic in seen:
        return
    seen.add(topic)
    if not warn:
        log.log(level, message)
        return
    notices.warn(message)
    if log.hasHandlers():
        log.log(level, message, extra={notices.SHOWN: True})


def _group_ids(keys: Sequence[str], size: tuple[int | None, str], seen: set[str]) -> list[str]:
    """One group id per completion: blocks of G when G is known, else runs of equal prompts."""
    n, (g, origin) = len(keys), size
    if g is None:
        ids, runs, run, previous = [], [], -1, object()
        for key in keys:
            if key != previous:
                run, previous = run + 1, key
                runs.append(0)
            runs[-1] += 1
            ids.append(f"{run}:{key}")
        if len(set(runs)) > 1:
            _notice(
                seen,
                "runs",
                f"rewardplug: groups found as runs of equal prompts (no trainer in reach, no "
                f"num_generations) have different sizes {sorted(set(runs))} in one call: a "
                "prompt repeated next to itself in the batch pools its trainer groups into one "
                "comparison pool. Pass as_trl_reward(num_generations=G) to group by blocks of G.",
                level=logging.INFO,
                warn=False,
            )
        return ids
    if n % g:
        raise ValueError(
            f"TRL passed {n} completions, not a multiple of num_generations={g} (from {origin}), "
            "so they cannot be split into groups of G: set num_generations to the number of "
            "completions the trainer generates per prompt (GRPOConfig.num_generations; "
            "num_generations_eval in evaluation), or leave it out to read it from the trainer"
        )
    ids = []
    for start in range(0, n, g):
        block = keys[start : start + g]
        if any(k != block[0] for k in block):
            _notice(
                seen,
                "mixed",
                f"rewardplug: completions {start}..{start + g - 1}, a block of num_generations={g} "
                f"(from {origin}), hold different prompts; each block is still discretized as one "
                "group. TRL repeats every prompt G times in a row, so this usually means G is not "
                "the trainer's: check GRPOConfig.num_generations / num_generations_eval and the "
                "num_generations given to as_trl_reward (a custom rollout that reorders "
                "completions breaks the blocks too).",
            )
        ids.extend([f"{start // g}:{block[0]}"] * g)
    return ids


def _samples(
    prompts: Sequence[Any],
    completions: Sequence[Any],
    columns: dict[str, Any],
    size: tuple[int | None, str],
    seen: set[str],
) -> list[Sample]:
    n = len(completions)
    if len(prompts) != n:
        raise ValueError(f"TRL passed {len(prompts)} prompts for {n} completions")
    cols = _sample_columns(n, columns)
    groups = _group_ids([digest(p) for p in prompts], size, seen)
    samples = []
    for i, (prompt, completion) in enumerate(zip(prompts, completions, strict=True)):
        fields = {k: v[i] for k, v in cols.items()}
        if isinstance(fields.get("tests"), str):
            # Nested test specs are awkward in Arrow-backed datasets: a JSON string is accepted.
            fields["tests"] = _json_object(fields["tests"], "tests", i)
        fields.setdefault("id", str(i))
        fields["id"] = str(fields["id"]) + (f"#{i}" if "id" in cols else "")
        samples.append(
            Sample.model_validate(
                {**fields, "group": groups[i], "prompt": prompt, "response": completion}
            )
        )
    return samples


def _json_object(text: str, column: str, index: int) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"column {column!r}, row {index}: not a JSON object ({exc})") from None


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
    size = (_check_size(num_generations), "score_across_ranks(num_generations=...)")
    return _score_across_ranks(stack, prompts, completions, rank, world, columns, size, set())


def _score_across_ranks(
    stack: Stack,
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
        {k: list(v) for k, v in _sample_columns(n, columns).items()},
    )
    parts: list[Any] = [None] * world
    dist.all_gather_object(parts, local)
    keys = set.intersection(*(set(p[2]) for p in parts))
    # every rank holds the same global batch, so every rank raises here alike (no rank hangs)
    samples = _samples(
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
    stack: Stack,
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
    stack: Stack,
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
    _check_size(num_generations)
    seen: set[str] = set()  # what this function already warned about

    def reward(
        prompts: Sequence[Any],
        completions: Sequence[Any],
        completion_ids: Any = None,
        **columns: Any,
    ) -> list[float | None]:
        size = _group_size(num_generations, columns)
        before = Counter(stack.missing_inputs)
        rewards = _score_call(stack, prompts, completions, columns, size, seen)
        if rewards is None:
            rewards = stack.score(_samples(prompts, completions, columns, size, seen))
        if log:
            log_to_trl(rewards, name, columns.get("log_metric"), columns.get("log_extra"))
            log_missing(stack.missing_inputs - before, name, columns.get("log_metric"))
        return [r.reward for r in rewards]

    reward.__name__ = reward.__qualname__ = name
    return reward


def make_async_reward_function(
    stack: Stack,
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
    _check_size(num_generations)
    seen: set[str] = set()

    async def reward(
        prompts: Sequence[Any],
        completions: Sequence[Any],
        completion_ids: Any = None,
        **columns: Any,
    ) -> list[float | None]:
        size = _group_size(num_generations, columns)
        before = Counter(stack.missing_inputs)
        ranks = _ranks()
        if ranks is not None:
            # collectives block: run them off TRL's event loop
            rank, world = ranks
            rewards = await asyncio.to_thread(
                _score_across_ranks, stack, prompts, completions, rank, world, columns, size, seen
            )
        else:
            rewards = await stack.ascore(_samples(prompts, completions, columns, size, seen))
        if log:
            log_to_trl(rewards, name, columns.get("log_metric"), columns.get("log_extra"))
            log_missing(stack.missing_inputs - before, name, columns.get("log_metric"))
        return [r.reward for r in rewards]

    reward.__name__ = reward.__qualname__ = name
    return reward
