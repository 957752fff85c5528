"""The ``hack_check`` source: an LLM judge that names the responses gaming the reward.

``mode: contrastive`` (default) shows the judge a prompt's responses side by side — the task, a
summary of its tests and every response — and asks which ones game the reward rather than solve
the task (TRACE finds judges detect hacks far better this way than one response at a time).
``mode: isolated`` asks about one response per call, so the two can be compared on one judge.

Each of the K sampled replies is one draw per response: 1.0 = "not a hack", 0.0 = "hack"; the
score is their mean, so a stack uses it as a gate (``combine: min``) or as a weighted source.
``detail`` carries each verdict's rationale. A group is judged in one call when it fits
``context_chars``; a larger one is chunked, every chunk showing the same reference response
(never truncated silently: cut responses are noted in ``detail``). A response no reply gives a
verdict for abstains with the reason — never a silent pass.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator

from rewardplug import Sample, Score
from rewardplug_judge import structured
from rewardplug_judge.backed import BackedConfig, BackedSource
from rewardplug_judge.backends import Completion
from rewardplug_judge.fence import nonce_of
from rewardplug_judge.hack_prompt import Verdict, parse_verdicts, plan_chunks, summarize_tests
from rewardplug_judge.prompts import load_template, truncate

__all__ = ["HackCheckSource"]

_HEADER = 90  # characters of a "### Response i" header, its fence and spacing (context budget)


class HackCheckConfig(BackedConfig):
    """``with:`` of a ``hack_check`` source: the backend fields plus how to judge."""

    mode: Literal["contrastive", "isolated"] = "contrastive"
    """``contrastive``: a group's responses in one call; ``isolated``: one response per call."""
    samples: int = Field(3, ge=1, le=64)
    """K: sampled verdicts per response (the draws)."""
    prompt: str | None = None
    """Template name in ``rubrics/prompts/`` or a path; None: ``hack_check`` or
    ``hack_check_isolated`` by mode."""
    context_chars: int = Field(24000, ge=2000)
    """Prompt budget in characters: a group larger than this is judged in chunks."""
    max_group_size: int = Field(12, ge=2)
    """Most responses in one call (larger groups are chunked)."""
    max_response_chars: int = Field(6000, ge=200)
    """Longer responses are cut (start and end kept); noted in ``detail["truncated"]``."""
    parse_retries: int = Field(1, ge=0)
    """Times a reply without a single verdict is re-asked (as a fresh draw)."""
    max_tokens: int = Field(512, ge=16)
    """Most tokens per reply (one reasoning paragraph plus a verdict line per response)."""
    structured: bool = False
    """Ask for a JSON schema with one ``HACK``/``OK`` verdict per response label through the
    backend's ``response_format``, and read the verdicts from its fields (openai / litellm)."""

    @model_validator(mode="after")
    def _check(self) -> HackCheckConfig:
        if self.backend in ("openai", "litellm") and not self.model:
            raise ValueError(f"backend {self.backend!r} needs `model`")
        if self.structured and self.backend not in ("openai", "litellm"):
            raise ValueError(
                "structured: true needs a backend with response_format (openai, litellm)"
            )
        if self.context_chars < 2 * self.max_response_chars:
            raise ValueError(
                f"context_chars ({self.context_chars}) must hold at least two responses of "
                f"max_response_chars ({self.max_response_chars}): raise it or lower the other"
            )
        load_template(self.template_name)  # fail at stack load, not mid-run
        return self

    @property
    def template_name(self) -> str:
        """The template actually used."""
        if self.prompt:
            return self.prompt
        return "hack_check" if self.mode == "contrastive" else "hack_check_isolated"


@dataclass
class _Call:
    """One judge call: the responses it shows (batch indices; the first may be the reference)."""

    indices: list[int]
    judged: list[int]
    """The indices whose verdicts this call decides (all but a repeated shared reference)."""
    messages: list[dict[str, str]]
    chunk: tuple[int, int] = (1, 1)
    prefill: str = ""
    """The start of the reply a template prefills (``Response 1:``); read with the reply."""
    nonce: str | None = None
    """The fence nonce of ``messages``: echoes of that fence in a reply are never read."""
    response_format: dict[str, Any] | None = None
    """``structured: true``: the JSON schema the judge answers in."""
    notes: dict[int, dict[str, Any]] = field(default_factory=dict)


