"""Judge backends: cached, retried chat completions from openai, litellm or a local model.

This is the stable API other plugins build on (the ``rubric`` source's ``llm`` criteria)::

    from rewardplug_judge.backends import BackendConfig, make_backend

    backend = make_backend(BackendConfig(backend="openai", model="m", base_url="http://..."))
    completions = await backend.complete(messages, n=5, temperature=1.0, top_logprobs=0)
    for c in completions:        # one Completion per draw, in draw order
        c.text, c.tokens, c.prompt_tokens, c.completion_tokens, c.cost_usd, c.cached, c.error

    run_sync(coro)               # run a coroutine from sync code (also inside a running loop)

See "Backend API for other plugins" in ``docs/sources/llm_judge.md``.
"""

from __future__ import annotations

from typing import Any

from rewardplug_judge.aio import run_sync
from rewardplug_judge.backends.base import (
    Backend,
    BackendStats,
    ChatRequest,
    Choice,
    Client,
    RawReply,
)
from rewardplug_judge.backends.types import (
    BackendConfig,
    BackendError,
    Completion,
    FatalBackendError,
    Message,
    TokenLogprob,
)

__all__ = [
    "Backend",
    "BackendConfig",
    "BackendError",
    "BackendStats",
    "ChatRequest",
    "Choice",
    "Client",
    "Completion",
    "FatalBackendError",
    "Message",
    "RawReply",
    "TokenLogprob",
    "make_backend",
    "run_sync",
]


class _ClientFactory:
    """Builds the client for a config when first needed (picklable; no import until then)."""

    def __init__(self, config: BackendConfig):
        self.config = config

    @property
    def supports_n(self) -> bool:
        return True  # all three built-in clients accept n (servers that ignore it are handled)

    def __call__(self) -> Client:
        name = self.config.backend
        if name == "openai":
            from rewardplug_judge.backends.openai_client import OpenAIClient

            return OpenAIClient(self.config)
        if name == "litellm":
            from rewardplug_judge.backends.litellm_client import LiteLLMClient

            return LiteLLMClient(self.config)
        from rewardplug_judge.backends.transformers_local import TransformersClient

        return TransformersClient(self.config)


def make_backend(config: BackendConfig | dict[str, Any] | None = None, **options: Any) -> Backend:
    """A :class:`Backend` for ``config`` (a :class:`BackendConfig`, a subclass, or a dict).

    Subclass configs (e.g. a source's ``Config``) are reduced to their backend fields. Nothing
    heavy is imported or connected until the first ``complete`` call.
    """
    if config is None or isinstance(config, dict):
        config = BackendConfig.model_validate({**(config or {}), **options})
    else:
        config = config.backend_only()
        if options:
            config = config.model_copy(update=options)
    if config.backend in ("openai", "litellm") and not config.model:
        raise ValueError(f"backend {config.backend!r} needs `model`")
    return Backend(config, _ClientFactory(config))
