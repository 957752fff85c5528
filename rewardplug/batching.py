"""Micro-batching of whole requests for ``rewardplug serve`` (without ``--group-size``).

A single worker collects whole requests until ``max_batch`` samples are waiting or the oldest has
waited ``max_wait_ms``, scores them in one ``Stack.ascore`` call and answers each request with
its own rewards. A request is never split, so a group (the responses to one prompt in one
request) is always discretized whole, and groups of different requests never mix. Admission is
bounded: past ``max_queue`` samples waiting or being scored, :class:`Overloaded`.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from dataclasses import dataclass, field

from rewardplug.stack import Stack
from rewardplug.types import Reward, Sample

__all__ = ["BatchStats", "MicroBatcher", "Overloaded"]


class Overloaded(RuntimeError):
    """The bounded queue is full (HTTP 503) or a single request exceeds it (HTTP 413)."""

    def __init__(self, message: str, status: int = 503):
        super().__init__(message)
        self.status = status


@dataclass
class _Job:
    samples: list[Sample]
    future: asyncio.Future[list[Reward]]
    arrived: float


@dataclass
class BatchStats:
    """Counters for ``/health`` (and for tests that check that requests were batched)."""

    requests: int = 0
    samples: int = 0
    batches: int = 0
    rejected: int = 0
    largest_batch_requests: int = 0
    batch_sizes: collections.deque[int] = field(
        default_factory=lambda: collections.deque(maxlen=1000)
    )


class MicroBatcher:
    """Collects whole requests into batches of up to ``max_batch`` samples and scores them."""

    def __init__(
        self, stack: Stack, max_batch: int = 256, max_wait_ms: float = 5.0, max_queue: int = 4096
    ):
        if max_batch < 1 or max_queue < 1 or max_wait_ms < 0:
            raise ValueError("max_batch and max_queue must be >= 1 and max_wait_ms >= 0")
        self.stack = stack
        self.max_batch = max_batch
        self.max_wait = max_wait_ms / 1000.0
        self.max_queue = max_queue
        self.stats = BatchStats()
        self._pending: collections.deque[_Job] = collections.deque()
        self._admitted = 0  # samples accepted and not yet answered
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def admitted(self) -> int:
        """Samples accepted and not yet answered (queued or being scored)."""
        return self._admitted

    async def submit(self, samples: list[Sample]) -> list[Reward]:
        """Score one request's samples as part of the next batch; raises :class:`Overloaded`."""
        n = len(samples)
        if n == 0:
            return []
        if n > self.max_queue:
            self.stats.rejected += 1
            raise Overloaded(
                f"one request holds {n} samples but the server admits at most {self.max_queue} "
                "at a time; send smaller requests or restart with a larger --max-queue",
                413,
            )
        if self._admitted + n > self.max_queue:
            self.stats.rejected += 1
            raise Overloaded(
                f"overloaded: {self._admitted} samples are waiting (limit {self.max_queue}); "
                "retry shortly"
            )
        self._ensure_worker()
        assert self._wake is not None
        job = _Job(samples, asyncio.get_running_loop().create_future(), time.monotonic())
        self._pending.append(job)
        self._admitted += n
        self.stats.requests += 1
        self._wake.set()
        try:
            return await job.future
        finally:
            self._admitted -= n

    def _ensure_worker(self) -> None:
        loop = asyncio.get_running_loop()
        if self._loop is not loop or self._task is None or self._task.done():
            # A new event loop (tests, a restarted server) needs its own event and worker.
            self._loop = loop
            self._wake = asyncio.Event()
            self._task = loop.create_task(self._run(), name="rewardplug-batcher")

    async def stop(self) -> None:
        """Cancel the worker (pending requests are answered with an error)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for job in self._pending:
            if not job.future.done():
                job.future.set_exception(RuntimeError("the server is shutting down"))
        self._pending.clear()

    async def _run(self) -> None:
        assert self._wake is not None
        while True:
            while not self._pending:
                self._wake.clear()
                await self._wake.wait()
            await self._fill()
            jobs = self._take()
            await self._score(jobs)

    async def _fill(self) -> None:
        """Wait until a batch is full or its oldest request has waited ``max_wait``."""
        assert self._wake is not None
        deadline = self._pending[0].arrived + self.max_wait
        while sum(len(j.samples) for j in self._pending) < self.max_batch:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=left)
            except TimeoutError:
                return

    def _take(self) -> list[_Job]:
        """Whole requests from the front of the queue, up to ``max_batch`` samples (at least one)."""
        jobs: list[_Job] = []
        size = 0
        while self._pending:
            n = len(self._pending[0].samples)
            if jobs and size + n > self.max_batch:
                break
            jobs.append(self._pending.popleft())
            size += n
        return jobs

    async def _score(self, jobs: list[_Job]) -> None:
        live = [j for j in jobs if not j.future.done()]  # a client may have gone away
        if not live:
            return
        batch = [s for j in live for s in j.samples]
        self.stats.batches += 1
        self.stats.samples += len(batch)
        self.stats.batch_sizes.append(len(batch))
        self.stats.largest_batch_requests = max(self.stats.largest_batch_requests, len(live))
        try:
            rewards = await self.stack.ascore(batch)
        except Exception as exc:  # answer every waiting request instead of killing the worker
            for job in live:
                if not job.future.done():
                    job.future.set_exception(exc)
            return
        start = 0
        for job in live:
            end = start + len(job.samples)
            if not job.future.done():
                job.future.set_result(rewards[start:end])
            start = end
