"""``rewardplug serve``: a reward stack as an HTTP service speaking OpenRLHF's remote reward protocol.

Endpoints:

* ``POST /get_reward`` and ``POST /`` -- ``{"query", "prompts", "labels"}`` in,
  ``{"rewards", "scores", "extra_logs"}`` out (see :mod:`rewardplug.integrations.openrlhf`);
* ``GET /health`` -- liveness plus admission, batching and group counters.

With ``group_size`` (``rewardplug serve --group-size N``) groups are assembled *across* requests
by a :class:`~rewardplug.groups.GroupAssembler`: OpenRLHF (>= 0.9.1) posts one sample per request,
so a request's samples are added to their groups (keyed by a label's ``group``/``uid``, else by
prompt), scored on arrival, and each request is answered when all of its samples' groups are
complete or ``group_timeout_s`` after a group's first member (then ``extra_logs["partial_group"]``
says so). A label's ``group_size`` sets its sample's group size; a label marked as evaluation
(``"split": "test"``, ...) is grouped apart from training samples, in groups of
``eval_group_size`` (1 when unset: answered on arrival). Admission is per group: a new group's
first request waits up to ``admission_timeout_s`` for room (``max_open_groups`` groups,
``max_held`` samples held or expected), then 503; a started group's later members are never
refused. ``max_queue`` plays no part in this mode.

Without ``group_size``, each request is scored on its own, and the server warns once if every
group it sees has a single member -- tie-grouping would then silently do nothing. Concurrent
requests are *micro-batched* (:mod:`rewardplug.batching`): whole requests are scored together, a
request is never split, and groups of different requests never mix. Admission is bounded: when
more than ``max_queue`` samples are waiting or being scored, a request is answered 503 at once
(with ``Retry-After``) instead of piling up until the process falls over.

In both modes the chat template's end-of-turn text is cut from the end of each response
(``strip_suffixes``), and a sample without a reward gets ``abstain_reward`` with
``extra_logs["reward_mask"] = 0.0``; the first such fill is logged (and printed) once, and
``/health`` counts them (``filled``). Malformed JSON is a 400, a body that breaks the protocol
(missing keys, mismatched list lengths, bad labels) a 422, each with a message saying what to fix.

Hostile clients (issue 25): bodies are parsed within limits (:mod:`rewardplug.integrations.safe_json`:
nesting depth, digits per number, values per request, no ``NaN``/``Infinity``; a label string that
holds JSON too), and a request of more samples than could ever be admitted is refused before its
samples are built; every refusal is a 4xx JSON error. ``serve`` closes connections that do not send
their headers within ``header_timeout_s`` or their body within ``body_timeout_s``
(:func:`guarded_http_protocol`) or stay idle past ``keep_alive_s`` between requests; how long an
*answer* takes is not limited by them. With ``auth_token`` (``serve --auth-token-env VAR``) every
request needs ``Authorization: Bearer <token>`` (401 otherwise); ``GET /health`` without it answers
liveness only (``{"status": "ok"}``).

fastapi and uvicorn are imported inside the functions, so ``import rewardplug`` stays light.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hmac
import ipaddress
import json
import logging
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from rewardplug.batching import MicroBatcher, Overloaded
from rewardplug.groups import AssemblerFull, GroupAssembler
from rewardplug.integrations.openrlhf import (
    DEFAULT_STRIP_SUFFIXES,
    ProtocolError,
    build_response,
    read_request,
)
from rewardplug.integrations.safe_json import JSONError, JSONReader
from rewardplug.stack import Stack, load_stack

if TYPE_CHECKING:
    import fastapi

__all__ = [
    "MicroBatcher",
    "Overloaded",
    "RewardService",
    "create_app",
    "guarded_http_protocol",
    "serve",
]

log = logging.getLogger("rewardplug.server")

SINGLETON_WARNING = (
    "every group in this request has one member, so tie-grouping does nothing (each reward is "
    "just its raw score). OpenRLHF >= 0.9.1 sends one sample per request: restart the server "
    "with --group-size N (N = OpenRLHF's --rollout.n_samples_per_prompt) to assemble groups "
    "across requests."
)

#: OpenRLHF's per-attempt client timeout (``aiohttp.ClientTimeout(total=180)`` in
#: ``SingleTurnAgentExecutor._fetch_rewards_via_http``); an answer must come before it
OPENRLHF_CLIENT_TIMEOUT_S = 180.0


def fill_warning(value: float, reason: str | None) -> str:
    """The one-time message for the first sample whose reward is the fill value."""
    return (
        f"a sample got no reward ({reason or 'no reason given'}); it was answered with the fill "
        f"value {value!r} (--abstain-reward), which the trainer takes as a real reward. Such "
        "samples have extra_logs reward_mask = 0.0 (and abstained = 1.0); GET /health counts "
        "them ('filled'). OpenRLHF logs the mean of reward_mask per step (the share of real "
        "rewards) but cannot drop a sample on it: fix the cause (the 'reasons' key of the answer) "
        "or pick a fill value that does the least harm. Logged once."
    )


def check_auth_token(token: str) -> str:
    """``token`` if it can be a bearer token (one word of printable ASCII); else ValueError."""
    if not token:
        raise ValueError("the token is empty")
    if any(c.isspace() for c in token):
        raise ValueError("the token contains whitespace; a bearer token is one word")
    if not (token.isascii() and token.isprintable()):
        raise ValueError("the token is not printable ASCII (it must fit in an HTTP header)")
    return token


def _closing(headers: dict[str, str]) -> dict[str, str]:
    """``headers`` plus ``Connection: close``: for an answer sent before the body was read, so
    the server does not go on reading (and the client does not go on sending) the rest."""
    return {**headers, "Connection": "close"}


async def _send_json(
    send: Any, status: int, payload: dict[str, Any], headers: dict[str, str]
) -> None:
    body = json.dumps(payload, separators=(",", ":")).encode()
    raw_headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *((k.lower().encode(), v.encode()) for k, v in headers.items()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body})


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
        *,
        strip_suffixes: Sequence[str] = DEFAULT_STRIP_SUFFIXES,
        eval_group_size: int | None = None,
        auth_token: str | None = None,
    ):
        self.stack = stack
        self.batcher = batcher
        self.assembler = assembler
        self.abstain_reward = abstain_reward
        self.strip_suffixes = tuple(strip_suffixes)
        self.eval_group_size = eval_group_size
        self._token = None if auth_token is None else check_auth_token(auth_token).encode()
        self.warned = False
        self.warned_fill = False
        # answered requests and their samples; samples answered with the fill value instead of a
        # reward; responses an end marker was cut from; samples marked as evaluation
        self.requests = 0
        self.samples = 0
        self.filled = 0
        self.stripped = 0
        self.evaluation = 0
        self._counter = iter(range(1, sys.maxsize))
        self.fastapi: fastapi.FastAPI = None  # type: ignore[assignment]  # set by create_app

    def __getattr__(self, name: str) -> Any:
        return getattr(self.__dict__["fastapi"], name)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and self._token is not None:
            refusal = self._unauthorized(scope["headers"])
            if refusal is not None:
                if scope["path"] == "/health" and scope["method"] in ("GET", "HEAD"):
                    # liveness without the token; the counters need it
                    await _send_json(send, 200, {"status": "ok"}, {})
                else:
                    headers = {"WWW-Authenticate": 'Bearer realm="rewardplug"'}
                    await _send_json(send, 401, {"error": refusal}, _closing(headers))
                return
        if (
            scope["type"] == "http"
            and scope["method"] == "POST"
            and scope["path"] in self.ROUTES
            and not scope.get("root_path")
        ):
            status, payload, headers = await self._read_and_answer(scope, receive)
            if status is not None:
                await _send_json(send, status, payload, headers)
            return
        await self.fastapi(scope, receive, send)

    def _unauthorized(self, headers: Sequence[tuple[bytes, bytes]]) -> str | None:
        """None when the request carries the bearer token; else what is wrong with it."""
        assert self._token is not None
        given = [value for name, value in headers if name.lower() == b"authorization"]
        expected = "this server needs 'Authorization: Bearer <token>' (the token is in the "
        expected += "environment variable named by its --auth-token-env)"
        if not given:
            return f"no Authorization header: {expected}"
        scheme, _, token = given[0].strip().partition(b" ")
        if (
            len(given) != 1
            or scheme.lower() != b"bearer"
            or not hmac.compare_digest(token.strip(), self._token)
        ):
            return f"wrong or malformed Authorization header: {expected}"
        return None

    async def _read_and_answer(
        self, scope: dict[str, Any], receive: Any
    ) -> tuple[int | None, dict[str, Any], dict[str, str]]:
        """Read the body (at most :attr:`MAX_BODY_BYTES`) and answer it; status None when the
        client went away. ``serve`` bounds how long the body may take to arrive
        (:func:`guarded_http_protocol`)."""
        too_big = (
            413,
            {"error": f"request body over {self.MAX_BODY_BYTES} bytes; send fewer samples"},
            _closing({}),
        )
        for name, value in scope["headers"]:
            if name == b"content-length":
                if value.isdigit() and (len(value) > 12 or int(value) > self.MAX_BODY_BYTES):
                    return too_big  # refused before a byte of it is read
                break
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None, {}, {}
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.MAX_BODY_BYTES:  # the cap FastAPI's own route would enforce
                return too_big
            if not message.get("more_body"):
                break
        return await self.answer(b"".join(chunks))

    def _max_samples(self) -> tuple[int, str]:
        """The most samples one request can have, and what to do about more."""
        if self.assembler is not None:
            return (
                self.assembler.max_samples,
                f"can never fit in --max-held {self.assembler.max_samples}; send fewer samples "
                "per request or raise --max-held",
            )
        return (
            self.batcher.max_queue,
            f"is more than the server admits at a time (--max-queue {self.batcher.max_queue}); "
            "send smaller requests or restart with a larger --max-queue",
        )

    async def answer(self, raw: bytes) -> tuple[int, dict[str, Any], dict[str, str]]:
        """Status, JSON payload and extra headers for one reward request body."""
        reader = JSONReader()
        try:
            body = reader.loads(raw)
        except JSONError as exc:
            return exc.status, {"error": f"request body: {exc}"}, {}
        queries = body.get("query") if isinstance(body, dict) else None
        limit, advice = self._max_samples()
        if isinstance(queries, list) and len(queries) > limit:
            # refused before its samples are built (millions of tiny ones took minutes)
            self._count_rejected()
            return 413, {"error": f"a request of {len(queries)} samples {advice}"}, {}
        assembler = self.assembler
        try:
            parsed = read_request(
                body,
                tag=f"r{next(self._counter)}",
                across_requests=assembler is not None,
                strip_suffixes=self.strip_suffixes,
                reader=reader,
            )
            sizes: list[int | None] = (
                []
                if assembler is None
                else self._group_sizes(parsed.group_sizes, parsed.evaluation)
            )
        except ProtocolError as exc:
            return 422, {"error": str(exc)}, {}
        samples = parsed.samples
        try:
            if assembler is not None:
                if len(samples) == 1:  # OpenRLHF's one-sample request: the assembler's fast path
                    rewards = [await assembler.submit(samples[0], group_size=sizes[0])]
                else:
                    rewards = await assembler.submit_many(samples, group_sizes=sizes)
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
        if (
            assembler is None
            and not self.warned
            and rewards
            and all(r.group_size == 1 for r in rewards)
        ):
            self.warned = True
            log.warning(SINGLETON_WARNING)
            print(f"rewardplug serve: warning: {SINGLETON_WARNING}", file=sys.stderr, flush=True)
        payload = build_response(rewards, parsed.found, self.abstain_reward)
        self.requests += 1
        self.samples += len(samples)
        self.stripped += sum(parsed.stripped)
        self.evaluation += sum(parsed.evaluation)
        mask = payload["extra_logs"]["reward_mask"]
        filled = len(mask) - int(sum(mask))
        if filled:
            self.filled += filled
            if not self.warned_fill:
                self.warned_fill = True
                first = rewards[mask.index(0.0)]
                message = fill_warning(float(self.abstain_reward), first.reason)
                log.warning(message)
                print(f"rewardplug serve: warning: {message}", file=sys.stderr, flush=True)
        return 200, payload, {}

    def _count_rejected(self) -> None:
        if self.assembler is not None:
            self.assembler.stats.rejected += 1
        else:
            self.batcher.stats.rejected += 1

    def _group_sizes(
        self, labelled: Sequence[int | None], evaluation: Sequence[bool]
    ) -> list[int | None]:
        """Per sample: the label's ``group_size``; else, for an evaluation sample,
        ``eval_group_size`` (1 when unset); else None (the server's ``--group-size``)."""
        assert self.assembler is not None
        limit = self.assembler.max_samples
        sizes: list[int | None] = []
        for i, (size, is_eval) in enumerate(zip(labelled, evaluation, strict=True)):
            if size is None and is_eval:
                size = self.eval_group_size or 1
            if size is not None and size > limit:
                shown = (
                    str(size) if size < 10**20 else f"{str(size)[:20]}... ({len(str(size))} digits)"
                )
                raise ProtocolError(
                    f"labels[{i}].group_size is {shown}, more than --max-held {limit}: such a "
                    "group could never be admitted"
                )
            sizes.append(size)
        return sizes

    def health(self) -> dict[str, Any]:
        """What ``GET /health`` answers."""
        common = {
            "status": "ok",
            "sources": list(self.stack.sources),
            "mode": "batched" if self.assembler is None else "grouped",
        }
        tail = {
            # samples answered with --abstain-reward instead of a reward (extra_logs reward_mask 0)
            "filled": self.filled,
            "abstain_reward": self.abstain_reward,
            "end_markers_stripped": self.stripped,
            "evaluation_samples": self.evaluation,
            "single_member_groups_warning": self.warned,
            # sources that failed on a whole batch (rewardplug.health): name -> latest report
            "source_failures": self.stack.health.as_dict(),
            # samples scored without a field their source needs, per "source.field"
            "missing_inputs": {
                f"{s}.{f}": n for (s, f), n in sorted(self.stack.missing_inputs.items())
            },
        }
        if self.assembler is None:
            s = self.batcher.stats
            return {
                **common,
                "admitted": self.batcher.admitted,
                "max_queue": self.batcher.max_queue,
                "max_batch": self.batcher.max_batch,
                "requests": s.requests,
                "samples": s.samples,
                "batches": s.batches,
                "rejected": s.rejected,
                "largest_batch_requests": s.largest_batch_requests,
                **tail,
                "groups": None,
            }
        a = self.assembler
        return {
            **common,
            # admission is per group (see "groups"); max_queue does not apply in this mode
            "admitted": a.held,
            "max_queue": None,
            "max_batch": a.max_batch,
            "requests": self.requests,
            "samples": self.samples,
            "batches": a.stats.scoring_batches,
            "rejected": a.stats.rejected,
            "largest_batch_requests": None,
            **tail,
            "groups": _assembler_health(a, self.eval_group_size),
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
    eval_group_size: int | None = None,
    strip_suffixes: Sequence[str] = DEFAULT_STRIP_SUFFIXES,
    auth_token: str | None = None,
) -> RewardService:
    """The ASGI app serving ``stack`` (see module docstring and :class:`RewardService`).

    :param max_batch: samples per scoring call (whole requests only; one large request may exceed it).
    :param max_wait_ms: how long the first request of a batch waits for company.
    :param max_queue: without ``group_size``: samples admitted at once (queued + being scored);
        beyond it: 503. Not used with ``group_size`` (admission is per group, below).
    :param abstain_reward: the number sent for a sample the stack abstains on (the protocol has no
        null); ``extra_logs["abstained"]`` and ``extra_logs["reward_mask"]`` mark those samples.
    :param group_size: assemble groups of this many samples across requests (see module
        docstring); None scores each request on its own.
    :param group_timeout_s: with ``group_size``, how long a group waits for its members.
    :param max_open_groups: with ``group_size``, groups open at once.
    :param max_held: with ``group_size``, samples held plus members open groups still expect.
    :param admission_timeout_s: with ``group_size``, how long a new group's first request waits
        for room before a 503 (a started group's later members never wait). With OpenRLHF keep
        ``admission_timeout_s + group_timeout_s`` under its 180 s client timeout.
    :param eval_group_size: with ``group_size``, the group size of samples whose label marks them
        as evaluation (``"split": "test"``, ...) and carries no ``group_size``; None: 1.
    :param strip_suffixes: end markers cut from the end of every response before scoring
        (:func:`~rewardplug.integrations.openrlhf.strip_end_markers`); ``()`` keeps responses
        as they are.
    :param auth_token: when set, every request needs ``Authorization: Bearer <auth_token>``
        (compared in constant time); without it a request gets 401, except ``GET /health``,
        which answers liveness only (``{"status": "ok"}``). ValueError for a token that cannot
        be sent in a header (empty, whitespace, not printable ASCII).

    The time limits on reading a request are the server's: :func:`serve` runs uvicorn with
    :func:`guarded_http_protocol`; pass ``http=guarded_http_protocol(...)`` to your own
    ``uvicorn.Config`` to get them.
    """
    from contextlib import asynccontextmanager

    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse

    if eval_group_size is not None and (group_size is None or eval_group_size < 1):
        raise ValueError(
            "eval_group_size needs group_size (groups assembled across requests) and must be >= 1"
        )
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
    service = RewardService(
        stack,
        batcher,
        assembler,
        abstain_reward,
        strip_suffixes=strip_suffixes,
        eval_group_size=eval_group_size,
        auth_token=auth_token,
    )

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


def _assembler_health(assembler: GroupAssembler, eval_group_size: int | None) -> dict[str, Any]:
    return {
        "group_size": assembler.group_size,
        "eval_group_size": eval_group_size,
        "timeout_s": assembler.timeout_s,
        "max_open_groups": assembler.max_open_groups,
        "max_held": assembler.max_samples,
        "admission_timeout_s": assembler.admission_timeout_s,
        "open": assembler.open_groups,
        "held": assembler.held,
        "waiting_for_room": assembler.waiting_for_room,
        **dataclasses.asdict(assembler.stats),
    }


#: a read deadline that fires this late means the event loop was busy, not the client slow: the
#: client gets this much more time, so bytes already waiting in the kernel are read first
_LATE_S = 0.5


class _ReadDeadlines:
    """Mixin for a uvicorn HTTP protocol: time limits on *reading* each request.

    A connection must deliver a request's headers within ``header_timeout_s`` of its first byte
    (or of being accepted) and the body within ``body_timeout_s`` of the headers; past either it
    is answered ``408`` (JSON, ``Connection: close``) when it had sent part of a request and no
    answer had started, and closed in any case. Nothing is limited while the server is not
    reading (pipelined requests waiting their turn, a paused read) or once the request has been
    read: an answer may take as long as it takes (``--group-timeout``); between requests
    uvicorn's keep-alive timeout applies. uvicorn has no such limits of its own: without them a
    client that never finishes its headers or body holds its connection forever.
    """

    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0
    _read_phase: str | None = None
    _read_timer: asyncio.TimerHandle | None = None
    _read_due: float = 0.0
    _sent_bytes: bool = False

    # uvicorn's protocol attributes this mixin uses
    loop: asyncio.AbstractEventLoop
    transport: asyncio.Transport
    flow: Any
    cycle: Any

    def _reading(self, phase: str, *, sent_bytes: bool = True) -> None:
        """Start the deadline of ``phase`` ("headers" or "body") unless it is running."""
        self._sent_bytes = self._sent_bytes or sent_bytes
        if self._read_phase == phase and self._read_timer is not None:
            return
        self._done_reading()
        self._read_phase = phase
        limit = self.header_timeout_s if phase == "headers" else self.body_timeout_s
        self._arm_read_timer(self.loop.time() + limit)

    def _arm_read_timer(self, due: float) -> None:
        self._read_due = due
        self._read_timer = self.loop.call_at(due, self._read_deadline_passed)

    def _done_reading(self) -> None:
        if self._read_timer is not None:
            self._read_timer.cancel()
        self._read_timer = None
        self._read_phase = None

    def _read_deadline_passed(self) -> None:
        self._read_timer = None
        if self.transport.is_closing():
            return
        now = self.loop.time()
        if self.flow.read_paused:  # the server stopped reading, not the client
            limit = self.header_timeout_s if self._read_phase == "headers" else self.body_timeout_s
            self._arm_read_timer(now + limit)
            return
        if now - self._read_due > _LATE_S:  # the loop was busy: read what is waiting first
            self._arm_read_timer(now + _LATE_S)
            return
        phase, self._read_phase = self._read_phase, None
        cycle = self.cycle
        answer = self._sent_bytes
        if phase == "body" and cycle is not None:
            answer = not cycle.response_started  # else: its answer (e.g. a 405) went out
            if answer:  # the app reading the body sees a disconnect and answers nothing
                cycle.disconnected = True
                cycle.message_event.set()
        elif cycle is not None and not cycle.response_complete:
            answer = False  # half a pipelined request behind an answer being written
        if answer:
            limit, flag = (
                (self.header_timeout_s, "--header-timeout")
                if phase == "headers"
                else (self.body_timeout_s, "--body-timeout")
            )
            self.transport.write(_timeout_response(phase or "headers", limit, flag))
        self.transport.close()


def _timeout_response(phase: str, limit: float, flag: str) -> bytes:
    body = json.dumps(
        {"error": f"the request {phase} did not arrive within {limit:g} s ({flag}); closed"},
        separators=(",", ":"),
    ).encode()
    return (
        b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
        b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(body), body)
    )


