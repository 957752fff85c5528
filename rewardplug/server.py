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

Concurrent requests are *micro-batched* (:mod:`rewardplug.batching`): whole requests are scored
together, a request is never split, and groups of different requests never mix. Admission is
bounded: when more than ``max_queue`` samples are waiting or being scored, a request is answered
503 at once (with ``Retry-After``) instead of piling up until the process falls over. Malformed JSON is a 400, a body that breaks the protocol
(missing keys, mismatched list lengths, bad labels) a 422, each with a message saying what to fix.

fastapi and uvicorn are imported inside the functions, so ``import rewardplug`` stays light.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import logging
import sys
from typing import TYPE_CHECKING, Any

from rewardplug.batching import MicroBatcher, Overloaded
from rewardplug.groups import AssemblerFull, GroupAssembler
from rewardplug.integrations.openrlhf import ProtocolError, build_response, parse_request
from rewardplug.stack import Stack, load_stack

if TYPE_CHECKING:
    import fastapi

__all__ = ["MicroBatcher", "Overloaded", "RewardService", "create_app", "serve"]

log = logging.getLogger("rewardplug.server")

SINGLETON_WARNING = (
    "every group in this request has one member, so tie-grouping does nothing (each reward is "
    "just its raw score). OpenRLHF >= 0.9.1 sends one sample per request: restart the server "
    "with --group-size N (N = --n_samples_per_prompt) to assemble groups across requests."
)


class RewardService:
    """The ASGI app of ``rewardplug serve``: the reward route straight, the rest through FastAPI.

    ``POST /get_reward`` and ``POST /`` are answered by :meth:`answer` without FastAPI's
    middleware and dependency machinery -- in one-sample mode (OpenRLHF) every sample is a request
    and that machinery was half of the server's time per request. Everything else (``/health``,
    405s, 404s, the lifespan) goes to the FastAPI app, which also serves the reward route for
    anyone who mounts ``service.fastapi`` in their own app. Attributes not defined here (``state``,
    routes, ...) are the FastAPI app's.
    """

    ROUTES = ("/get_reward", "/")
    #: the largest reward request accepted (a 413 beyond it), so a client cannot make the server
    #: buffer without bound
    MAX_BODY_BYTES = 64 * 2**20

    def __init__(
        self,
        stack: Stack,
        batcher: MicroBatcher,
        assembler: GroupAssembler | None,
        abstain_reward: float,
    ):
        self.stack = stack
        self.batcher = batcher
        self.assembler = assembler
        self.abstain_reward = abstain_reward
        self.warned = False
        self._counter = iter(range(1, sys.maxsize))
        self.fastapi: fastapi.FastAPI = None  # type: ignore[assignment]  # set by create_app

    def __getattr__(self, name: str) -> Any:
        return getattr(self.__dict__["fastapi"], name)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] == "POST"
            and scope["path"] in self.ROUTES
            and not scope.get("root_path")
        ):
            chunks, size = [], 0
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return
                chunks.append(message.get("body", b""))
                size += len(chunks[-1])
                if size > self.MAX_BODY_BYTES:  # the cap FastAPI's own route would enforce
                    break
                if not message.get("more_body"):
                    break
            if size > self.MAX_BODY_BYTES:
                status, payload, headers = (
                    413,
                    {"error": f"request body over {self.MAX_BODY_BYTES} bytes; send fewer samples"},
                    {},
                )
            else:
                status, payload, headers = await self.answer(b"".join(chunks))
            body = json.dumps(payload, separators=(",", ":")).encode()
            raw_headers = [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *((k.lower().encode(), v.encode()) for k, v in headers.items()),
            ]
            await send({"type": "http.response.start", "status": status, "headers": raw_headers})
            await send({"type": "http.response.body", "body": body})
            return
        await self.fastapi(scope, receive, send)

    async def answer(self, raw: bytes) -> tuple[int, dict[str, Any], dict[str, str]]:
        """Status, JSON payload and extra headers for one reward request body."""
        try:
            body = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            return 400, {"error": f"malformed JSON body: {exc}"}, {}
        grouped = self.assembler is not None
        try:
            samples, found = parse_request(
                body, tag=f"r{next(self._counter)}", across_requests=grouped
            )
        except ProtocolError as exc:
            return 422, {"error": str(exc)}, {}
        try:
            if self.assembler is not None:
                rewards = await self.assembler.submit_many(samples)
            else:
                rewards = await self.batcher.submit(samples)
        except AssemblerFull as exc:
            return 503, {"error": str(exc)}, {"Retry-After": "1"}
        except Overloaded as exc:
            return (
                exc.status,
                {"error": str(exc)},
                ({"Retry-After": "1"} if exc.status == 503 else {}),
            )
        except Exception as exc:
            return 500, {"error": f"scoring failed: {type(exc).__name__}: {exc}"}, {}
        if not grouped and not self.warned and rewards and all(r.group_size == 1 for r in rewards):
            self.warned = True
            log.warning(SINGLETON_WARNING)
            print(f"rewardplug serve: warning: {SINGLETON_WARNING}", file=sys.stderr, flush=True)
        return 200, build_response(rewards, found, self.abstain_reward), {}

    def health(self) -> dict[str, Any]:
        """What ``GET /health`` answers."""
        s = self.batcher.stats
        return {
            "status": "ok",
            "sources": list(self.stack.sources),
            "admitted": self.batcher.admitted,
            "max_queue": self.batcher.max_queue,
            "max_batch": self.batcher.max_batch,
            "requests": s.requests,
            "samples": s.samples,
            "batches": s.batches,
            "rejected": s.rejected,
            "largest_batch_requests": s.largest_batch_requests,
            "single_member_groups_warning": self.warned,
            # sources that failed on a whole batch (rewardplug.health): name -> latest report
            "source_failures": self.stack.health.as_dict(),
            "groups": None if self.assembler is None else _assembler_health(self.assembler),
        }


