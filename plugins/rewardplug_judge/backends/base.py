"""The judge backend: one async ``complete`` call, cached, retried and rate-limited.

A :class:`Backend` wraps a thin :class:`Client` (openai, litellm or a local transformers model)
that knows how to make one chat-completions request. The backend adds what every caller needs:
the persistent cache (keyed per draw), ``n`` draws in one request where the client supports it
(else concurrent requests with distinct seeds), retries with backoff, the concurrency and rate
limits, and fail-fast on fatal errors.
"""

from __future__ import annotations

import asyncio
import weakref
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from rewardplug_judge.backends.types import (
    BackendConfig,
    Completion,
    FatalBackendError,
    Message,
    TokenLogprob,
)
from rewardplug_judge.cache import CompletionCache, cache_key
from rewardplug_judge.retry import Limiter, answered, backoff_delay, classify

__all__ = ["Backend", "BackendStats", "ChatRequest", "Choice", "Client", "RawReply"]


@dataclass
class Choice:
    """One generated alternative in a :class:`RawReply`."""

    text: str
    finish_reason: str | None = None
    tokens: list[TokenLogprob] | None = None


@dataclass
class RawReply:
    """What a client got back for one request (before it is split into draws)."""

    choices: list[Choice]
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float | None = None
    """The provider's own cost figure (litellm); None: estimate from the configured prices."""


@dataclass(frozen=True)
class ChatRequest:
    """One chat-completions request: the messages and the sampling parameters."""

    messages: list[Message]
    n: int
    temperature: float
    max_tokens: int
    top_logprobs: int
    """> 0: ask for the top-k logprobs of every generated token."""
    seed: int
    timeout_s: float
    response_format: dict[str, Any] | None = None
    """OpenAI-style ``response_format`` (a JSON schema) for structured output; None: plain."""

    def chat_kwargs(self, model: str | None) -> dict[str, Any]:
        """Keyword arguments of an OpenAI-style ``chat.completions.create`` call.

        ``n`` is sent only when > 1 and logprobs only when asked for, so plain requests stay
        plain for servers that reject those fields.
        """
        kwargs: dict[str, Any] = {
            "model": model,
            "messages": self.messages,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "seed": self.seed,
            "timeout": self.timeout_s,
        }
        if self.n > 1:
            kwargs["n"] = self.n
        if self.top_logprobs:
            kwargs.update(logprobs=True, top_logprobs=self.top_logprobs)
        if self.response_format is not None:
            kwargs["response_format"] = self.response_format
        return kwargs


class Client(ABC):
    """Makes one chat-completions request; raises on failure (the backend retries)."""

    #: whether one request can return several choices (``n``)
    supports_n: bool = True

    @abstractmethod
    async def request(self, request: ChatRequest) -> RawReply:
        """One request for ``request.n`` choices (with token logprobs if ``top_logprobs > 0``)."""

    async def aclose(self) -> None:  # noqa: B027 - optional
        """Release connections."""


@dataclass
class BackendStats:
    """Counters since the backend was created (requests include retries)."""

    requests: int = 0
    cache_hits: int = 0
    retries: int = 0
    failed_draws: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    errors: list[str] = field(default_factory=list)


