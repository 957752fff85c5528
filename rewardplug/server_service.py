"""The ASGI app of ``rewardplug serve``: :class:`RewardService` answers reward requests.

It reads a request body within its size cap, parses it within limits
(:mod:`rewardplug.integrations.safe_json`), turns it into samples (OpenRLHF's protocol,
:mod:`rewardplug.integrations.openrlhf`), scores them through the micro-batcher or the group
assembler, and answers with rewards, refusals (4xx/503) or a 401 without the bearer token. It keeps
the counters ``GET /health`` reports. :func:`rewardplug.server.create_app` builds it with its
FastAPI app; :mod:`rewardplug.server` documents the service as a whole.
"""

from __future__ import annotations

import dataclasses
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
from rewardplug.server_auth import bearer_refusal, check_auth_token

if TYPE_CHECKING:
    import fastapi

    from rewardplug.stack import Stack

__all__ = ["SINGLETON_WARNING", "RewardService", "fill_warning"]

# the logger of rewardplug.server, where this code lived: log filters keep working
log = logging.getLogger("rewardplug.server")

SINGLETON_WARNING = (
    "every group in this request has one member, so tie-grouping does nothing (each reward is "
    "just its raw score). OpenRLHF >= 0.9.1 sends one sample per request: restart the server "
    "with --group-size N (N = OpenRLHF's --rollout.n_samples_per_prompt) to assemble groups "
    "across requests."
)


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
        return bearer_refusal(headers, self._token)

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
