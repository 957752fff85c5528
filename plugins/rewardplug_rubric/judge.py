"""The rubric source's access to an LLM judge, built on the ``llm_judge`` backend API.

Only the documented surface of ``rewardplug_judge.backends`` is used (``BackendConfig``,
``make_backend``, ``Backend.complete`` returning one ``Completion`` per draw, ``run_sync``), so ``llm``
criteria get the judge's backends (openai-compatible servers, litellm, a local transformers
model), its persistent cache, retries and rate limits for free. ``rewardplug_judge`` is imported
only when a rubric actually needs a judge.
"""

from __future__ import annotations

import asyncio
from typing import Any

from rewardplug.plugin_api import Message

__all__ = ["RubricJudge", "validate_judge_settings"]


def _backends() -> Any:
    try:
        from rewardplug_judge import backends
    except ImportError as exc:  # the judge plugin is a separate (optional) package
        raise ValueError(
            f"llm criteria need the llm_judge plugin (`pip install 'rewardplug[judge]'`): {exc}"
        ) from None
    return backends


def validate_judge_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """Check ``judge:`` settings against the backend's ``BackendConfig``; errors name the field."""
    from pydantic import ValidationError

    config_class = _backends().BackendConfig
    try:
        config_class.model_validate(settings)
    except ValidationError as exc:
        problems = "; ".join(
            f"judge.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        raise ValueError(problems) from None
    if settings.get("backend") in ("openai", "litellm") and not settings.get("model"):
        raise ValueError(f"judge: backend {settings['backend']!r} needs `model`")
    return dict(settings)


class RubricJudge:
    """K judge replies for each of many chat prompts, concurrently, through one backend."""

    def __init__(self, settings: dict[str, Any]):
        self.settings = dict(settings)
        self.backend = _backends().make_backend(self.settings)

    @property
    def max_tokens(self) -> int:
        """The backend's per-reply token budget."""
        return int(self.backend.config.max_tokens)

    async def acomplete(
        self, prompts: list[list[Message]], k: int, max_tokens: list[int | None] | None = None
    ) -> list[list[Any]]:
        """Per prompt, ``k`` ``Completion`` objects (draws 0..k-1; failed draws carry ``error``).

        ``FatalBackendError`` (bad key, unknown model) propagates: retrying cannot help.
        """
        budgets = max_tokens or [None] * len(prompts)
        calls = [
            self.backend.complete(messages, n=k, max_tokens=budget)
            for messages, budget in zip(prompts, budgets, strict=True)
        ]
        return list(await asyncio.gather(*calls))

    def complete(
        self, prompts: list[list[Message]], k: int, max_tokens: list[int | None] | None = None
    ) -> list[list[Any]]:
        """Blocking :meth:`acomplete` (one event loop for the whole batch)."""

        async def once() -> list[list[Any]]:
            try:
                return await self.acomplete(prompts, k, max_tokens)
            finally:
                await self.backend.aclose()  # connections belong to this loop, which ends here

        replies: list[list[Any]] = _backends().run_sync(once())
        return replies

    def close(self) -> None:
        """Release the backend's clients and cache connection."""
        self.backend.close()