class Backend:
    """Cached, retried, rate-limited chat completions from one judge model.

    Create with :func:`rewardplug_judge.backends.make_backend`. Picklable: the client and the
    cache connection are re-created lazily in the new process.
    """

    def __init__(self, config: BackendConfig, client_factory: Callable[[], Client]):
        self.config = config
        self._client_factory = client_factory
        self.stats = BackendStats()
        #: whether any request has reached the server; until then, "nothing listens there" is
        #: a configuration error (fail fast), afterwards a passing outage (retry)
        self.reached = False
        self.limiter = Limiter(config.concurrency, config.requests_per_s)
        self.cache = CompletionCache(self._cache_folder()) if config.cache else None
        # Clients hold connection pools bound to the event loop that created them.
        self._clients: weakref.WeakKeyDictionary[Any, Client] = weakref.WeakKeyDictionary()

    def _cache_folder(self) -> str:
        if self.config.cache_dir:
            return self.config.cache_dir
        from rewardplug.plugin_api import cache_dir

        return str(cache_dir("judge"))

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_clients"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._clients = weakref.WeakKeyDictionary()

    def _client(self) -> Client:
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            client = self._clients[loop] = self._client_factory()
        return client

    @property
    def supports_n(self) -> bool:
        """Whether several draws are asked for in one request."""
        if self.config.n_per_request is not None:
            return self.config.n_per_request
        return self._client_factory_supports_n()

    def _client_factory_supports_n(self) -> bool:
        return bool(getattr(self._client_factory, "supports_n", True))

    def key(self, messages: list[Message], draw: int, **params: Any) -> str:
        """The cache key of one draw: backend, model, messages, sampling parameters, draw index."""
        return cache_key(
            backend=self.config.backend,
            model=self.config.model,
            messages=messages,
            draw=draw,
            **params,
        )

    async def complete(
        self,
        messages: list[Message],
        *,
        n: int = 1,
        draws: Sequence[int] | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        top_logprobs: int = 0,
        response_format: dict[str, Any] | None = None,
    ) -> list[Completion]:
        """Completions for draws ``0..n-1`` (or the given draw indices), in that order.

        Cached draws are served from the cache; the rest come from one request with ``n`` where
        supported, else from concurrent requests seeded ``seed + draw``. A draw that fails after
        all retries comes back with ``error`` set. Raises :class:`FatalBackendError` on a bad key,
        an exhausted quota or an unknown model. ``response_format`` (an OpenAI-style JSON schema,
        see :mod:`rewardplug_judge.structured`) asks an OpenAI-compatible server for structured
        output; it is part of the cache key.
        """
        draw_ids = list(range(n)) if draws is None else list(draws)
        params: dict[str, Any] = {
            "temperature": self.config.temperature if temperature is None else temperature,
            "max_tokens": max_tokens or self.config.max_tokens,
            "top_logprobs": top_logprobs,
            "seed": self.config.seed,
        }
        if response_format is not None:  # part of the key; plain requests keep their old keys
            params["response_format"] = response_format
        keys = {d: self.key(messages, d, **params) for d in draw_ids}
        found: dict[int, Completion] = {}
        if self.cache is not None:
            for d in draw_ids:
                hit = self.cache.get(keys[d])
                if hit is not None:
                    found[d] = Completion.from_json(hit)
                    found[d].cached = True
                    self.stats.cache_hits += 1
        missing = [d for d in draw_ids if d not in found]
        if missing:
            fresh = await self._fetch(messages, missing, params)
            for d, completion in fresh.items():
                found[d] = completion
                if completion.ok and self.cache is not None:
                    self.cache.put(keys[d], {**completion.to_json(), "cached": False})
        return [found[d] for d in draw_ids]

    def complete_sync(self, messages: list[Message], **options: Any) -> list[Completion]:
        """Blocking :meth:`complete` (runs an event loop; usable from a thread with a loop too)."""
        from rewardplug_judge.aio import run_sync

        async def once() -> list[Completion]:
            try:
                return await self.complete(messages, **options)
            finally:
                await self.aclose()  # the loop ends here: close its connections first

        return run_sync(once())

    async def _fetch(
        self, messages: list[Message], draws: list[int], params: dict[str, Any]
    ) -> dict[int, Completion]:
        out: dict[int, Completion] = {}
        pending = list(draws)
        if len(pending) > 1 and self.supports_n:
            got = await self._request(messages, pending, params)
            out.update(got)
            # A server may ignore `n` and return fewer choices: fetch the rest one by one.
            pending = [d for d in pending if d not in out]
        if pending:
            results = await asyncio.gather(*(self._request(messages, [d], params) for d in pending))
            for got in results:
                out.update(got)
        for d in draws:
            if d not in out:
                out[d] = Completion("", draw=d, error="the server returned no choice for this draw")
                self.stats.failed_draws += 1
        return out

    async def _request(
        self, messages: list[Message], draws: list[int], params: dict[str, Any]
    ) -> dict[int, Completion]:
        """One request for ``len(draws)`` choices, retried; failed draws carry ``error``."""
        cfg = self.config
        reason = "no attempt made"
        for attempt in range(cfg.max_retries + 1):
            try:
                async with self.limiter:
                    self.stats.requests += 1
                    reply = await asyncio.wait_for(
                        self._client().request(
                            ChatRequest(
                                messages,
                                n=len(draws),
                                temperature=params["temperature"],
                                max_tokens=params["max_tokens"],
                                top_logprobs=params["top_logprobs"],
                                seed=params["seed"] + draws[0],
                                timeout_s=cfg.timeout_s,
                                response_format=params.get("response_format"),
                            )
                        ),
                        # the client enforces timeout_s itself; this guards clients that do not
                        timeout=cfg.timeout_s * 1.5 + 1,
                    )
                self.reached = True
                return self._split(reply, draws)
            except FatalBackendError:
                raise
            except Exception as exc:
                verdict = classify(exc)
                reason = verdict.reason
                if verdict.unreachable and not self.reached:
                    raise FatalBackendError(
                        f"{cfg.backend} backend cannot reach the judge at {self.where()}: "
                        f"{verdict.reason}. Is the server running? Check `base_url` (and "
                        "`model`) in the source's `with:` settings."
                    ) from exc
                if answered(exc):
                    self.reached = True  # the server answered, even if with an error
                if verdict.kind == "fatal":
                    raise FatalBackendError(
                        f"{cfg.backend} backend (model={cfg.model!r}, at {self.where()}): "
                        f"{verdict.reason}"
                    ) from exc
                if verdict.kind == "fail" or attempt == cfg.max_retries:
                    break
                self.stats.retries += 1
                await asyncio.sleep(
                    backoff_delay(attempt, cfg.backoff_s, cfg.backoff_max_s, verdict.retry_after)
                )
        self.stats.failed_draws += len(draws)
        if len(self.stats.errors) < 20:
            self.stats.errors.append(reason)
        return {d: Completion("", draw=d, error=reason) for d in draws}

    def where(self) -> str:
        """The address requests go to, for error messages."""
        if self.config.base_url:
            return self.config.base_url
        return f"the {self.config.backend} default endpoint for model {self.config.model!r}"

    def _split(self, reply: RawReply, draws: list[int]) -> dict[int, Completion]:
        """Spread one reply over its draws: the prompt is billed once, to the first draw."""
        cfg = self.config
        cost = reply.cost_usd
        if cost is None:
            cost = (
                reply.prompt_tokens * cfg.price_per_mtok_in
                + reply.completion_tokens * cfg.price_per_mtok_out
            ) / 1e6
        self.stats.prompt_tokens += reply.prompt_tokens
        self.stats.completion_tokens += reply.completion_tokens
        self.stats.cost_usd += cost
        choices = reply.choices[: len(draws)]
        k = max(1, len(choices))
        out: dict[int, Completion] = {}
        for i, (d, choice) in enumerate(zip(draws, choices, strict=False)):
            out[d] = Completion(
                text=choice.text,
                draw=d,
                finish_reason=choice.finish_reason,
                tokens=choice.tokens,
                prompt_tokens=reply.prompt_tokens if i == 0 else 0,
                completion_tokens=reply.completion_tokens // k
                + (1 if i < reply.completion_tokens % k else 0),
                cost_usd=cost / k,
            )
        return out

    async def aclose(self) -> None:
        """Close this loop's client (connections)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        client = self._clients.pop(loop, None)
        if client is not None:
            await client.aclose()

    def close(self) -> None:
        """Drop clients and close the cache connection. Safe to call twice."""
        self._clients = weakref.WeakKeyDictionary()
        if self.cache is not None:
            self.cache.close()
