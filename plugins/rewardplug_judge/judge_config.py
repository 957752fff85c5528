"""``with:`` of the ``llm_judge`` source: :class:`JudgeConfig`, the backend fields plus how to judge.

Its own module so that the judging modes (:mod:`rewardplug_judge.pairwise`) read it without
importing the source that dispatches to them; :mod:`rewardplug_judge.source` re-exports it.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from rewardplug_judge.backed import BackedConfig
from rewardplug_judge.prompts import load_template

__all__ = ["JudgeConfig"]


class JudgeConfig(BackedConfig):
    """``with:`` of an ``llm_judge`` source: the backend fields plus how to judge."""

    prompt: str | None = None
    """Template name in ``rubrics/prompts/`` or a path; None: ``pointwise`` or ``groupwise``."""
    judging: Literal["pointwise", "groupwise"] = "pointwise"
    """``pointwise``: one response per request; ``groupwise``: all responses of a group at once."""
    mode: Literal["sample", "logprobs", "pairwise"] = "sample"
    """Where uncertainty comes from: K sampled grades, the grade-token distribution, or (pairwise)
    every pair of a group judged in both orders, K samples each (2K draws)."""
    samples: int = Field(5, ge=1)
    """K: draws per response (sampled grades, or quantiles of the logprob distribution)."""
    scale: tuple[int, int] = (1, 10)
    """Lowest and highest grade; grades are mapped linearly onto [0, 1]."""
    top_logprobs: int = Field(20, ge=1, le=20)
    """``mode: logprobs``: alternatives per token asked for (OpenAI allows at most 20)."""
    logprobs_temperature: float = Field(0.0, ge=0)
    """``mode: logprobs``: temperature of its single request (0 = greedy)."""
    parse_retries: int = Field(1, ge=0)
    """Times an unparseable reply is re-asked (as a fresh draw) before that draw is missing."""
    max_response_chars: int = Field(16000, ge=100)
    """Longer responses are cut (start and end kept) to fit the judge's context; noted in detail."""
    max_group_size: int = Field(8, ge=1)
    """``groupwise``: larger groups are judged in chunks of this many responses."""
    pairwise_prior: float = Field(0.1, gt=0)
    """``mode: pairwise``: precision of the Gaussian prior on Bradley–Terry strengths (keeps a
    fit finite when one response wins every comparison)."""
    structured: bool = False
    """Ask for a JSON schema derived from the scale (or the pairwise labels) through the
    backend's ``response_format``, and read the verdict from its field (openai / litellm)."""

    @model_validator(mode="after")
    def _check(self) -> JudgeConfig:
        lo, hi = self.scale
        if hi <= lo:
            raise ValueError(f"scale must be (low, high) with high > low, got {self.scale}")
        if self.backend in ("openai", "litellm") and not self.model:
            raise ValueError(f"backend {self.backend!r} needs `model`")
        if self.mode == "pairwise" and self.judging != "pointwise":
            raise ValueError("mode 'pairwise' compares two responses per call: drop `judging`")
        if self.structured and self.backend not in ("openai", "litellm"):
            raise ValueError(
                "structured: true needs a backend with response_format (openai, litellm)"
            )
        load_template(self.template_name)  # fail at stack load, not mid-run
        return self

    @property
    def template_name(self) -> str:
        """The template actually used."""
        return self.prompt or ("pairwise" if self.mode == "pairwise" else self.judging)
