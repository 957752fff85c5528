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

This module builds the app (:func:`create_app`) and runs it (:func:`serve`); the request handling
is :mod:`rewardplug.server_service`, the bearer token :mod:`rewardplug.server_auth`, the read
limits :mod:`rewardplug.server_timeouts`. fastapi and uvicorn are imported inside the functions,
so ``import rewardplug`` stays light.
"""

from __future__ import annotations

import ipaddress
import logging
import sys
from collections.abc import Sequence
from typing import Any

from rewardplug.batching import MicroBatcher, Overloaded
from rewardplug.groups import GroupAssembler
from rewardplug.integrations.openrlhf import DEFAULT_STRIP_SUFFIXES

# check_auth_token, SINGLETON_WARNING and fill_warning are imported from here (cli_run, tests)
from rewardplug.server_auth import check_auth_token as check_auth_token
from rewardplug.server_service import SINGLETON_WARNING as SINGLETON_WARNING
from rewardplug.server_service import RewardService
from rewardplug.server_service import fill_warning as fill_warning
from rewardplug.server_timeouts import guarded_http_protocol
from rewardplug.stack import Stack, load_stack

__all__ = [
    "MicroBatcher",
    "Overloaded",
    "RewardService",
    "create_app",
    "guarded_http_protocol",
    "serve",
]

#: OpenRLHF's per-attempt client timeout (``aiohttp.ClientTimeout(total=180)`` in
#: ``SingleTurnAgentExecutor._fetch_rewards_via_http``); an answer must come before it
OPENRLHF_CLIENT_TIMEOUT_S = 180.0


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
