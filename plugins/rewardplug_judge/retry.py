"""Retries, backoff and request limits for judge backends.

* :func:`classify` sorts an exception from any client (openai, litellm, httpx, asyncio) into
  *retry* (429, 5xx, timeouts, connection errors, garbage replies), *fatal* (bad key, exhausted
  quota, unknown model: retrying thousands of times would only burn time) or *fail* (a request
  the server rejects as invalid: only that draw is lost). A refused connection or an unknown host
  is marked ``unreachable``: the backend retries it once it has reached the server, and fails
  fast on it before (nothing is listening there, so retries would only delay the error).
* :func:`backoff_delay` is exponential backoff with jitter, honouring ``Retry-After``.
* :class:`Limiter` bounds requests in flight (per event loop) and requests per second.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import time
import weakref
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, Literal

__all__ = [
    "BadReply",
    "Limiter",
    "RequestRejected",
    "Verdict",
    "answered",
    "backoff_delay",
    "classify",
    "retry_after_s",
]

Kind = Literal["retry", "fatal", "fail"]

# Error codes (OpenAI and compatible servers) that mean "no money left", not "slow down".
_QUOTA_MARKERS = (
    "insufficient_quota",
    "quota_exceeded",
    "billing_hard_limit",
    "exceeded your current quota",
)
# Messages of a request naming a model the server or client does not know (litellm answers a
# model without a provider prefix with a 400, a vLLM or OpenAI server with a 404).
# Messages of a failed connection whose socket error a client did not chain (litellm's 500).
_CONNECTION_MARKERS = (
    "connection error",
    "cannot connect to host",
    "connection refused",
    "name or service not known",
)
_MODEL_MARKERS = ("llm provider not provided", "model_not_found", "does not exist")


class BadReply(Exception):
    """The server answered, but not with a usable chat completion (garbage, no choices)."""


class RequestRejected(Exception):
    """A request that can never succeed as sent (e.g. longer than the model's context)."""


@dataclass
class Verdict:
    """What to do about a failed request."""

    kind: Kind
    reason: str
    retry_after: float | None = None
    #: nothing answered at that address (connection refused, unknown host)
    unreachable: bool = False


def _status(exc: BaseException) -> int | None:
    status = getattr(exc, "status_code", None)
    if status is None:
        response = getattr(exc, "response", None)
        status = getattr(response, "status_code", None)
    return status if isinstance(status, int) else None


def _header_sources(exc: BaseException) -> list[Any]:
    response = getattr(exc, "response", None)
    # litellm keeps the real headers apart from the (header-less) response it attaches
    return [
        getattr(response, "headers", None),
        getattr(exc, "litellm_response_headers", None),
        getattr(exc, "headers", None),
    ]


def retry_after_s(exc: BaseException) -> float | None:
    """Seconds the server asked us to wait (``Retry-After``: seconds or an HTTP date), if any."""
    value = None
    for headers in _header_sources(exc):
        try:
            value = headers.get("retry-after") or headers.get("Retry-After") if headers else None
        except Exception:
            value = None
        if value is not None:
            break
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except (TypeError, ValueError):
        pass
    try:
        return max(0.0, parsedate_to_datetime(str(value)).timestamp() - time.time())
    except (TypeError, ValueError, OverflowError):
        return None


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and its causes (clients wrap the socket error two to five times)."""
    out: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and len(out) < 12 and all(current is not e for e in out):
        out.append(current)
        current = current.__cause__ or current.__context__
    return out


def _connection_failure(exc: BaseException) -> tuple[str, bool] | None:
    """``(reason, unreachable)`` when ``exc`` is a failed connection, whatever wraps it.

    litellm reports one as ``InternalServerError`` with status 500; the socket error at the
    bottom of the chain says what happened.
    """
    chain = _chain(exc)
    if not any(
        "Connect" in type(e).__name__ or isinstance(e, ConnectionError | socket.gaierror)
        for e in chain
    ):
        # litellm may drop the cause and keep only the message of the client's error
        text = str(exc)
        if not any(m in text.lower() for m in _CONNECTION_MARKERS):
            return None
        return f"{type(exc).__name__}: {text}"[:300], True
    refused = [e for e in chain if isinstance(e, ConnectionRefusedError | socket.gaierror)]
    # the socket's own error says most; a chain's tail may be unrelated context
    errors: list[BaseException] = [*refused] or [e for e in chain if isinstance(e, OSError)]
    root = (errors or [exc])[-1]
    return f"{type(root).__name__}: {root}"[:300], bool(refused)


def answered(exc: BaseException) -> bool:
    """Whether the server answered the failed request (an HTTP status, or a body we rejected)."""
    if _connection_failure(exc) is not None:
        return False  # litellm gives a failed connection a status (500) too
    return isinstance(exc, BadReply | RequestRejected) or _status(exc) is not None


def _names_model(lowered: str) -> bool:
    return any(m in lowered for m in _MODEL_MARKERS)


def classify(exc: BaseException) -> Verdict:
    """Decide whether a failed request is retried, fails its draw, or stops the run."""
    name = type(exc).__name__
    text = f"{name}: {exc}"[:500]
    status = _status(exc)
    if isinstance(exc, RequestRejected):
        return Verdict("fail", str(exc))
    if isinstance(exc, BadReply):
        return Verdict("retry", f"bad reply: {exc}")
    if isinstance(exc, asyncio.TimeoutError | TimeoutError) or "Timeout" in name:
        return Verdict("retry", f"timeout: {text}")
    failed = _connection_failure(exc)
    if failed is not None:
        what = "connection refused" if "refused" in failed[0].lower() else "connection error"
        return Verdict("retry", f"{what} ({failed[0]})", unreachable=failed[1])
    if status in (401, 403) or name in ("AuthenticationError", "PermissionDeniedError"):
        return Verdict(
            "fatal", f"authentication failed ({text}); check the API key variable and base_url"
        )
    # The error code may sit in the message, the parsed body or attributes, depending on client.
    lowered = " ".join(
        str(x)
        for x in (exc, getattr(exc, "code", ""), getattr(exc, "type", ""), getattr(exc, "body", ""))
    ).lower()
    if "insufficient_quota" not in lowered:
        with contextlib.suppress(Exception):  # a streamed or closed response has no text
            lowered += " " + str(getattr(getattr(exc, "response", None), "text", "")).lower()
    if status == 429 or name == "RateLimitError":
        if any(m in lowered for m in _QUOTA_MARKERS):
            return Verdict("fatal", f"quota exhausted ({text}); add credit or switch backend")
        return Verdict("retry", f"rate limited: {text}", retry_after_s(exc))
    if status == 404 or name == "NotFoundError" or (status == 400 and _names_model(lowered)):
        return Verdict("fatal", f"unknown model or URL ({text}); check `model` and `base_url`")
    if status is not None and (status >= 500 or status in (408, 409)):
        return Verdict("retry", f"server error {status}: {text}", retry_after_s(exc))
    if isinstance(exc, OSError):
        return Verdict("retry", f"connection error: {text}")
    if isinstance(exc, ValueError) or "Validation" in name or "JSONDecode" in name:
        return Verdict("retry", f"bad reply: {text}")  # garbage body: a proxy hiccup, maybe
    if status is not None and 400 <= status < 500:
        return Verdict("fail", f"request rejected ({status}): {text}")
    return Verdict("fail", f"unexpected error: {text}")


def backoff_delay(attempt: int, base: float, cap: float, retry_after: float | None = None) -> float:
    """Delay before retry ``attempt`` (0-based): ``Retry-After`` when given, else ``base * 2**attempt``
    with +-50 % jitter (so many clients do not retry in lockstep); never more than ``cap``."""
    if retry_after is not None:
        return min(cap, retry_after)
    return min(cap, base * 2.0**attempt * random.uniform(0.5, 1.5))


class Limiter:
    """At most ``concurrency`` requests in flight and ``requests_per_s`` started per second.

    asyncio semaphores belong to one event loop, and ``score()`` may run a fresh loop per batch,
    so there is one semaphore per loop; the rate limit is shared by all loops of the process.
    """

    def __init__(self, concurrency: int, requests_per_s: float | None = None):
        self.concurrency = concurrency
        self.interval = 1.0 / requests_per_s if requests_per_s else 0.0
        self._next_start = 0.0
        self._sems: weakref.WeakKeyDictionary[Any, asyncio.Semaphore] = weakref.WeakKeyDictionary()

    def _sem(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        sem = self._sems.get(loop)
        if sem is None:
            sem = self._sems[loop] = asyncio.Semaphore(self.concurrency)
        return sem

    async def __aenter__(self) -> Limiter:
        await self._sem().acquire()
        if self.interval:
            now = time.monotonic()
            start = max(now, self._next_start)
            self._next_start = start + self.interval  # reserve the slot before sleeping
            if start > now:
                await asyncio.sleep(start - now)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._sem().release()

    def __getstate__(self) -> dict[str, Any]:
        return {"concurrency": self.concurrency, "interval": self.interval}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["concurrency"])  # type: ignore[misc]
        self.interval = state["interval"]
