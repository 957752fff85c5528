"""The ``steps`` source: process rewards -- split a response into steps, score every step.

``with: {split: paragraph | line | <regex>, source: <a source spec>, aggregate: min | mean |
last | product, prefix: true | false}``. The response is cut into steps at each match of the
separator (``paragraph``: a blank line; ``line``: a newline; anything else is a regular
expression, e.g. ``'(?=Step \\d+:)'`` to cut before each "Step n:"); each step is stripped of
surrounding whitespace and empty ones are dropped. The inner source scores every step -- the
prefix of the response up to the step's end (``prefix: true``, what a process reward model or
"is the solution still on track?" judge reads) or the step alone -- in one batch, as a sample
with the same prompt, reference and columns. The steps' draws are aligned to a common K and
aggregated draw by draw (``product`` is meant for scores in [0, 1], such as step correctness
probabilities), so each step's uncertainty reaches the discretizer.

``detail.steps`` lists every step: its character span (``start``, ``end``), text, value, spread
and status. A response with no steps abstains; a step the inner source cannot score makes the
sample abstain (``on_step_abstain: abstain``, default) or is left out (``skip``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any, Literal

import numpy as np
from pydantic import Field, field_validator

from rewardplug import RewardSource, Sample, Score, SourceConfig
from rewardplug.plugin_api import SourceSpec
from rewardplug_compose.members import Member, aligned, named_specs

__all__ = ["StepsSource", "split_steps"]

SEPARATORS = {"paragraph": r"\n[ \t\r\f\v]*\n", "line": r"\n"}
AGGREGATES: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "min": lambda x: x.min(axis=0),
    "mean": lambda x: x.mean(axis=0),
    "last": lambda x: x[-1],
    "product": lambda x: x.prod(axis=0),
}


def split_steps(text: str, split: str) -> list[tuple[int, int]]:
    """The ``(start, end)`` character spans of ``text``'s steps, whitespace stripped, empty
    steps dropped. ``split`` is ``paragraph``, ``line`` or a regular expression."""
    pattern = re.compile(SEPARATORS.get(split, split))
    cuts = [0]
    for match in pattern.finditer(text):
        cuts += [match.start(), match.end()]
    cuts.append(len(text))
    spans = []
    for start, end in zip(cuts[::2], cuts[1::2], strict=True):
        piece = text[start:end]
        lead = len(piece) - len(piece.lstrip())
        trail = len(piece) - len(piece.rstrip())
        if start + lead < end - trail:
            spans.append((start + lead, end - trail))
    return spans


class StepsSource(RewardSource):
    """Scores each step of a response with an inner source and aggregates draw by draw."""

    class Config(SourceConfig):
        source: SourceSpec
        """The inner source that scores each step, written as an entry of ``sources:``."""
        split: str = Field("paragraph", min_length=1)
        """``paragraph`` (blank lines), ``line`` (newlines) or a regex matching the separator."""
        aggregate: Literal["min", "mean", "last", "product"] = "min"
        """How the steps' scores make the response's score, draw by draw."""
        prefix: bool = True
        """True: score the response up to each step's end; False: each step alone."""
        max_steps: int = Field(64, ge=1)
        """A response with more steps abstains (bounds the cost of one response)."""
        on_step_abstain: Literal["abstain", "skip"] = "abstain"
        """A step the inner source cannot score: the sample abstains, or the step is left out."""

        @field_validator("source", mode="before")
        @classmethod
        def _name(cls, value: Any) -> Any:
            return named_specs(value, "step")

        @field_validator("split")
        @classmethod
        def _compiles(cls, value: str) -> str:
            if value not in SEPARATORS:
                try:
                    re.compile(value)
                except re.error as exc:
                    raise ValueError(
                        f"split {value!r} is not 'paragraph', 'line' or a valid regular "
                        f"expression ({exc})"
                    ) from None
            return value

    config: Config

    def __init__(self, config: Any = None, **options: Any):
        super().__init__(config, **options)
        self.inner = Member(self.config.source, "source")

    def close(self) -> None:
        self.inner.close()

    def score(self, samples: Sequence[Sample]) -> list[Score]:
        if not samples:
            return []
        plan = self.plan(samples)
        inner = [s for steps in plan if isinstance(steps, list) for _, s in steps]
        return self.finish(samples, plan, self.inner.score(inner))

    async def ascore(self, samples: Sequence[Sample]) -> list[Score]:
        if not samples:
            return []
        plan = self.plan(samples)
        inner = [s for steps in plan if isinstance(steps, list) for _, s in steps]
        return self.finish(samples, plan, await self.inner.ascore(inner))

    # -- splitting ---------------------------------------------------------------------------

    def plan(self, samples: Sequence[Sample]) -> list[list[tuple[tuple[int, int], Sample]] | Score]:
        """Per sample: its steps' spans and inner samples, or the abstention when it has none.

        ``finish(samples, plan, inner_scores)`` then aggregates the inner source's scores of
        the plan's step samples (in order); ``score`` is the two with the inner source between.
        """
        cfg = self.config
        out: list[list[tuple[tuple[int, int], Sample]] | Score] = []
        for sample in samples:
            spans = split_steps(sample.response, cfg.split)
            if not spans:
                out.append(Score.abstain(f"no steps after splitting on {cfg.split!r}"))
            elif len(spans) > cfg.max_steps:
                out.append(
                    Score.abstain(
                        f"{len(spans)} steps after splitting on {cfg.split!r}, more than "
                        f"max_steps ({cfg.max_steps})",
                        n_steps=len(spans),
                    )
                )
            else:
                out.append(
                    [(span, self._step_sample(sample, j, span)) for j, span in enumerate(spans)]
                )
        return out

    def _step_sample(self, sample: Sample, j: int, span: tuple[int, int]) -> Sample:
        text = sample.response[: span[1]] if self.config.prefix else sample.response[slice(*span)]
        return sample.model_copy(update={"id": f"{sample.id}/step{j}", "response": text})

    # -- aggregating -------------------------------------------------------------------------

    def finish(
        self,
        samples: Sequence[Sample],
        plan: list[list[tuple[tuple[int, int], Sample]] | Score],
        inner: list[Score],
    ) -> list[Score]:
        """Every sample's score from the inner scores of its plan's steps."""
        out: list[Score] = []
        at = 0
        for sample, steps in zip(samples, plan, strict=True):
            if isinstance(steps, Score):
                out.append(steps)
                continue
            scores = inner[at : at + len(steps)]
            at += len(steps)
            out.append(self._aggregate(sample, steps, scores))
        return out

    def _aggregate(
        self,
        sample: Sample,
        steps: list[tuple[tuple[int, int], Sample]],
        scores: list[Score],
    ) -> Score:
        cfg = self.config
        listed = [
            _step_detail(j, sample.response, span, s)
            for j, ((span, _), s) in enumerate(zip(steps, scores, strict=True))
        ]
        detail: dict[str, Any] = {
            "steps": listed,
            "n_steps": len(steps),
            "aggregate": cfg.aggregate,
            "prefix": cfg.prefix,
        }
        bad = [(j, s) for j, s in enumerate(scores) if not s.ok]
        if bad and (cfg.on_step_abstain == "abstain" or len(bad) == len(scores)):
            j, first = bad[0]
            start, end = steps[j][0]
            reason = (
                f"{len(bad)} of {len(scores)} steps could not be scored; step {j} "
                f"(characters {start}-{end}): {first.reason}"
            )
            if all(s.status == "error" for _, s in bad) and len(bad) == len(scores):
                return Score.error(reason, **detail)
            return Score.abstain(reason, **detail)
        keep = [j for j, s in enumerate(scores) if s.ok]
        if bad:
            detail["skipped"] = [j for j, _ in bad]
        used = [scores[j] for j in keep]
        k = max(len(s.draws) for s in used)
        x = aligned(used, [steps[j][1] for j in keep], k, 8009)
        fn = AGGREGATES[cfg.aggregate]
        with np.errstate(over="ignore", invalid="ignore"):
            value = float(fn(np.array([[s.value] for s in used]))[0])
            draws = fn(x)
        if not (np.isfinite(value) and np.isfinite(draws).all()):
            return Score.abstain(
                f"the {cfg.aggregate} of the steps' scores is not finite", **detail
            )
        return Score(value=value, draws=draws.tolist(), detail=detail)


def _step_detail(j: int, text: str, span: tuple[int, int], score: Score) -> dict[str, Any]:
    out: dict[str, Any] = {
        "index": j,
        "start": span[0],
        "end": span[1],
        "text": text[span[0] : span[1]],
        "status": score.status,
    }
    if score.ok:
        out.update(value=score.value, std=score.std)
    else:
        out["reason"] = score.reason
    return out