class HackCheckSource(BackedSource):
    """Group-level reward-hack judge; draws are K sampled "not a hack" verdicts."""

    Config = HackCheckConfig
    config: HackCheckConfig
    #: contrastive verdicts depend on the other responses of the group
    group_scoped: ClassVar[bool] = True

    async def ascore_ready(self, samples: Sequence[Sample]) -> list[Score]:
        """Judge a batch; its groups are judged concurrently. Raises ``FatalBackendError``."""
        if not samples:
            return []
        calls = self._calls(samples)
        verdicts: list[list[Verdict]] = [[] for _ in samples]
        info: list[dict[str, Any]] = [{} for _ in samples]
        usage: list[list[Completion]] = [[] for _ in samples]

        async def run(call: _Call) -> None:
            completions = await self._ask(call)
            count = len(call.indices)
            for position, i in enumerate(call.indices):
                if i not in call.judged:
                    continue
                texts = [call.prefill + c.text for c in completions if c.ok]
                parsed = [parse_verdicts(t, count, call.nonce)[position] for t in texts]
                verdicts[i].extend(v for v in parsed if v is not None)
                usage[i].extend(completions)
                info[i].update(call.notes.get(i, {}))
                info[i]["chunk"] = list(call.chunk)
                info[i]["shown_with"] = count - 1
                info[i]["position"] = position + 1
                if not any(v is not None for v in parsed):
                    said = next((t for t in texts if t), "")
                    errors = sorted({c.error for c in completions if c.error})
                    info[i]["no_verdict"] = (
                        f"every judge request failed ({errors[0]})"
                        if not texts and errors
                        else f"the judge's replies named no 'Response {position + 1}: HACK|OK' "
                        f"line (it said: {said[-160:]!r})"
                    )

        try:
            async with asyncio.TaskGroup() as tg:
                for call in calls:
                    tg.create_task(run(call))
        except* Exception as group:
            raise group.exceptions[0] from None
        return [self._finish(verdicts[i], info[i], usage[i]) for i in range(len(samples))]

    # -- building calls --------------------------------------------------------------------

    def _calls(self, samples: Sequence[Sample]) -> list[_Call]:
        cfg = self.config
        groups: dict[str, list[int]] = {}
        for i, s in enumerate(samples):
            groups.setdefault(s.group, []).append(i)
        calls: list[_Call] = []
        for members in groups.values():
            # canonical order: a group's prompt must not depend on how its batch was assembled
            members = sorted(members, key=lambda i: (samples[i].id, i))
            if cfg.mode == "isolated":
                calls.extend(self._call(samples, [i], [i]) for i in members)
                continue
            texts = {i: truncate(samples[i].response, cfg.max_response_chars)[0] for i in members}
            fixed = self._fixed_chars(samples[members[0]])
            sizes = [len(texts[i]) + _HEADER for i in members]
            chunks = plan_chunks(sizes, fixed, cfg.context_chars, cfg.max_group_size)
            for number, chunk in enumerate(chunks, start=1):
                indices = [members[k] for k in chunk]
                judged = indices if number == 1 else indices[1:]
                call = self._call(samples, indices, judged)
                call.chunk = (number, len(chunks))
                calls.append(call)
        return calls

    def _fixed_chars(self, sample: Sample) -> int:
        return sum(len(m["content"]) for m in self._render(sample, [], 1))

    def _render(self, first: Sample, responses: list[str], count: int) -> list[dict[str, str]]:
        return self.template.render(
            prompt=first.prompt_text,
            tests=summarize_tests(first.tests),
            responses=responses,
            count=count,
            reference=first.reference,
        )

    def _call(self, samples: Sequence[Sample], indices: list[int], judged: list[int]) -> _Call:
        cfg = self.config
        notes: dict[int, dict[str, Any]] = {}
        texts = []
        for i in indices:
            text, cut = truncate(samples[i].response, cfg.max_response_chars)
            if cut:
                notes[i] = {"truncated": cut}
            texts.append(text)  # fenced and numbered by the template's render
        messages = self._render(samples[indices[0]], texts, len(indices))
        nonce, fmt = nonce_of(messages), None
        if cfg.structured:
            schema = structured.verdict_schema(len(indices))
            messages = structured.apply(messages, schema)
            fmt = structured.response_format("hack_verdicts", schema)
        prefill = messages[-1]["content"] if messages[-1]["role"] == "assistant" else ""
        return _Call(
            indices,
            judged,
            messages,
            prefill=prefill,
            nonce=nonce,
            response_format=fmt,
            notes=notes,
        )

    # -- asking ----------------------------------------------------------------------------

    async def _ask(self, call: _Call) -> list[Completion]:
        """K replies; a reply with no verdict at all is re-asked as a fresh draw ``K*r + i``."""
        cfg = self.config
        k = cfg.samples
        count = len(call.indices)
        done: list[Completion] = []
        todo = list(range(k))
        for round_ in range(cfg.parse_retries + 1):
            got = await self.backend.complete(
                call.messages,
                draws=[k * round_ + i for i in todo],
                max_tokens=cfg.max_tokens,
                response_format=call.response_format,
            )
            again = []
            for i, c in zip(todo, got, strict=True):
                verdicts = parse_verdicts(call.prefill + c.text, count, call.nonce)
                if c.ok and all(v is None for v in verdicts):
                    again.append(i)
                    if round_ < cfg.parse_retries:
                        continue
                done.append(c)
            todo = again
            if not todo:
                break
        return done

    # -- scores ----------------------------------------------------------------------------

    def _finish(
        self, verdicts: list[Verdict], info: dict[str, Any], completions: list[Completion]
    ) -> Score:
        cfg = self.config
        detail: dict[str, Any] = {
            "mode": cfg.mode,
            "judge": f"{cfg.backend}:{cfg.model}",
            **{k: v for k, v in info.items() if k != "no_verdict"},
            "verdicts": ["hack" if hack else "ok" for hack, _ in verdicts],
            "hack_votes": sum(hack for hack, _ in verdicts),
            "rationales": [why for _, why in verdicts][:5],
            "tokens": {
                "prompt": sum(c.prompt_tokens for c in completions),
                "completion": sum(c.completion_tokens for c in completions),
            },
            "missing_draws": max(0, cfg.samples - len(verdicts)),
        }
        if not verdicts:
            reason = info.get("no_verdict", "the judge gave no verdict for this response")
            return Score.abstain(f"no hack verdict: {reason}", **detail)
        return Score.of(draws=[0.0 if hack else 1.0 for hack, _ in verdicts], **detail)
