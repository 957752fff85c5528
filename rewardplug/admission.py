"""Room for groups: the group assembler's admission control, per group and first-come first-served.

A group is admitted whole: its first member reserves room for every member the group expects, so
its later members never wait and are never refused (a group that has started always finishes).
:class:`Room` counts open groups and *slots* -- samples held plus members that open groups still
expect -- and makes the first member of a new group wait, in arrival order, until both fit.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable

__all__ = ["AssemblerFull", "Room"]


class AssemblerFull(RuntimeError):
    """No room for a new group within the admission timeout: retry later (HTTP 503)."""


class Room:
    """Open groups and slots, bounded; :meth:`wait` blocks new groups until they fit.

    :param max_groups: groups open at once.
    :param max_slots: held samples plus the members open groups still expect.
    :param timeout_s: how long :meth:`wait` waits before :class:`AssemblerFull`; None: no limit.
    """

    def __init__(self, max_groups: int, max_slots: int, timeout_s: float | None):
        self.max_groups = max_groups
        self.max_slots = max_slots
        self.timeout_s = timeout_s
        self.groups = 0
        self.slots = 0
        self.closed = False
        #: how many callers had to wait, and how many gave up after ``timeout_s``
        self.waited = 0
        self.refused = 0
        self._line: collections.deque[asyncio.Future[None]] = collections.deque()

    @property
    def waiting(self) -> int:
        """Callers waiting for room."""
        return len(self._line)

    def fits(self, groups: int, slots: int) -> bool:
        return not groups or (
            self.groups + groups <= self.max_groups and self.slots + slots <= self.max_slots
        )

    async def wait(self, needs: Callable[[], tuple[int, int]], empty: Callable[[], bool]) -> None:
        """Return once ``needs()`` (new groups, new slots) fits; the caller must take the room
        before its next ``await``. ``empty()`` says nothing is held, so waiting cannot help."""
        loop = asyncio.get_running_loop()
        deadline: float | None = None
        place = 0  # where this caller stands in line: at the back first, at the front after
        try:
            while True:
                if self.closed:
                    raise RuntimeError("the group assembler is closed")
                groups, slots = needs()
                if self.fits(groups, slots):
                    return
                if empty():
                    raise ValueError(
                        f"{groups} new groups of {slots} members in all can never fit in "
                        f"max_open_groups={self.max_groups} / max_samples={self.max_slots}; "
                        "send fewer samples at a time or raise the limits"
                    )
                if place == 0:
                    self.waited += 1
                    if self.timeout_s is not None:
                        deadline = loop.time() + self.timeout_s
                waiter = loop.create_future()
                if place == 0:
                    self._line.append(waiter)
                else:
                    self._line.appendleft(waiter)  # keep its place: first come, first served
                place += 1
                try:
                    left = None if deadline is None else max(deadline - loop.time(), 0.0)
                    await asyncio.wait_for(asyncio.shield(waiter), left)
                except TimeoutError:
                    self.refused += 1
                    raise AssemblerFull(
                        f"no room for a new group for {self.timeout_s} s: {self.groups} groups "
                        f"are open (limit {self.max_groups}) and {self.slots} samples are held or "
                        f"expected (limit {self.max_slots}); retry shortly, or raise the limits "
                        "(is the group size right? groups that never complete stay open until "
                        "their deadline)"
                    ) from None
                finally:
                    if waiter in self._line:
                        self._line.remove(waiter)
        finally:
            if place:
                self._wake()  # the next in line may fit as well

    def take(self, groups: int, slots: int) -> None:
        self.groups += groups
        self.slots += slots

    def give_back(self, groups: int, slots: int) -> None:
        self.groups -= groups
        self.slots -= slots
        if groups or slots:
            self._wake()

    def close(self) -> None:
        """Refuse new groups from now on; every waiter wakes and gets an error."""
        self.closed = True
        for waiter in self._line:
            if not waiter.done():
                waiter.set_result(None)

    def _wake(self) -> None:
        if self._line and not self._line[0].done():
            self._line[0].set_result(None)
