"""Scoring for the group assembler: samples on arrival, groups once complete.

:class:`GroupScoring` is the half of :class:`~rewardplug.groups.GroupAssembler` that calls the
stack. A sample is scored as soon as it arrives, micro-batched with whatever else arrives within
``max_wait`` (up to ``max_batch`` samples); a group is combined and discretized when it closes
and its members' scores are in -- together with every other group ready at the same moment, in
one call (the discretizer is vectorized over groups; a call per group was most of the time at
thousands of open groups). Sources marked ``group_scoped`` are scored once per closed group.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rewardplug.types import Reward, Score

if TYPE_CHECKING:
    from rewardplug.stack import Stack
    from rewardplug.types import Sample

__all__ = ["AssemblerStats", "Group", "GroupScoring", "Member"]

log = logging.getLogger("rewardplug.groups")

Ready = tuple["Group", list["Member"], dict[str, list[Score]]]


@dataclass
class AssemblerStats:
    """The assembler's counters, for logs, ``/health`` and tests (``GroupAssembler.stats``;
    :mod:`rewardplug.groups` re-exports the class). Scoring counts its batches here."""

    samples: int = 0
    groups_complete: int = 0
    groups_partial: int = 0
    #: keys that received more than their group's size (the extra ones started a new group)
    groups_reopened: int = 0
    #: extra members answered at once (``extra="padding"``): copies and members on their own
    padding_copies: int = 0
    padding_alone: int = 0
    scoring_batches: int = 0
    #: first members that had to wait for room, and those refused after ``admission_timeout_s``
    waited_for_room: int = 0
    rejected: int = 0
    answered: int = 0
    #: callers that went away before their group was done (their answer was dropped)
    abandoned: int = 0


@dataclass
class Member:
    """One held sample: its scores once scored, its answer once its group is discretized."""

    sample: Sample
    scores: asyncio.Future[dict[str, Score]]
    answer: asyncio.Future[Reward]


@dataclass
class Group:
    """The members of one group key, up to ``size``."""

    key: str
    size: int
    opened: float
    members: list[Member] = field(default_factory=list)
    timer: asyncio.TimerHandle | None = None
    #: answered at once on its own (an extra member with ``extra="padding"``)
    alone: bool = False


class GroupScoring:
    """Scores members on arrival and finishes closed groups for an assembler.

    :param loop: the assembler's event loop (it is bound on the first submit).
    :param spawn: runs a coroutine as one of the assembler's tasks.
    :param answer: sets a member's answer (a reward or an exception), exactly once.
    """

    def __init__(
        self,
        stack: Stack,
        *,
        max_batch: int,
        max_wait: float,
        stats: AssemblerStats,
        loop: Callable[[], asyncio.AbstractEventLoop | None],
        spawn: Callable[[Coroutine[Any, Any, None]], None],
        answer: Callable[[Member, Reward | BaseException], None],
    ):
        self._stack = stack
        self._max_batch = max_batch
        self._max_wait = max_wait
        self._stats = stats
        self._loop = loop
        self._spawn = spawn
        self._answer_member = answer
        names = list(stack.sources)
        self._group_scoped = [n for n in names if getattr(stack.sources[n], "group_scoped", False)]
        self._per_sample = [n for n in names if n not in self._group_scoped]
        self._queue: list[Member] = []
        self._flush: asyncio.TimerHandle | None = None
        self._ready: list[Ready] = []

    def queue(self, member: Member) -> None:
        """Score ``member`` soon: with whatever else arrives within ``max_wait``."""
        self._queue.append(member)
        if len(self._queue) >= self._max_batch:
            self.flush()
        elif self._flush is None:
            loop = self._loop()
            assert loop is not None
            self._flush = loop.call_later(self._max_wait, self.flush)

    def flush(self) -> None:
        """Score everything queued now."""
        if self._flush is not None:
            self._flush.cancel()
            self._flush = None
        while self._queue:
            batch, self._queue = self._queue[: self._max_batch], self._queue[self._max_batch :]
            self._spawn(self._score(batch))

    async def _score(self, members: list[Member]) -> None:
        self._stats.scoring_batches += 1
        try:
            scores = await self._stack.ascore_sources([m.sample for m in members], self._per_sample)
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

    async def finish(self, group: Group) -> None:
        """Wait for ``group``'s scores, then queue it for :meth:`_finish_ready`."""
        members = sorted(group.members, key=lambda m: m.sample.id)  # the canonical order
        try:
            if any(not m.scores.done() for m in members):
                self.flush()  # do not wait for the flush timer: the group is waiting
            per_member = await asyncio.gather(*(m.scores for m in members))
            scores = {name: [s[name] for s in per_member] for name in self._per_sample}
            if self._group_scoped:
                batch = [m.sample for m in members]
                scores.update(await self._stack.ascore_sources(batch, self._group_scoped))
        except asyncio.CancelledError:
            for m in members:
                self._answer_member(
                    m, RuntimeError("scoring was cancelled: the assembler is stopping")
                )
            raise
        except Exception as exc:
            log.exception("group %r could not be scored", group.key)
            for m in members:
                self._answer_member(m, exc)
            return
        # Groups that are ready together are combined and discretized in one call (the
        # discretizer is vectorized over groups; one call per group was most of the time).
        self._ready.append((group, members, scores))
        if len(self._ready) == 1:
            loop = self._loop()
            assert loop is not None
            loop.call_soon(self._finish_ready)

    def _finish_ready(self) -> None:
        ready, self._ready = self._ready, []
        batch: list[Ready] = []
        keys: set[str] = set()
        for item in ready:
            if item[0].key in keys:  # one discretizer group per key in a call
                self._finish_batch(batch)
                batch, keys = [], set()
            batch.append(item)
            keys.add(item[0].key)
        self._finish_batch(batch)

    def _finish_batch(self, ready: list[Ready]) -> None:
        if not ready:
            return
        samples = [m.sample for _, members, _ in ready for m in members]
        scores = {
            name: [s for _, _, per in ready for s in per[name]] for name in self._stack.sources
        }
        try:
            rewards = self._stack.finish(samples, scores)
        except Exception as exc:
            if len(ready) > 1:  # find the group that fails; the others are answered
                for item in ready:
                    self._finish_batch([item])
                return
            log.exception("group %r could not be discretized", ready[0][0].key)
            for m in ready[0][1]:
                self._answer_member(m, exc)
            return
        at = 0
        for group, members, _ in ready:
            mine = rewards[at : at + len(members)]
            at += len(members)
            if group.alone or len(members) < group.size:
                self._stats.groups_partial += 1
                mine = [r.model_copy(update={"partial": True}) for r in mine]
            else:
                self._stats.groups_complete += 1
            for m, r in zip(members, mine, strict=True):
                self._answer_member(m, r)
