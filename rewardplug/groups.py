"""The group assembler: tie-grouped rewards for callers that hand over one sample at a time.

The discretizer only means something when it sees a whole group (the G responses to one prompt),
but modern trainers do not hand one over: verl's reward loop scores one sample per call across
several workers, OpenRLHF posts one sample per request. :class:`GroupAssembler` collects samples
by a group key until the expected ``group_size`` members are there, then discretizes them
together and answers every member's caller::

    assembler = GroupAssembler(stack, group_size=8, timeout_s=30)
    reward = await assembler.submit(sample)                # waits for the sample's group
    rewards = await assembler.submit_many(samples, keys)   # a partial batch

What it guarantees:

* **Same result as one call.** A group's rewards are exactly those of ``stack.score(group)``,
  whatever the arrival order and batching: members are put in a canonical order (by sample id)
  before they are combined and discretized, and sources score each sample independently of its
  batch (their draws are seeded per sample, a rule for every source).
* **Scoring overlaps arrival.** A sample is scored as soon as it arrives (micro-batched with
  whatever else arrived within ``max_wait_ms``, up to ``max_batch`` samples); only combining and
  discretizing wait for the group. A source that needs the whole group at once says so with
  ``RewardSource.group_scoped = True`` and is scored when the group is complete.
* **Deadlines.** A group that is not complete ``timeout_s`` after its first member arrived is
  discretized with the members it has; their rewards say ``partial=True`` and ``group_size`` says
  how many members there were. Nobody waits forever.
* **Keys are reused.** A group closes when it is complete; the next sample with the same key
  starts a new group (a group larger than G is split into groups of G, in arrival order).
* **Bounded.** At most ``max_open_groups`` groups and ``max_samples`` held samples; past that,
  :class:`AssemblerFull` (a server's 503) instead of unbounded memory.
* **Cancellation-safe; nothing answered twice or lost.** A caller that goes away (a cancelled
  ``submit``) leaves its sample in its group -- the others still need it -- and its answer is
  dropped. Every member's answer is set exactly once, with a reward or with the exception that
  prevented one (scoring failures are per-sample errors in the reward, never an exception).

An assembler belongs to one event loop (the one its first ``submit`` ran on).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rewardplug.types import Reward, Sample, Score

if TYPE_CHECKING:
    from rewardplug.stack import Stack

__all__ = ["AssemblerFull", "AssemblerStats", "GroupAssembler"]

log = logging.getLogger(__name__)


class AssemblerFull(RuntimeError):
    """Too many open groups or held samples: retry later (HTTP 503)."""


@dataclass
class _Member:
    sample: Sample
    scores: asyncio.Future[dict[str, Score]]
    answer: asyncio.Future[Reward]


@dataclass
class _Group:
    key: str
    size: int
    opened: float
    members: list[_Member] = field(default_factory=list)
    timer: asyncio.TimerHandle | None = None


@dataclass
class AssemblerStats:
    """Counters for logs, ``/health`` and tests."""

    samples: int = 0
    groups_complete: int = 0
    groups_partial: int = 0
    #: keys that received more than ``group_size`` members (the extra ones started a new group)
    groups_reopened: int = 0
    scoring_batches: int = 0
    rejected: int = 0
    answered: int = 0
    #: callers that went away before their group was done (their answer was dropped)
    abandoned: int = 0


class GroupAssembler:
    """Collects samples into groups of ``group_size`` and discretizes each group whole.

    :param stack: the stack that scores, combines and discretizes.
    :param group_size: expected members per group (GRPO's G: TRL ``num_generations``, verl
        ``rollout.n``, OpenRLHF ``n_samples_per_prompt``).
    :param timeout_s: a group still incomplete this long after its first member arrived is
        discretized as it is (``partial``); None waits forever (only for callers that know every
        member will come).
    :param max_open_groups: groups that may be open at once; past it :class:`AssemblerFull`.
    :param max_samples: samples held (waiting or scored, not yet answered); past it
        :class:`AssemblerFull`.
    :param max_batch: samples per on-arrival scoring call.
    :param max_wait_ms: how long an arrived sample waits for company before it is scored.
    """

    def __init__(
        self,
        stack: Stack,
        group_size: int,
        *,
        timeout_s: float | None = 60.0,
        max_open_groups: int = 4096,
        max_samples: int = 65536,
        max_batch: int = 256,
        max_wait_ms: float = 5.0,
    ):
        if group_size < 1:
            raise ValueError(f"group_size must be >= 1, not {group_size}")
        if timeout_s is not None and timeout_s <= 0:
            raise ValueError(f"timeout_s must be > 0 (or None to wait forever), not {timeout_s}")
        if max_open_groups < 1 or max_samples < 1 or max_batch < 1 or max_wait_ms < 0:
            raise ValueError(
                "max_open_groups, max_samples, max_batch must be >= 1, max_wait_ms >= 0"
            )
        self.stack = stack
        self.group_size = group_size
        self.timeout_s = timeout_s
        self.max_open_groups = max_open_groups
        self.max_samples = max_samples
        self.max_batch = max_batch
        self.max_wait = max_wait_ms / 1000.0
        self.stats = AssemblerStats()
        names = list(stack.sources)
        self._group_scoped = [n for n in names if getattr(stack.sources[n], "group_scoped", False)]
        self._per_sample = [n for n in names if n not in self._group_scoped]
        self._open: dict[str, _Group] = {}
        self._held = 0
        self._closed: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._queue: list[_Member] = []
        self._flush: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopped = False

    # -- public ------------------------------------------------------------------------------

    @property
    def open_groups(self) -> int:
        """Groups waiting for members."""
        return len(self._open)

    @property
    def held(self) -> int:
        """Samples accepted and not yet answered."""
        return self._held

    async def submit(self, sample: Sample | Mapping[str, Any], key: str | None = None) -> Reward:
        """Add one sample to its group (``key``, default ``sample.group``); its reward when done."""
        return await self._wait(self._add(sample, key))

    async def submit_many(
        self,
        samples: Iterable[Sample | Mapping[str, Any]],
        keys: Sequence[str | None] | None = None,
    ) -> list[Reward]:
        """Add several samples at once (all admitted, or none); their rewards, in order."""
        batch = [s if isinstance(s, Sample) else Sample.model_validate(s) for s in samples]
        keys = list(keys) if keys is not None else [None] * len(batch)
        if len(keys) != len(batch):
            raise ValueError(f"{len(keys)} keys for {len(batch)} samples; they must match")
        self._admit([k if k is not None else s.group for s, k in zip(batch, keys, strict=True)])
        answers = [self._add(s, k, admitted=True) for s, k in zip(batch, keys, strict=True)]
        return list(await asyncio.gather(*(self._wait(a) for a in answers)))

    async def close(self) -> None:
        """Answer every open group now (as partial), wait for them, and stop accepting samples."""
        self._stopped = True
        for group in list(self._open.values()):
            self._close_group(group)
        self._score_queued()
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    # -- admission and grouping --------------------------------------------------------------

    def _admit(self, keys: Sequence[str]) -> None:
        """Raise :class:`AssemblerFull` unless ``keys``' samples fit in the bounds."""
        if self._stopped:
            raise RuntimeError("the group assembler is closed")
        new = len({k for k in keys if k not in self._open})
        if self._held + len(keys) > self.max_samples:
            self.stats.rejected += 1
            raise AssemblerFull(
                f"{self._held} samples are waiting for their groups (limit {self.max_samples}); "
                "retry shortly, or raise the limit"
            )
        if len(self._open) + new > self.max_open_groups:
            self.stats.rejected += 1
            raise AssemblerFull(
                f"{len(self._open)} groups are open (limit {self.max_open_groups}); retry "
                "shortly, or raise the limit (is the group size right? groups that never "
                "complete stay open until their deadline)"
            )

    def _add(
        self, sample: Sample | Mapping[str, Any], key: str | None, admitted: bool = False
    ) -> asyncio.Future[Reward]:
        loop = self._bind()
        if not isinstance(sample, Sample):
            sample = Sample.model_validate(sample)
        key = sample.group if key is None else str(key)
        if not admitted:
            self._admit([key])
        group = self._open.get(key)
        if group is None:
            group = _Group(key, self.group_size, time.monotonic())
            self._open[key] = group
            if key in self._closed:
                self.stats.groups_reopened += 1
                log.info(
                    "group %r got more than %d members; the rest start a new group",
                    key,
                    self.group_size,
                )
            if self.timeout_s is not None:
                group.timer = loop.call_later(self.timeout_s, self._expire, group)
        # The group key is the discretizer's group: members are compared with each other only.
        member = _Member(
            sample.model_copy(update={"group": key}), loop.create_future(), loop.create_future()
        )
        group.members.append(member)
        self._held += 1
        self.stats.samples += 1
        self._queue_for_scoring(member)
        if len(group.members) >= group.size:
            self._close_group(group)
        return member.answer

    async def _wait(self, answer: asyncio.Future[Reward]) -> Reward:
        try:
            # shield: a cancelled caller must not cancel the answer the group will still set
            return await asyncio.shield(answer)
        except asyncio.CancelledError:
            if not answer.done():
                self.stats.abandoned += 1
            raise

    def _bind(self) -> asyncio.AbstractEventLoop:
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._loop = loop
        elif self._loop is not loop:
            raise RuntimeError(
                "a GroupAssembler belongs to the event loop it first ran on; create one per loop"
            )
        return loop

    def _expire(self, group: _Group) -> None:
        if self._open.get(group.key) is group:
            log.warning(
                "group %r: %d of %d members after %.1f s; discretizing it as a partial group",
                group.key,
                len(group.members),
                group.size,
                self.timeout_s,
            )
            self._close_group(group)

    def _close_group(self, group: _Group) -> None:
        """No more members for ``group``: discretize it once its members are scored."""
        if self._open.get(group.key) is group:
            del self._open[group.key]
        if group.timer is not None:
            group.timer.cancel()
        self._closed[group.key] = None
        while len(self._closed) > max(4 * self.max_open_groups, 1024):
            self._closed.popitem(last=False)
        self._spawn(self._finish(group))

    # -- scoring -----------------------------------------------------------------------------

    def _queue_for_scoring(self, member: _Member) -> None:
        self._queue.append(member)
        if len(self._queue) >= self.max_batch:
            self._score_queued()
        elif self._flush is None:
            assert self._loop is not None
            self._flush = self._loop.call_later(self.max_wait, self._score_queued)

    def _score_queued(self) -> None:
        if self._flush is not None:
            self._flush.cancel()
            self._flush = None
        while self._queue:
            batch, self._queue = self._queue[: self.max_batch], self._queue[self.max_batch :]
            self._spawn(self._score(batch))

    async def _score(self, members: list[_Member]) -> None:
        self.stats.scoring_batches += 1
        try:
            scores = await self.stack.ascore_sources([m.sample for m in members], self._per_sample)
        except asyncio.CancelledError:
            for m in members:
                m.scores.cancel()
            raise
        except Exception as exc:  # a bug in the stack: fail these members, do not hang them
            for m in members:
                m.scores.set_exception(exc)
            return
        for i, m in enumerate(members):
            m.scores.set_result({name: scores[name][i] for name in scores})

    async def _finish(self, group: _Group) -> None:
        members = sorted(group.members, key=lambda m: m.sample.id)  # the canonical order
        partial = len(members) < group.size
        try:
            if any(not m.scores.done() for m in members):
                self._score_queued()  # do not wait for the flush timer: the group is waiting
            per_member = await asyncio.gather(*(m.scores for m in members))
            batch = [m.sample for m in members]
            scores = {name: [s[name] for s in per_member] for name in self._per_sample}
            if self._group_scoped:
                scores.update(await self.stack.ascore_sources(batch, self._group_scoped))
            scores = {name: scores[name] for name in self.stack.sources}  # the stack's order
            rewards = self.stack.finish(batch, scores)
        except asyncio.CancelledError:
            for m in members:
                self._answer(m, RuntimeError("scoring was cancelled: the assembler is stopping"))
            raise
        except Exception as exc:
            log.exception("group %r could not be discretized", group.key)
            for m in members:
                self._answer(m, exc)
            return
        if partial:
            self.stats.groups_partial += 1
            rewards = [r.model_copy(update={"partial": True}) for r in rewards]
        else:
            self.stats.groups_complete += 1
        for m, r in zip(members, rewards, strict=True):
            self._answer(m, r)

    def _answer(self, member: _Member, result: Reward | BaseException) -> None:
        self._held -= 1
        if member.answer.done():  # only a bug could get here: never answer twice
            log.error("sample %r was already answered", member.sample.id)
            return
        self.stats.answered += 1
        if isinstance(result, BaseException):
            member.answer.set_exception(result)
            # A caller that went away never reads it; the shielded waiter still gets it.
            member.answer.exception()
        else:
            member.answer.set_result(result)

    def _spawn(self, coro: Any) -> None:
        assert self._loop is not None
        task = self._loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
