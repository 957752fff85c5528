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

fastapi and uvicorn are imported inside the functions, so ``import rewardplug`` stays light.
"""

from __future__ import annotations

import dataclasses
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
from rewardplug.stack import Stack, load_stack

if TYPE_CHECKING:
    import fastapi

__all__ = ["MicroBatcher", "Overloaded", "RewardService", "create_app", "serve"]

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
    ):
        self.stack = stack
        self.batcher = batcher
        self.assembler = assembler
        self.abstain_reward = abstain_reward
        self.strip_suffixes = tuple(strip_suffixes)
        self.eval_group_size = eval_group_size
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
        assembler = self.assembler
        try:
            parsed = read_request(
                body,
                tag=f"r{next(self._counter)}",
                across_requests=assembler is not None,
                strip_suffixes=self.strip_suffixes,
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
                if len(samples) > assembler.max_samples:
                    return (
                        413,
                        {
                            "error": f"a request of {len(samples)} samples can never fit in "
                            f"--max-held {assembler.max_samples}; send fewer samples per request "
                            "or raise --max-held"
                        },
                        {},
                    )
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
                raise ProtocolError(
                    f"labels[{i}] asks for a group of {size}, more than --max-held {limit}: "
                    "such a group could never be admitted"
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
) -> None:
    """Load the stack at ``stack_path`` and serve it until interrupted (binds loopback by default).

    ``backlog``: connections the listening socket queues before they are accepted (uvicorn's
    default is 2048; OpenRLHF opens one connection per sample, 8,192 at once with its defaults;
    the kernel caps it at ``net.core.somaxconn``). ``log_level`` applies to uvicorn and to
    rewardplug's own messages (``info`` shows, e.g., groups that received more than N members).
    """
    import uvicorn

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
    )
    if not _is_loopback(host):
        print(
            f"warning: listening on {host}, reachable from other machines; the service has no "
            "authentication",
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
        f"{', '.join(strip_suffixes) or 'none'}",
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
            # one access-log line per sample is noise at 8,192 requests a step
            access_log=log_level.lower() in ("info", "debug", "trace"),
        )
    finally:
        stack.close()
