"""The ``hello`` source: rewards responses which greet someone.

Its score has
draws: each draw checks the response against a different greeting word list subset, so a response
that only matches one rare greeting is less certain than one matching the common ones.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import Field

from rewardplug import RewardSource, Sample, Score, SourceConfig


class HelloSource(RewardSource):
    """1.0 when the response greets (``hello``, ``hi``, ...), else 0.0; abstains on empty text."""

    class Config(SourceConfig):
        greetings: list[str] = Field(
            default_factory=lambda: ["hello", "hi", "hey", "greetings", "good morning"]
        )
        """Words that count as a greeting (case-insensitive)."""

    def score(self, samples: Sequence[Sample]) -> list[Score]:
        words = [g.lower() for g in self.config.greetings]
        scores = []
        for sample in samples:
            text = sample.response.lower()
            if not text.strip():
                scores.append(Score.abstain("empty response"))
                continue
            # draw k: does the response use a greeting from the list without its k-th entry?
            draws = [
                float(any(w in text for j, w in enumerate(words) if j != k))
                for k in range(len(words))
            ]
            scores.append(Score.of(value=float(any(w in text for w in words)), draws=draws))
        return scores
