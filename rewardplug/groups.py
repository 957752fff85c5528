"""The group assembler: tie-grouped rewards for callers that hand over one sample at a time.

The discretizer only means something when it sees a whole group (the G responses to one prompt),
but modern trainers do not hand one over: verl's reward loop scores one sample per call across
several workers, OpenRLHF posts one sample per request. :class:`GroupAssembler` collects samples
by a group key until the group's expected size is reached, then discretizes them together and
answers every member's caller::

    assembler = GroupAssembler(stack, group_size=8, timeout_s=30)
    reward = await assembler.submit(sample)                  # waits for the sample's group
    reward = await assembler.submit(sample, group_size=1)    # e.g. validation: complete at once
    rewards = await assembler.submit_many(samples, keys)     # a partial batch

What it guarantees:

* **Same result as one call.** A group's rewards are exactly those of ``stack.score(group)``,
  whatever the arrival order and batching: members are put in a canonical order (by sample id)
  before they are combined and discretized, and sources score each sample independently of its
  batch (their draws are seeded per sample, a rule for every source).
* **Scoring overlaps arrival.** A sample is scored as soon as it arrives (micro-batched with
  whatever else arrived within ``max_wait_ms``, up to ``max_batch`` samples); only combining and
  discretizing wait for the group. A source that needs the whole group at once says so with
  ``RewardSource.group_scoped = True`` and is scored when the group is complete.
* **A group's size is per group.** ``group_size`` is the default; a caller that knows better (a
  validation phase with another n, a group of one) passes ``group_size=`` with the sample. A
  group of one is complete on arrival and never waits.
* **Deadlines.** A group that is not complete ``timeout_s`` after its first member arrived is
  discretized with the members it has; their rewards say ``partial=True`` and ``group_size`` says
  how many members there were. Nobody waits forever.
* **Admission is per group, and a group that has started always finishes.** A new group is
  admitted when there is room for *all* of its members (``max_samples`` counts the held samples
  plus the members each open group still expects) and for one more open group
  (``max_open_groups``). When there is not, the *first* member waits until there is (at most
  ``admission_timeout_s``, then :class:`AssemblerFull`); the later members of an admitted group
  never wait and are never refused. Overload delays answers; it never loses a held sample.
* **More members than the group's size** (``extra``): with ``"new_group"`` (the default) the
  next member of a key whose group is complete starts the next group of that key, so a prompt
  asked twice is one comparison pool cut into groups of G in arrival order. With ``"padding"``
  (trainers whose keys are unique per group, such as verl's ``uid``, where an extra member is a
  padded copy) it is answered at once: with the reward of the identical member of the group just
  completed (same sample id), or else on its own as a partial group of one.
* **Cancellation-safe; nothing answered twice or lost.** A caller that goes away (a cancelled
  ``submit``) leaves its sample in its group -- the others still need it -- and its answer is
  dropped. Every member's answer is set exactly once, with a reward or with the exception that
  prevented one (scoring failures are per-sample errors in the reward, never an exception).

Memory: a held sample costs its text plus, once scored, its sources' draws (a few hundred bytes
to a few KB); the defaults (16,384 held samples, 8,192 open groups) cover OpenRLHF's default
rollout (1,024 prompts x 8) and a whole verl validation set, at tens of MB for typical texts.

An assembler belongs to one event loop (the one its first ``submit`` ran on).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

from rewardplug.admission import AssemblerFull, Room
from rewardplug.group_scoring import AssemblerStats, Group, GroupScoring, Member
from rewardplug.types import Reward, Sample

if TYPE_CHECKING:
    from rewardplug.stack import Stack

__all__ = ["AssemblerFull", "AssemblerStats", "GroupAssembler"]

log = logging.getLogger(__name__)

Extra = Literal["new_group", "padding"]
#: completed groups remembered for padded copies (``extra="padding"``)
RECENT_GROUPS = 4096


class GroupAssembler:
    """Collects samples into groups and discretizes each group whole.

    :param stack: the stack that scores, combines and discretizes.
    :param group_size: expected members per group unless a submit says otherwise (GRPO's G: TRL
        ``num_generations``, verl ``rollout.n``, OpenRLHF ``--rollout.n_samples_per_prompt``).
    :param timeout_s: a group still incomplete this long after its first member arrived is
        discretized as it is (``partial``); None waits forever (only for callers that know every
        member will come).
    :param max_open_groups: groups that may be open at once.
    :param max_samples: held samples plus the members open groups still expect.
    :param max_batch: samples per on-arrival scoring call.
    :param max_wait_ms: how long an arrived sample waits for company before it is scored.
    :param admission_timeout_s: how long a new group's first member waits for room before
        :class:`AssemblerFull`; None waits as long as it takes.
    :param extra: what a member beyond its group's size does (module docstring).
    """

    def __init__(
        self,
        stack: Stack,
        group_size: int,
        *,
        timeout_s: float | None = 60.0,
        max_open_groups: int = 8192,
        max_samples: int = 16384,
        max_batch: int = 256,
        max_wait_ms: float = 5.0,
        admission_timeout_s: float | None = None,
        extra: Extra = "new_group",
    ):
        _check_size(group_size, "group_size")
        if timeout_s is not None and timeout_s <= 0:
            raise ValueError(f"timeout_s must be > 0 (or None to wait forever), not {timeout_s}")
        if max_open_groups < 1 or max_samples < 1 or max_batch < 1 or max_wait_ms < 0:
            raise ValueError(
                "max_open_groups, max_samples, max_batch must be >= 1, max_wait_ms >= 0"
            )
        if admission_timeout_s is not None and admission_timeout_s < 0:
            raise ValueError(f"admission_timeout_s must be >= 0 or None, not {admission_timeout_s}")
        if extra not in ("new_group", "padding"):
            raise ValueError(f"extra={extra!r}; use 'new_group' or 'padding'")
        self.stack = stack
        self.group_size = group_size
        self.timeout_s = timeout_s
        self.max_open_groups = max_open_groups
        self.max_samples = max_samples
        self.max_batch = max_batch
        self.max_wait = max_wait_ms / 1000.0
        self.admission_timeout_s = admission_timeout_s
        self.extra = extra
        self.stats = AssemblerStats()
        self._open: dict[str, Group] = {}
        self._held = 0
        self._room = Room(max_open_groups, max_samples, admission_timeout_s)
        #: recently completed keys; with ``extra="padding"`` their members' answers by sample id
        self._closed: collections.OrderedDict[str, dict[str, asyncio.Future[Reward]] | None] = (
            collections.OrderedDict()
        )
        self._tasks: set[asyncio.Task[Any]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._warned_extra = False
        self._scoring = GroupScoring(
            stack,
            max_batch=max_batch,
            max_wait=self.max_wait,
            stats=self.stats,
            loop=lambda: self._loop,
            spawn=self._spawn,
            answer=self._answer,
        )

    # -- public ------------------------------------------------------------------------------

    @property
    def open_groups(self) -> int:
        """Groups waiting for members."""
        return len(self._open)

    @property
    def held(self) -> int:
        """Samples accepted and not yet answered."""
        return self._held

    @property
    def waiting_for_room(self) -> int:
        """First members of new groups waiting for room."""
        return self._room.waiting

    async def submit(
        self,
        sample: Sample | Mapping[str, Any],
        key: str | None = None,
        *,
        group_size: int | None = None,
    ) -> Reward:
        """Add one sample to its group (``key``, default ``sample.group``); its reward when done.

        ``group_size`` overrides the assembler's for a group this sample opens (1: complete on
        arrival)."""
        self._bind()
        item = self._item(sample, key, group_size)
        await self._admit([item])
        return await self._wait(self._add(*item))

    async def submit_many(
        self,
        samples: Iterable[Sample | Mapping[str, Any]],
        keys: Sequence[str | None] | None = None,
        *,
        group_sizes: Sequence[int | None] | None = None,
    ) -> list[Reward]:
        """Add several samples at once (admitted together); their rewards, in order."""
        self._bind()
        batch = [s if isinstance(s, Sample) else Sample.model_validate(s) for s in samples]
        keys = list(keys) if keys is not None else [None] * len(batch)
        sizes = list(group_sizes) if group_sizes is not None else [None] * len(batch)
        if not (len(keys) == len(sizes) == len(batch)):
            raise ValueError(
                f"{len(keys)} keys and {len(sizes)} group sizes for {len(batch)} samples; "
                "they must match"
            )
        items = [self._item(s, k, n) for s, k, n in zip(batch, keys, sizes, strict=True)]
        await self._admit(items)
        answers = [self._add(*item) for item in items]  # no await since admission
        return list(await asyncio.gather(*(self._wait(a) for a in answers)))

    def _item(
        self, sample: Sample | Mapping[str, Any], key: str | None, group_size: int | None
    ) -> tuple[Sample, str, int]:
        """(sample, group key, group size) for one submitted sample."""
        if not isinstance(sample, Sample):
            sample = Sample.model_validate(sample)
        size = self.group_size if group_size is None else _check_size(group_size, "group_size")
        if size > self.max_samples:
            raise ValueError(
                f"a group of {size} can never fit in max_samples={self.max_samples}; "
                "raise max_samples"
            )
        return sample, sample.group if key is None else str(key), size

    async def close(self) -> None:
        """Answer every open group now (as partial), wait for them, and stop accepting samples."""
        self._room.close()
        for group in list(self._open.values()):
            self._close_group(group)
        self._scoring.flush()
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    # -- admission ---------------------------------------------------------------------------

    def _needs(self, items: Sequence[tuple[Sample, str, int]]) -> tuple[int, int]:
        """(new groups, new slots) that adding ``items`` now would take."""
        groups = slots = 0
        remaining: dict[str, int] = {}
        for sample, key, size in items:
            if key not in remaining:
                open_ = self._open.get(key)
                remaining[key] = open_.size - len(open_.members) if open_ else 0
            if remaining[key] > 0:
                remaining[key] -= 1
                continue
            if self._copy_of(key, sample) is not None:
                continue
            n = 1 if self._is_extra(key) else size
            groups, slots, remaining[key] = groups + 1, slots + n, n - 1
        return groups, slots

    async def _admit(self, items: Sequence[tuple[Sample, str, int]]) -> None:
        """Return once ``items`` fit (nothing may await between this and adding them)."""
        room = self._room
        if not room.closed and room.fits(*self._needs(items)):
            return  # the common case: no coroutine, no waiting
        waited, refused = room.waited, room.refused
        try:
            await room.wait(lambda: self._needs(items), lambda: not self._held and not self._open)
        finally:
            self.stats.waited_for_room += room.waited - waited
            self.stats.rejected += room.refused - refused

    # -- grouping ----------------------------------------------------------------------------

    def _is_extra(self, key: str) -> bool:
        return self.extra == "padding" and key in self._closed

    def _copy_of(self, key: str, sample: Sample) -> asyncio.Future[Reward] | None:
        """The answer of the completed member ``sample`` is a padded copy of, if any."""
        if self.extra != "padding" or key in self._open:
            return None
        answers = self._closed.get(key)
        return None if answers is None else answers.get(sample.id)

    def _add(self, sample: Sample, key: str, size: int) -> asyncio.Future[Reward]:
        loop = self._bind()
        original = self._copy_of(key, sample)
        if original is not None:
            self.stats.padding_copies += 1
            self._note_extra(key)
            return original
        group = self._open.get(key)
        if group is None:
            alone = self._is_extra(key)
            if alone:
                self.stats.padding_alone += 1
                self._note_extra(key)
            elif key in self._closed:
                self.stats.groups_reopened += 1
                log.info(
                    "group %r got more than %d members; the rest start a new group of that key "
                    "(a prompt asked twice is one comparison pool, cut in arrival order)",
                    key,
                    size,
                )
            group = Group(key, 1 if alone else size, time.monotonic(), alone=alone)
            self._open[key] = group
            self._room.take(1, group.size)
            if self.timeout_s is not None and group.size > 1:
                group.timer = loop.call_later(self.timeout_s, self._expire, group)
        # The group key is the discretizer's group: members are compared with each other only.
        member = Member(
            sample.model_copy(update={"group": key}), loop.create_future(), loop.create_future()
        )
        group.members.append(member)
        self._held += 1
        self.stats.samples += 1
        self._scoring.queue(member)
        if len(group.members) >= group.size:
            self._close_group(group)
        return member.answer

    def _note_extra(self, key: str) -> None:
        if not self._warned_extra:
            self._warned_extra = True
            log.warning(
                "group %r got a member after its group was complete; it is answered at once "
                "(as the identical member's reward, or on its own). Padded copies do this (verl "
                "pads batches with copies); if real samples do, the group size is wrong",
                key,
            )

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

    def _expire(self, group: Group) -> None:
        if self._open.get(group.key) is group:
            log.warning(
                "group %r: %d of %d members after %.1f s; discretizing it as a partial group",
                group.key,
                len(group.members),
                group.size,
                self.timeout_s,
            )
            self._close_group(group)

    def _close_group(self, group: Group) -> None:
        """No more members for ``group``: discretize it once its members are scored."""
        if self._open.get(group.key) is group:
            del self._open[group.key]
            # the members it still expected will not come
            self._room.give_back(1, max(group.size - len(group.members), 0))
        if group.timer is not None:
            group.timer.cancel()
        complete = len(group.members) >= group.size
        if not group.alone:
            self._closed.pop(group.key, None)
            keep = self.extra == "padding" and complete
            self._closed[group.key] = (
                {m.sample.id: m.answer for m in group.members} if keep else None
            )
            limit = (
                RECENT_GROUPS if self.extra == "padding" else max(4 * self.max_open_groups, 1024)
            )
            while len(self._closed) > limit:
                self._closed.popitem(last=False)
        self._spawn(self._scoring.finish(group))

    # -- scoring -----------------------------------------------------------------------------

    def _answer(self, member: Member, result: Reward | BaseException) -> None:
        self._held -= 1
        self._room.give_back(0, 1)
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


def _check_size(size: Any, name: str) -> int:
    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
        raise ValueError(f"{name} must be an integer >= 1, not {size!r}")
    return size