def create_app(
    stack: Stack,
    *,
    max_batch: int = 256,
    max_wait_ms: float = 5.0,
    max_queue: int = 4096,
    abstain_reward: float = 0.0,
    group_size: int | None = None,
    group_timeout_s: float = 60.0,
    max_open_groups: int = 8192,
    max_held: int = 16384,
    admission_timeout_s: float | None = 90.0,
) -> RewardService:
    """The ASGI app serving ``stack`` (see module docstring and :class:`RewardService`).

    :param max_batch: samples per scoring call (whole requests only; one large request may exceed it).
    :param max_wait_ms: how long the first request of a batch waits for company.
    :param max_queue: samples admitted at once (queued + being scored); beyond it: 503.
    :param abstain_reward: the number sent for a sample the stack abstains on (the protocol has no
        null); ``extra_logs["abstained"]`` marks those samples.
    :param group_size: assemble groups of this many samples across requests (see module
        docstring); None scores each request on its own.
    :param group_timeout_s: with ``group_size``, how long a group waits for its members.
    :param max_open_groups: with ``group_size``, groups open at once.
    :param max_held: with ``group_size``, samples held plus members open groups still expect.
    :param admission_timeout_s: with ``group_size``, how long a new group's first request waits
        for room before a 503 (a started group's later members never wait).
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
            max_open_groups=max_open_groups,
            max_samples=max_held,
            admission_timeout_s=admission_timeout_s,
            max_batch=max_batch,
            max_wait_ms=max_wait_ms,
        )
    )
    service = RewardService(stack, batcher, assembler, abstain_reward)

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
    service.fastapi = app

    async def get_reward(request: Request) -> JSONResponse:
        status, payload, headers = await service.answer(await request.body())
        return JSONResponse(payload, status_code=status, headers=headers or None)

    # Annotations are strings here (postponed evaluation) and fastapi/Request is not a module
    # global, so hand FastAPI the real class to recognise the request parameter.
    get_reward.__annotations__["request"] = Request
    app.add_api_route("/get_reward", get_reward, methods=["POST"])
    app.add_api_route("/", get_reward, methods=["POST"])

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return service.health()

    return service


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
