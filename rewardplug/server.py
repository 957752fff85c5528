"""``rewardplug serve``: a reward stack as an HTTP service speaking OpenRLHF's remote reward protocol.

Endpoints:

* ``POST /get_reward`` and ``POST /`` -- ``{"query", "prompts", "labels"}`` in,
  ``{"rewards", "scores", "extra_logs"}`` out (see :mod:`rewardplug.integrations.openrlhf`);
* ``GET /health`` -- liveness plus queue and batching counters.

With ``group_size`` (``rewardplug serve --group-size N``) groups are assembled *across* requests
by a :class:`~rewardplug.groups.GroupAssembler`: OpenRLHF (>= 0.9.1) posts one sample per request,
so a request's samples are added to their groups (keyed by a label's ``group``/``uid``, else by
prompt), scored on arrival, and each request is answered when all of its samples' groups are
complete or ``group_timeout_s`` after a group's first member (then ``extra_logs["partial_group"]``
says so). Without it, each request is scored on its own, as below, and the server warns once if
every group it sees has a single member -- tie-grouping would then silently do nothing.

Concurrent requests are *micro-batched*: a single worker collects whole requests until
``max_batch`` samples are waiting or the oldest has waited ``max_wait_ms``, scores them in one
``Stack.ascore`` call and answers each request with its own rewards. A request is never split,
so a group (the responses to one prompt in one request) is always discretized whole, and groups
of different requests never mix. Admission is bounded: when more than ``max_queue`` samples are
waiting or being scored, a request is answered 503 at once (with ``Retry-After``) instead of
piling up until the process falls over. Malformed JSON is a 400, a body that breaks the protocol
(missing keys, mismatched list lengths, bad labels) a 422, each with a message saying what to fix.

fastapi and uvicorn are imported inside the functions, so ``import rewardplug`` stays light.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import ipaddress
import json
import logging
import sys
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rewardplug.groups import AssemblerFull, GroupAssembler
from rewardplug.integrations.openrlhf import ProtocolError, build_response, parse_request
from rewardplug.stack import Stack, load_stack
from rewardplug.types import Reward, Sample

if TYPE_CHECKING:
    import fastapi

__all__ = ["MicroBatcher", "Overloaded", "create_app", "serve"]

log = logging.getLogger("rewardplug.server")

SINGLETON_WARNING = (
    "every group in this request has one member, so tie-grouping does nothing (each reward is "
    "just its raw score). OpenRLHF >= 0.9.1 sends one sample per request: restart the server "
    "with --group-size N (N = --n_samples_per_prompt) to assemble groups across requests."
)


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


def create_app(
    stack: Stack,
    *,
    max_batch: int = 256,
    max_wait_ms: float = 5.0,
    max_queue: int = 4096,
    abstain_reward: float = 0.0,
    group_size: int | None = None,
    group_timeout_s: float = 60.0,
) -> fastapi.FastAPI:
    """A FastAPI app serving ``stack`` (see module docstring).

    :param max_batch: samples per scoring call (whole requests only; one large request may exceed it).
    :param max_wait_ms: how long the first request of a batch waits for company.
    :param max_queue: samples admitted at once (queued + being scored); beyond it: 503.
    :param abstain_reward: the number sent for a sample the stack abstains on (the protocol has no
        null); ``extra_logs["abstained"]`` marks those samples.
    :param group_size: assemble groups of this many samples across requests (see module
        docstring); None scores each request on its own.
    :param group_timeout_s: with ``group_size``, how long a group waits for its members.
    """
    from contextlib import asynccontextmanager

    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse

    batcher = MicroBatcher(stack, max_batch=max_batch, max_wait_ms=max_wait_ms, max_queue=max_queue)
    assembler = (
        None
        if group_size is None
        else GroupAssembler(
            stack,
            group_size,
            timeout_s=group_timeout_s,
            max_open_groups=max_queue,
            max_samples=max_queue,
            max_batch=max_batch,
            max_wait_ms=max_wait_ms,
        )
    )
    counter = iter(range(1, sys.maxsize))
    warned: list[bool] = []

    @asynccontextmanager
    async def lifespan(app: FastAPI):  # type: ignore[no-untyped-def]
        yield
        await batcher.stop()
        if assembler is not None:
            await assembler.close()

    app = FastAPI(title="rewardplug reward service", lifespan=lifespan)
    app.state.stack = stack
    app.state.batcher = batcher
    app.state.assembler = assembler

    def error(status: int, message: str, **headers: str) -> JSONResponse:
        return JSONResponse({"error": message}, status_code=status, headers=headers or None)

    async def get_reward(request: Request) -> JSONResponse:
        raw = await request.body()
        try:
            body = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            return error(400, f"malformed JSON body: {exc}")
        try:
            samples, found = parse_request(
                body, tag=f"r{next(counter)}", across_requests=assembler is not None
            )
        except ProtocolError as exc:
            return error(422, str(exc))
        try:
            if assembler is not None:
                rewards = await assembler.submit_many(samples)
            else:
                rewards = await batcher.submit(samples)
        except AssemblerFull as exc:
            return error(503, str(exc), **{"Retry-After": "1"})
        except Overloaded as exc:
            return error(
                exc.status, str(exc), **({"Retry-After": "1"} if exc.status == 503 else {})
            )
        except Exception as exc:
            return error(500, f"scoring failed: {type(exc).__name__}: {exc}")
        if assembler is None and not warned and rewards and all(r.group_size == 1 for r in rewards):
            warned.append(True)
            log.warning(SINGLETON_WARNING)
            print(f"rewardplug serve: warning: {SINGLETON_WARNING}", file=sys.stderr, flush=True)
        return JSONResponse(build_response(rewards, found, abstain_reward))

    # Annotations are strings here (postponed evaluation) and fastapi/Request is not a module
    # global, so hand FastAPI the real class to recognise the request parameter.
    get_reward.__annotations__["request"] = Request
    app.add_api_route("/get_reward", get_reward, methods=["POST"])
    app.add_api_route("/", get_reward, methods=["POST"])

    @app.get("/health")
    async def health() -> dict[str, Any]:
        s = batcher.stats
        return {
            "status": "ok",
            "sources": list(stack.sources),
            "admitted": batcher.admitted,
            "max_queue": batcher.max_queue,
            "max_batch": batcher.max_batch,
            "requests": s.requests,
            "samples": s.samples,
            "batches": s.batches,
            "rejected": s.rejected,
            "largest_batch_requests": s.largest_batch_requests,
            "single_member_groups_warning": bool(warned),
            "groups": None if assembler is None else _assembler_health(assembler),
        }

    return app


def _assembler_health(assembler: GroupAssembler) -> dict[str, Any]:
    return {
        "group_size": assembler.group_size,
        "timeout_s": assembler.timeout_s,
        "open": assembler.open_groups,
        "held": assembler.held,
        **dataclasses.asdict(assembler.stats),
    }


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(
    stack_path: str,
    host: str = "127.0.0.1",
    port: int = 5000,
    *,
    max_batch: int = 256,
    max_wait_ms: float = 5.0,
    max_queue: int = 4096,
    abstain_reward: float = 0.0,
    group_size: int | None = None,
    group_timeout_s: float = 60.0,
    log_level: str = "warning",
) -> None:
    """Load the stack at ``stack_path`` and serve it until interrupted (binds loopback by default)."""
    import uvicorn

    stack = load_stack(stack_path)
    app = create_app(
        stack,
        max_batch=max_batch,
        max_wait_ms=max_wait_ms,
        max_queue=max_queue,
        abstain_reward=abstain_reward,
        group_size=group_size,
        group_timeout_s=group_timeout_s,
    )
    if not _is_loopback(host):
        print(
            f"warning: listening on {host}, reachable from other machines; the service has no "
            "authentication",
            file=sys.stderr,
        )
    print(
        f"rewardplug: serving {stack!r} on http://{host}:{port}/get_reward "
        f"(max_batch={max_batch}, max_wait_ms={max_wait_ms}, max_queue={max_queue}, "
        + (
            f"groups of {group_size} assembled across requests, deadline {group_timeout_s} s)"
            if group_size
            else "each request scored on its own)"
        ),
        file=sys.stderr,
        flush=True,
    )
    try:
        uvicorn.run(app, host=host, port=port, log_level=log_level)
    finally:
        stack.close()
