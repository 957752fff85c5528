"""The ``litellm`` backend: any provider litellm supports (``model: provider/name``).

litellm must be ``>=1.83.7`` (1.82.7 and 1.82.8 were a compromised upload).
"""

from __future__ import annotations

import os
from typing import Any

from rewardplug_judge.backends.base import ChatRequest, Client, RawReply
from rewardplug_judge.backends.openai_client import parse_chat_response
from rewardplug_judge.backends.types import BackendConfig

__all__ = ["LiteLLMClient", "import_litellm"]


def import_litellm() -> Any:
    """Import litellm quietly and offline (its bundled price map, no download at import)."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    litellm.suppress_debug_info = True
    return litellm


class LiteLLMClient(Client):
    """``litellm.acompletion`` with its retries off; cost from litellm's price map when known."""

    supports_n = True

    def __init__(self, config: BackendConfig):
        if not config.model:
            raise ValueError("backend 'litellm' needs `model` (e.g. 'openai/gpt-4o-mini')")
        self.litellm = import_litellm()
        self.model = config.model
        self.base_url = config.base_url
        self.api_key = os.environ.get(config.api_key_env) or None
        if self.api_key is None and config.base_url:
            self.api_key = "sk-no-key-set"  # local OpenAI-compatible servers accept anything

    async def request(self, request: ChatRequest) -> RawReply:
        kwargs = {**request.chat_kwargs(self.model), "num_retries": 0, "max_retries": 0}
        if self.base_url:
            kwargs["api_base"] = self.base_url
        if self.api_key:
            kwargs["api_key"] = self.api_key
        resp = await self.litellm.acompletion(**kwargs)
        reply = parse_chat_response(resp)
        try:
            cost = float(self.litellm.completion_cost(completion_response=resp))
            reply.cost_usd = cost if cost > 0 else None
        except Exception:  # unknown model: fall back to the configured prices
            reply.cost_usd = None
        return reply
