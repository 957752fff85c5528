"""The ``openai`` backend: the official client against any OpenAI-compatible server."""

from __future__ import annotations

import os
from typing import Any

from rewardplug_judge.backends.base import ChatRequest, Choice, Client, RawReply
from rewardplug_judge.backends.types import BackendConfig, TokenLogprob
from rewardplug_judge.retry import BadReply

__all__ = ["OpenAIClient", "parse_chat_response"]


def parse_chat_response(resp: Any) -> RawReply:
    """Turn a chat-completions response (openai or litellm object) into a :class:`RawReply`."""
    choices = getattr(resp, "choices", None)
    if not isinstance(choices, list):
        raise BadReply(f"not a chat completion: {str(resp)[:200]!r}")
    if not choices:
        raise BadReply("the server returned an empty `choices` list")
    out = []
    for choice in choices:
        message = getattr(choice, "message", None)
        text = getattr(message, "content", None) or ""
        out.append(Choice(text, getattr(choice, "finish_reason", None), _tokens(choice)))
    usage = getattr(resp, "usage", None)
    return RawReply(
        out,
        prompt_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
        completion_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
    )


def _field(obj: Any, name: str) -> Any:
    """``obj[name]`` of a dict (a raw JSON reply), else the attribute (the client's objects)."""
    return obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)


def _tokens(choice: Any) -> list[TokenLogprob] | None:
    logprobs = getattr(choice, "logprobs", None)
    content = getattr(logprobs, "content", None) if logprobs is not None else None
    if not content:
        return None
    tokens = []
    for item in content:
        top = {}
        for alt in _field(item, "top_logprobs") or []:
            top[_field(alt, "token")] = float(_field(alt, "logprob"))
        token, logprob = _field(item, "token"), float(_field(item, "logprob"))
        top.setdefault(token, logprob)
        tokens.append(TokenLogprob(token, logprob, top))
    return tokens


class OpenAIClient(Client):
    """``openai.AsyncOpenAI`` with its own retries off (the backend retries, with a budget)."""

    supports_n = True

    def __init__(self, config: BackendConfig):
        import openai

        if not config.model:
            raise ValueError("backend 'openai' needs `model` (the served model's name)")
        self.model = config.model
        self.client = openai.AsyncOpenAI(
            base_url=config.base_url,
            # Local servers accept any key; a real endpoint rejects it fast (fatal, not retried).
            api_key=os.environ.get(config.api_key_env) or "sk-no-key-set",
            max_retries=0,
            timeout=config.timeout_s,
        )

    async def request(self, request: ChatRequest) -> RawReply:
        resp = await self.client.chat.completions.create(**request.chat_kwargs(self.model))
        return parse_chat_response(resp)

    async def aclose(self) -> None:
        await self.client.close()