def guarded_http_protocol(
    header_timeout_s: float = 10.0, body_timeout_s: float = 30.0, base: str = "auto"
) -> type:
    """A uvicorn HTTP protocol class (``uvicorn.Config(http=...)``) that closes clients that do
    not send a request's headers within ``header_timeout_s`` or its body within
    ``body_timeout_s`` (:class:`_ReadDeadlines`). ``base``: ``"httptools"``, ``"h11"`` or
    ``"auto"`` (httptools when installed, as uvicorn does)."""
    if header_timeout_s <= 0 or body_timeout_s <= 0:
        raise ValueError("header_timeout_s and body_timeout_s must be > 0")
    if base == "auto":
        try:
            import httptools  # noqa: F401
        except ImportError:
            base = "h11"
        else:
            base = "httptools"
    if base == "httptools":
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

        class GuardedHttpTools(_ReadDeadlines, HttpToolsProtocol):
            def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
                super().connection_made(transport)
                self._reading("headers", sent_bytes=False)

            def connection_lost(self, exc: Exception | None) -> None:
                self._done_reading()
                super().connection_lost(exc)

            def on_message_begin(self) -> None:
                super().on_message_begin()
                self._reading("headers")

            def on_headers_complete(self) -> None:
                self._reading("body")
                super().on_headers_complete()

            def on_message_complete(self) -> None:
                self._done_reading()
                super().on_message_complete()

        cls: type[_ReadDeadlines] = GuardedHttpTools
    elif base == "h11":
        import h11
        from uvicorn.protocols.http.h11_impl import H11Protocol

        class GuardedH11(_ReadDeadlines, H11Protocol):
            def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
                super().connection_made(transport)
                self._reading("headers", sent_bytes=False)

            def connection_lost(self, exc: Exception | None) -> None:
                self._done_reading()
                super().connection_lost(exc)

            def handle_events(self) -> None:
                super().handle_events()
                state = self.conn.their_state
                if state is h11.SEND_BODY:
                    self._reading("body")
                elif state is h11.IDLE:
                    # part of a request waiting in h11's buffer, or a new connection's first bytes
                    if self.conn.trailing_data[0] or self._read_phase == "headers":
                        self._reading("headers", sent_bytes=bool(self.conn.trailing_data[0]))
                else:  # the request is read (or the connection is done)
                    self._done_reading()

        cls = GuardedH11
    else:
        raise ValueError(f"base must be 'auto', 'httptools' or 'h11', not {base!r}")
    cls.header_timeout_s = float(header_timeout_s)
    cls.body_timeout_s = float(body_timeout_s)
    return cls


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
    max_open_groups: int = 8192,
    max_held: int = 16384,
    admission_timeout_s: float | None = 90.0,
    eval_group_size: int | None = None,
    strip_suffixes: Sequence[str] = DEFAULT_STRIP_SUFFIXES,
    backlog: int = 8192,
    log_level: str = "warning",
    header_timeout_s: float = 10.0,
    body_timeout_s: float = 30.0,
    keep_alive_s: float = 5.0,
    auth_token: str | None = None,
) -> None:
    """Load the stack at ``stack_path`` and serve it until interrupted (binds loopback by default).

    ``backlog``: connections the listening socket queues before they are accepted (uvicorn's
    default is 2048; OpenRLHF opens one connection per sample, 8,192 at once with its defaults;
    the kernel caps it at ``net.core.somaxconn``). ``log_level`` applies to uvicorn and to
    rewardplug's own messages (``info`` shows, e.g., groups that received more than N members).
    ``header_timeout_s`` / ``body_timeout_s``: a client that has not sent a request's headers /
    body by then is closed (:func:`guarded_http_protocol`); ``keep_alive_s``: an idle connection
    between requests is closed after it (uvicorn's ``timeout_keep_alive``). They limit reading a
    request, not answering it. ``auth_token``: see :func:`create_app`.
    """
    import uvicorn

    protocol = guarded_http_protocol(header_timeout_s, body_timeout_s)

    if log_level.lower() in ("info", "debug", "trace"):
        logging.basicConfig(format="%(levelname)s:%(name)s: %(message)s")
        logging.getLogger("rewardplug").setLevel(
            logging.DEBUG if log_level.lower() in ("debug", "trace") else logging.INFO
        )
    stack = load_stack(stack_path)
    app = create_app(
        stack,
        max_batch=max_batch,
        max_wait_ms=max_wait_ms,
        max_queue=max_queue,
        abstain_reward=abstain_reward,
        group_size=group_size,
        group_timeout_s=group_timeout_s,
        max_open_groups=max_open_groups,
        max_held=max_held,
        admission_timeout_s=admission_timeout_s,
        eval_group_size=eval_group_size,
        strip_suffixes=strip_suffixes,
        auth_token=auth_token,
    )
    if not _is_loopback(host) and auth_token is None:
        print(
            f"warning: listening on {host}, reachable from other machines, and the service has "
            "no authentication: anyone who can reach the port can get rewards scored. Put a "
            "token in an environment variable and start with --auth-token-env VAR (clients "
            "then send 'Authorization: Bearer <token>'), or keep the server on loopback or a "
            "private network. OpenRLHF's client sends no such header: see examples/openrlhf.md, "
            "'Security'.",
            file=sys.stderr,
        )
    if group_size and (
        admission_timeout_s is None
        or admission_timeout_s + group_timeout_s >= OPENRLHF_CLIENT_TIMEOUT_S
    ):
        print(
            f"warning: --admission-timeout ({admission_timeout_s}) + --group-timeout "
            f"({group_timeout_s}) is not under OpenRLHF's {OPENRLHF_CLIENT_TIMEOUT_S:.0f} s client "
            "timeout: a request could be answered after OpenRLHF gave up on it and re-sent the "
            "sample (which then joins a group twice)",
            file=sys.stderr,
        )
    if group_size:
        mode = (
            f"groups of {group_size} assembled across requests (eval groups of "
            f"{eval_group_size or 1}), deadline {group_timeout_s} s, max_open_groups="
            f"{max_open_groups}, max_held={max_held}, admission_timeout={admission_timeout_s} s)"
        )
    else:
        mode = f"max_queue={max_queue}, each request scored on its own)"
    print(
        f"rewardplug: serving {stack!r} on http://{host}:{port}/get_reward "
        f"(max_batch={max_batch}, max_wait_ms={max_wait_ms}, {mode}; end markers cut: "
        f"{', '.join(strip_suffixes) or 'none'}; read limits: headers {header_timeout_s:g} s, "
        f"body {body_timeout_s:g} s, keep-alive {keep_alive_s:g} s; "
        f"{'bearer token required' if auth_token else 'no authentication'}",
        file=sys.stderr,
        flush=True,
    )
    try:
        uvicorn.run(
            app,
            host=host,
            port=port,
            log_level=log_level,
            backlog=backlog,
            http=protocol,
            # uvicorn annotates it int, but hands it to loop.call_later, which takes float seconds
            timeout_keep_alive=keep_alive_s,  # type: ignore[arg-type]
            # one access-log line per sample is noise at 8,192 requests a step
            access_log=log_level.lower() in ("info", "debug", "trace"),
        )
    finally:
        stack.close()
