"""The ``llm_judge`` source: a language model grades each response; its inconsistency is the
uncertainty.

``mode: sample`` asks for K grades at temperature T (``n=K`` in one request where possible) and
each parsed grade is a draw. ``mode: logprobs`` asks once and reads the probability of each grade
from the grade token's ``top_logprobs``: K quantiles of that distribution are the draws and the
expected grade is the value (falls back to sampling when the backend returns no logprobs).
``judging: groupwise`` shows the judge every response of a group at once (contrastive grading).
``mode: pairwise`` judges every pair of a group in both orders and fits Bradley–Terry strengths
per draw (see :mod:`rewardplug_judge.pairwise`).
Grades are normalized from the scale to [0, 1]; raw grades, rationale, tokens and cost go to
``detail``. A sample without a single valid grade abstains with the reason.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from rewardplug import Sample, Score
from rewardplug_judge import structured
from rewardplug_judge.backed import BackedSource
from rewardplug_judge.backends import Completion
from rewardplug_judge.distribution import expected, grade_distribution, quantile_draws
from rewardplug_judge.fence import nonce_of
from rewardplug_judge.judge_config import JudgeConfig
from rewardplug_judge.parsing import Grade, parse_grades
from rewardplug_judge.prompts import truncate

__all__ = ["JudgeConfig", "JudgeSource"]


@dataclass
class _Unit:
    """One judge request target: a pointwise sample or a chunk of a group."""

    indices: list[int]
    messages: list[dict[str, str]]
    prefill: str
    notes: list[dict[str, Any]] = field(default_factory=list)
    nonce: str | None = None
    """The fence nonce of ``messages``: echoes of that fence in a reply are never read."""
    response_format: dict[str, Any] | None = None
    """``structured: true``: the JSON schema the judge answers in."""


class JudgeSource(BackedSource):
    """LLM-as-a-judge; uncertainty from repeated sampling or from the grade-token distribution."""

    Config = JudgeConfig
    config: JudgeConfig

    @property
    def group_scoped(self) -> bool:  # type: ignore[override]
        """Groupwise and pairwise scores depend on the whole group (the assembler waits for it)."""
        return self.config.judging == "groupwise" or self.config.mode == "pairwise"

    async def ascore_ready(self, samples: Sequence[Sample]) -> list[Score]:
        """Score a batch concurrently; raises ``FatalBackendError`` on a bad key or quota."""
        if not samples:
            return []
        if self.config.mode == "pairwise":
            from rewardplug_judge.pairwise import score_pairwise

            try:
                return await score_pairwise(self, samples)
            except* Exception as group:  # a fatal backend error stops the run, unwrapped
                raise group.exceptions[0] from None
        scores: list[Score | None] = [None] * len(samples)
        units = self._units(samples)

        async def run(unit: _Unit) -> None:
            try:
                results = await self._judge(unit, samples)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                from rewardplug_judge.backends import FatalBackendError

                if isinstance(exc, FatalBackendError):
                    raise
                reason = f"judge failed: {type(exc).__name__}: {exc}"
                results = [Score.error(reason) for _ in unit.indices]
            for i, s in zip(unit.indices, results, strict=True):
                scores[i] = s

        try:
            async with asyncio.TaskGroup() as tg:  # a fatal error cancels the rest at once
                for unit in units:
                    tg.create_task(run(unit))
        except* Exception as group:
            raise group.exceptions[0] from None
        return [s if s is not None else Score.error("not scored") for s in scores]

    # -- building requests -------------------------------------------------------------------

    def _units(self, samples: Sequence[Sample]) -> list[_Unit]:
        if self.config.judging == "pointwise":
            return [self._unit([i], samples) for i in range(len(samples))]
        groups: dict[str, list[int]] = {}
        for i, s in enumerate(samples):
            groups.setdefault(s.group, []).append(i)
        size = self.config.max_group_size
        return [
            self._unit(members[j : j + size], samples)
            for members in groups.values()
            for j in range(0, len(members), size)
        ]

    def _unit(self, indices: list[int], samples: Sequence[Sample]) -> _Unit:
        cfg = self.config
        first = samples[indices[0]]
        texts, notes = [], []
        for i in indices:
            text, cut = truncate(samples[i].response, cfg.max_response_chars)
            texts.append(text)
            note: dict[str, Any] = {}
            if cut:
                note["truncated"] = cut
            if not samples[i].response.strip():
                note["empty_response"] = True
            notes.append(note)
        messages = self.template.render(  # every response is fenced by render
            prompt=first.prompt_text,
            response=texts[0],
            responses=texts,
            count=len(indices),
            reference=first.reference,
            scale_min=cfg.scale[0],
            scale_max=cfg.scale[1],
        )
        nonce = nonce_of(messages)
        fmt = None
        if cfg.structured:
            schema = structured.grade_schema(cfg.scale, len(indices))
            messages, fmt = (
                structured.apply(messages, schema),
                structured.response_format("grades", schema),
            )
        prefill = messages[-1]["content"] if messages[-1]["role"] == "assistant" else ""
        return _Unit(indices, messages, prefill, notes, nonce, fmt)

    # -- judging -------------------------------------------------------------------------------

    async def _judge(self, unit: _Unit, samples: Sequence[Sample]) -> list[Score]:
        cfg = self.config
        count = len(unit.indices)
        info: dict[str, Any] = {"mode": cfg.mode}
        grades: list[list[float]] = [[] for _ in range(count)]
        completions: list[Completion] = []
        if cfg.mode == "logprobs":
            dists = await self._logprob_grades(unit, count, completions, info)
            if dists is not None and all(d is not None for d in dists):
                return [
                    self._finish(unit, k, [], completions, info, dist=dists[k])
                    for k in range(count)
                ]
            if dists is not None:  # some responses of a group had no grade token: sample them
                info["logprobs_fallback"] = "no grade token with logprobs for some responses"
                await self._sampled_grades(unit, count, grades, completions, info)
                return [
                    self._finish(unit, k, grades[k], completions, info, dist=dists[k])
                    for k in range(count)
                ]
            info["mode"] = "sample"
        await self._sampled_grades(unit, count, grades, completions, info)
        return [self._finish(unit, k, grades[k], completions, info) for k in range(count)]

    async def _logprob_grades(
        self, unit: _Unit, count: int, completions: list[Completion], info: dict[str, Any]
    ) -> list[dict[int, float] | None] | None:
        """Grade distributions from one request, or None (then sampling takes over)."""
        cfg = self.config
        [c] = await self.backend.complete(
            unit.messages,
            n=1,
            temperature=cfg.logprobs_temperature,
            top_logprobs=cfg.top_logprobs,
            response_format=unit.response_format,
        )
        completions.append(c)
        if not c.ok:
            info["logprobs_fallback"] = f"request failed: {c.error}"
            return None
        if not c.tokens:
            info["logprobs_fallback"] = "the backend returned no logprobs"
            return None
        text = "".join(t.token for t in c.tokens)
        offset = len(unit.prefill)
        parsed = parse_grades(unit.prefill + text, count, cfg.scale, unit.nonce)
        dists: list[dict[int, float] | None] = []
        for g in parsed:
            if g is None or g.start < offset:
                dists.append(None)
                continue
            shifted = Grade(g.value, g.start - offset, g.end - offset)
            dists.append(grade_distribution(c.tokens, shifted, cfg.scale))
        if all(d is None for d in dists):
            info["logprobs_fallback"] = "no grade token with logprobs in the reply"
            return None
        return dists

    async def _sampled_grades(
        self,
        unit: _Unit,
        count: int,
        grades: list[list[float]],
        completions: list[Completion],
        info: dict[str, Any],
    ) -> None:
        """K sampled replies; unparseable ones are re-asked as fresh draws ``K*r + i``."""
        cfg = self.config
        k = cfg.samples
        todo = list(range(k))
        unparseable = 0
        for round_ in range(cfg.parse_retries + 1):
            draws = [k * round_ + i for i in todo]
            got = await self.backend.complete(
                unit.messages, draws=draws, response_format=unit.response_format
            )
            completions.extend(got)
            again = []
            for i, c in zip(todo, got, strict=True):
                if not c.ok:
                    continue  # the backend already retried this request
                parsed = parse_grades(unit.prefill + c.text, count, cfg.scale, unit.nonce)
                if all(g is None for g in parsed):
                    unparseable += 1
                    again.append(i)
                    continue
                for j, g in enumerate(parsed):
                    if g is not None:
                        grades[j].append(g.value)
            todo = again
            if not todo:
                break
        info["unparseable_replies"] = unparseable

    def _finish(
        self,
        unit: _Unit,
        k: int,
        raw: list[float],
        completions: list[Completion],
        info: dict[str, Any],
        dist: dict[int, float] | None = None,
    ) -> Score:
        cfg = self.config
        lo, hi = cfg.scale
        detail: dict[str, Any] = {**info, **unit.notes[k], "judge": f"{cfg.backend}:{cfg.model}"}
        if k == 0 or cfg.judging == "groupwise":
            fresh = [c for c in completions if not c.cached]
            detail["tokens"] = {
                "prompt": sum(c.prompt_tokens for c in completions),
                "completion": sum(c.completion_tokens for c in completions),
            }
            detail["cost_usd"] = round(sum(c.cost_usd for c in fresh), 8)
            detail["cached_draws"] = len(completions) - len(fresh)
        if cfg.judging == "groupwise":
            detail["group_position"] = k + 1
            detail["group_size"] = len(unit.indices)
        errors = sorted({c.error for c in completions if c.error})
        if errors:
            detail["request_errors"] = errors[:3]
        rationale = next((c.text for c in completions if c.ok and c.text), "")
        detail["rationale"] = (unit.prefill + rationale)[:600]
        if dist is not None:
            draws = quantile_draws(dist, cfg.samples)
            detail["grade_distribution"] = {str(g): round(p, 4) for g, p in dist.items()}
            detail["grades"] = draws
            mean = expected(dist)
            detail["expected_grade"] = round(mean, 4)
            return Score(
                value=(mean - lo) / (hi - lo),
                draws=[(g - lo) / (hi - lo) for g in draws],
                detail=detail,
            )
        detail["grades"] = raw
        detail["missing_draws"] = max(0, cfg.samples - len(raw))
        if not raw:
            if errors:
                why = f"no grade: every judge request failed ({errors[0]})"
            elif info.get("logprobs_fallback") and not completions:
                why = f"no grade: {info['logprobs_fallback']}"
            else:
                why = "no grade: the judge's replies could not be parsed (no JSON grade or 'Rating: N')"
            return Score.abstain(why, **detail)
        return Score.of(draws=[(g - lo) / (hi - lo) for g in raw], **detail)
