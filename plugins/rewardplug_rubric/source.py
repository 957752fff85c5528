"""The ``rubric`` reward source: weighted criteria checked by programs or by an LLM judge.

``with: {rubric: <path | name in rubrics/ | inline mapping>}``; a sample's own ``Sample.rubric``
(a per-prompt checklist) takes precedence. Scoring a batch happens in three steps:

1. every sample's rubric is resolved and its programmatic criteria are checked (exact outcomes);
2. the ``llm`` criteria are planned as judge calls, one call per response holding all of its
   ``llm`` criteria, K samples each (``implicit`` rubrics: one call per response for the whole
   rubric); criteria a batched reply leaves unanswered are retried one call per criterion;
3. the verdicts are aggregated draw-wise (see :mod:`rewardplug_rubric.aggregate`).

A criterion that raises is *missing* (its error is in ``detail``); a sample whose rubric is
invalid abstains with the validation message; nothing fails the batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import Field, field_validator, model_validator

from rewardplug import RewardSource, Sample, Score, SourceConfig
from rewardplug.plugin_api import Input, Message
from rewardplug_rubric import prompts
from rewardplug_rubric.aggregate import OnError, Verdict, to_score
from rewardplug_rubric.model import Rubric, RubricError, load_rubric, rubric_key

__all__ = ["RubricSource"]


@dataclass
class _Job:
    """One judge call: a chat prompt, and what its K replies answer."""

    sample: int
    messages: list[Message]
    items: list[tuple[Verdict, str]] = field(default_factory=list)  # (verdict, scale); criteria
    implicit: bool = False
    prefix: str = ""  # the prefilled start of the reply, prepended before parsing


@dataclass
class _Plan:
    """Work in progress for one batch."""

    samples: Sequence[Sample]
    rubrics: list[Rubric | None]
    verdicts: list[list[Verdict]]
    grades: list[list[float]]
    notes: list[str | None]
    rationales: list[list[str]]
    usage: list[dict[str, float]] = field(default_factory=list)

    def __post_init__(self) -> None:
        keys = ("calls", "prompt_tokens", "completion_tokens", "cost_usd", "cached")
        self.usage = [dict.fromkeys(keys, 0) for _ in self.samples]


class RubricSource(RewardSource):
    """Scores a response against a rubric: per-criterion verdicts, aggregated per draw."""

    class Config(SourceConfig):
        rubric: str | dict[str, Any] | list[Any] | None = None
        """A rubric file path, a name in the rubric library (``rubrics/``), or an inline mapping.
        May be omitted when every sample brings its own ``rubric``."""
        per_sample: bool = True
        """Use ``Sample.rubric`` when a sample has one (it takes precedence over ``rubric``)."""
        judge: dict[str, Any] | None = None
        """``llm_judge`` backend settings for ``llm`` criteria and ``implicit`` rubrics (e.g.
        ``{backend: openai, model: ..., base_url: ...}``); required when a rubric needs a judge."""
        samples: int = Field(3, ge=1, le=64)
        """K: judge samples per ``llm`` criterion (the score's draws). Programmatic criteria are
        exact, so a rubric without judged criteria has one draw."""
        batch_criteria: bool = True
        """Ask all ``llm`` criteria of a response in one judge call (False: one call each)."""
        prefill: bool | None = None
        """Start the judge's reply with ``1:`` (criteria) or ``GRADE:`` (implicit) so small local
        models keep to the answer format. None: only for the ``transformers`` backend, since
        remote servers may not continue a final assistant message."""
        on_error: OnError = "renormalize"
        """A criterion that fails to run: ``renormalize`` (leave it out, reweigh the others) or
        ``abstain`` (the sample abstains)."""

        @field_validator("rubric")
        @classmethod
        def _loads(cls, value: Any) -> Any:
            if value is not None:
                load_rubric(value)  # RubricError is a ValueError: pydantic reports its message
            return value

        @model_validator(mode="after")
        def _judge_when_needed(self) -> RubricSource.Config:
            if self.rubric is None and not self.per_sample:
                raise ValueError("give a `rubric`, or set `per_sample: true` to use Sample.rubric")
            rubric = load_rubric(self.rubric) if self.rubric is not None else None
            if rubric is not None and rubric.has_judged and self.judge is None:
                judged = [c.id for c in rubric.criteria if c.judged]
                what = "is `implicit`" if rubric.aggregate == "implicit" else f"has llm {judged}"
                raise ValueError(
                    f"rubric {rubric.name!r} {what}: set `judge:` (llm_judge settings)"
                )
            if self.judge is not None:
                from rewardplug_rubric.judge import validate_judge_settings

                self.judge = validate_judge_settings(self.judge)
            return self

    config: Config
    transient = ("_judge", "_cache")

    def __init__(self, config: Any = None, **options: Any):
        super().__init__(config, **options)
        self.rubric: Rubric | None = (
            load_rubric(self.config.rubric) if self.config.rubric is not None else None
        )
        self._judge: Any = None
        self._cache: dict[str, Rubric | RubricError] | None = None

    def requirements(self) -> dict[str, str]:
        """The judge backend's modules when ``judge:`` is set (programmatic checks need none)."""
        if self.config.judge is None:
            return {}
        from rewardplug_judge.requirements import backend_requirements

        return dict(backend_requirements(self.config.judge))

    # -- rubric per sample ----------------------------------------------------------------------

    def rubric_for(self, sample: Sample) -> Rubric:
        """The rubric that scores ``sample``: its own ``rubric`` first, else the source's."""
        if self.config.per_sample and sample.rubric is not None:
            if self._cache is None:
                self._cache = {}
            key = rubric_key(sample.rubric)
            if key not in self._cache:
                try:
                    self._cache[key] = load_rubric(sample.rubric)
                except RubricError as exc:
                    self._cache[key] = exc
            found = self._cache[key]
            if isinstance(found, RubricError):
                raise found
            return found
        if self.rubric is None:
            raise RubricError("the sample has no `rubric` and the source has none configured")
        return self.rubric

    # -- scoring --------------------------------------------------------------------------------

    def inputs(self) -> Sequence[Input]:
        """``rubric`` (a rubric mapping or a library name) when the sample's own rubric is used:
        required when the source has none of its own."""
        if not self.config.per_sample:
            return ()
        return (Input("rubric", required=self.rubric is None, check=load_rubric),)

    def score(self, samples: Sequence[Sample]) -> list[Score]:
        plan, jobs = self._plan(samples)
        while jobs:  # a second round only for criteria a batched reply left unanswered
            budgets = self._budgets(jobs)
            replies = self.judge.complete([j.messages for j in jobs], self.config.samples, budgets)
            jobs = self._apply(plan, jobs, replies)
        return self._finish(plan)

    async def ascore(self, samples: Sequence[Sample]) -> list[Score]:
        plan, jobs = self._plan(samples)
        while jobs:
            budgets = self._budgets(jobs)
            k = self.config.samples
            replies = await self.judge.acomplete([j.messages for j in jobs], k, budgets)
            jobs = self._apply(plan, jobs, replies)
        return self._finish(plan)

    def _budgets(self, jobs: list[_Job]) -> list[int | None]:
        # A batched reply needs a line per criterion: raise the default token budget when it is
        # short; a budget the user set explicitly is kept (small local models ramble).
        if "max_tokens" in (self.config.judge or {}):
            return [None] * len(jobs)
        base = self.judge.max_tokens
        return [None if j.implicit else max(base, 24 * len(j.items) + 16) for j in jobs]

    @property
    def _prefill(self) -> bool:
        if self.config.prefill is not None:
            return self.config.prefill
        backend = (self.config.judge or {}).get("backend", "transformers")
        return bool(backend == "transformers")

    @property
    def judge(self) -> Any:
        """The judge client (created on first use from ``judge:`` settings)."""
        if self._judge is None:
            from rewardplug_rubric.judge import RubricJudge

            if self.config.judge is None:
                raise RubricError("this rubric needs a judge: set `judge:` in the source's `with:`")
            self._judge = RubricJudge(self.config.judge)
        return self._judge

    def _plan(self, samples: Sequence[Sample]) -> tuple[_Plan, list[_Job]]:
        n = len(samples)
        plan = _Plan(
            samples,
            [None] * n,
            [[] for _ in range(n)],
            [[] for _ in range(n)],
            [None] * n,
            [[] for _ in range(n)],
        )
        jobs: list[_Job] = []
        for i, sample in enumerate(samples):
            try:
                rubric = self.rubric_for(sample)
            except RubricError as exc:
                plan.notes[i] = str(exc)
                continue
            plan.rubrics[i] = rubric
            judged: list[tuple[Verdict, str]] = []
            for criterion in rubric.criteria:
                verdict = Verdict(criterion)
                plan.verdicts[i].append(verdict)
                try:
                    check = criterion.resolve(sample)
                    if check is None:
                        verdict.status = "not_applicable"
                        needed = sorted({*criterion.bind.values(), *filter(None, [criterion.when])})
                        verdict.reason = f"not applicable: the sample lacks {needed}"
                    elif criterion.judged:
                        if rubric.aggregate == "implicit":
                            verdict.status = "not_applicable"
                            verdict.reason = "graded as part of the implicit rubric grade"
                        else:
                            judged.append((verdict, str(getattr(check, "scale", "binary"))))
                    else:
                        _record(verdict, check.check(sample))
                        _explain(verdict, check, sample)
                except Exception as exc:  # one criterion must not sink the sample
                    verdict.status = "missing"
                    verdict.reason = f"{type(exc).__name__}: {exc}"
            needs_judge = rubric.aggregate == "implicit" or judged
            if needs_judge and self.config.judge is None:
                self._no_judge(plan, i, rubric, judged)
            elif rubric.aggregate == "implicit":
                prefill = self._prefill
                messages = prompts.implicit_messages(sample, rubric, prefill)
                prefix = prompts.IMPLICIT_PREFILL if prefill else ""
                jobs.append(_Job(i, messages, implicit=True, prefix=prefix))
            elif judged and self.config.batch_criteria:
                jobs.append(_criteria_job(i, sample, judged, self._prefill))
            else:
                jobs.extend(_criteria_job(i, sample, [item], self._prefill) for item in judged)
        return plan, jobs

    def _no_judge(
        self, plan: _Plan, i: int, rubric: Rubric, judged: list[tuple[Verdict, str]]
    ) -> None:
        if rubric.aggregate == "implicit":
            plan.notes[i] = "the rubric is `implicit` but the source has no `judge:` configured"
        for verdict, _ in judged:
            verdict.status = "missing"
            verdict.reason = "llm criterion, but the source has no `judge:` configured"

    def _apply(self, plan: _Plan, jobs: list[_Job], replies: list[list[Any]]) -> list[_Job]:
        """Parse judge replies into verdicts; return retry jobs (unanswered criteria, one each)."""
        from rewardplug_judge import fence

        retry: list[_Job] = []
        for job, completions in zip(jobs, replies, strict=True):
            usage = plan.usage[job.sample]
            usage["calls"] += 1
            for c in completions:
                usage["prompt_tokens"] += c.prompt_tokens
                usage["completion_tokens"] += c.completion_tokens
                usage["cost_usd"] += c.cost_usd
                usage["cached"] += int(c.cached)
            texts = [job.prefix + c.text if c.ok else None for c in completions]
            nonce = fence.nonce_of(job.messages)  # echoes of the response's fence never count
            errors = [c.error for c in completions if not c.ok]
            if job.implicit:
                for text in texts:
                    grade = prompts.parse_grade(text, nonce)
                    if grade is not None:
                        plan.grades[job.sample].append(grade)
                        plan.rationales[job.sample].append(_short(text))
                continue
            scales = [scale for _, scale in job.items]
            parsed = [prompts.parse_criteria_reply(t, scales, nonce) for t in texts]
            for index, (verdict, scale) in enumerate(job.items):
                answers = [p[index] for p in parsed if p[index] is not None]
                verdict.outcomes.extend(a[0] for a in answers)  # type: ignore[index]
                verdict.rationales.extend(a[1] for a in answers if a[1])  # type: ignore[index]
                if answers:
                    continue
                if len(job.items) > 1 and any(t is not None for t in texts):
                    single = [(verdict, scale)]
                    sample = plan.samples[job.sample]
                    retry.append(_criteria_job(job.sample, sample, single, self._prefill))
                else:
                    verdict.status = "missing"
                    verdict.reason = "the judge gave no readable answer" + _hint(texts, errors)
        return retry

    def _finish(self, plan: _Plan) -> list[Score]:
        out: list[Score] = []
        for i, rubric in enumerate(plan.rubrics):
            if rubric is None:
                out.append(Score.abstain(plan.notes[i] or "no rubric"))
                continue
            if rubric.aggregate == "implicit":
                out.append(self._implicit_score(rubric, plan, i))
                continue
            extra: dict[str, Any] = {}
            if plan.usage[i]["calls"]:
                extra["judge"] = _usage(plan.usage[i], self.config.samples)
            out.append(to_score(rubric, plan.verdicts[i], self.config.on_error, **extra))
        return out

    def _implicit_score(self, rubric: Rubric, plan: _Plan, i: int) -> Score:
        detail: dict[str, Any] = {
            "rubric": rubric.name,
            "aggregate": "implicit",
            "criteria": [v.as_detail(rubric.threshold) for v in plan.verdicts[i]],
        }
        if plan.usage[i]["calls"]:
            detail["judge"] = _usage(plan.usage[i], self.config.samples)
        if plan.notes[i]:
            return Score.abstain(plan.notes[i] or "", **detail)
        if not plan.grades[i]:
            return Score.abstain("the judge gave no readable grade (expected 'GRADE: n')", **detail)
        detail["rationale"] = plan.rationales[i][0] if plan.rationales[i] else ""
        return Score(draws=list(plan.grades[i]), detail=detail)

    def close(self) -> None:
        if self._judge is not None:
            self._judge.close()
            self._judge = None


def _usage(usage: dict[str, float], k: int) -> dict[str, Any]:
    return {"samples": k, **{key: round(v, 8) for key, v in usage.items()}}


def _criteria_job(i: int, sample: Sample, items: list[tuple[Verdict, str]], prefill: bool) -> _Job:
    asked = [(v.criterion, scale) for v, scale in items]
    messages = prompts.criteria_messages(sample, asked, prefill)
    return _Job(i, messages, items, prefix=prompts.CRITERIA_PREFILL if prefill else "")


def _record(verdict: Verdict, outcome: Any) -> None:
    if outcome is None:
        verdict.status = "missing"
        verdict.reason = "the check could not tell (returned None)"
        return
    value = float(outcome)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"check returned {outcome!r}; outcomes must be a bool or in [0, 1]")
    verdict.outcomes = [value]


def _explain(verdict: Verdict, check: Any, sample: Sample) -> None:
    """A check kind with ``explain(sample)`` (``code_hack``'s findings) names what it saw."""
    explain = getattr(check, "explain", None)
    if callable(explain):
        lines = [str(line) for line in explain(sample)]
        if verdict.status == "missing" and lines:
            verdict.reason = "; ".join(lines)
        else:
            verdict.rationales.extend(lines)


def _short(text: str | None, limit: int = 600) -> str:
    text = (text or "").strip()
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _hint(texts: list[str | None], errors: list[str | None]) -> str:
    if all(t is None for t in texts):
        return f" (every judge call failed: {errors[0] if errors else 'no reply'})"
    said = next((t for t in texts if t), "")
    return f" (it said: {_short(said, 120)!r})" if said else ""
