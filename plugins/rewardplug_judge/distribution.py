"""Grade distributions from token logprobs, and draws from a distribution (``mode: logprobs``).

The judge writes its grade as one or two tokens. At the token where the grade starts, the
``top_logprobs`` alternatives that are whole numbers on the scale give a probability for each
grade. Two-digit grades (``10`` on a 1-10 scale) split into ``1`` + ``0`` on tokenizers that
split digits: when the judge actually wrote ``1`` there, the mass of ``1`` is shared between 1
and 10 by the probability of ``0`` at the next position; otherwise it stays with 1.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from rewardplug_judge.backends.types import TokenLogprob
from rewardplug_judge.parsing import Grade

__all__ = ["expected", "grade_distribution", "quantile_draws", "token_at"]


def token_at(tokens: Sequence[TokenLogprob], char: int) -> int | None:
    """Index of the token covering character ``char`` of the concatenated token texts."""
    pos = 0
    for i, token in enumerate(tokens):
        nxt = pos + len(token.token)
        if pos <= char < nxt:
            return i
        pos = nxt
    return None


def _int_token(token: str) -> int | None:
    s = token.strip()
    return int(s) if s.isdigit() and s.isascii() else None


def grade_distribution(
    tokens: Sequence[TokenLogprob], grade: Grade, scale: tuple[int, int]
) -> dict[int, float] | None:
    """``{grade: probability}`` (normalized over the scale) at ``grade``'s token, or None.

    ``grade`` spans must refer to ``"".join(t.token for t in tokens)``. None when the grade's
    token is not found or no alternative there is a grade on the scale.
    """
    lo, hi = scale
    index = token_at(tokens, grade.start) if grade.start >= 0 else None
    if index is None:
        return None
    here = tokens[index]
    # A token like " 7" may start with a space: the grade's first digit is still this token.
    probs: dict[int, float] = {}
    for text, logprob in here.top.items():
        value = _int_token(text)
        if value is None:
            continue
        p = math.exp(logprob)
        if value == 1 and hi >= 10 and _int_token(here.token) == 1 and index + 1 < len(tokens):
            nxt = tokens[index + 1]
            q = sum(math.exp(lp) for t, lp in nxt.top.items() if t.strip() == "0" and t[:1] != " ")
            probs[10] = probs.get(10, 0.0) + p * q
            p *= 1 - q
        if lo <= value <= hi:
            probs[value] = probs.get(value, 0.0) + p
    total = sum(probs.values())
    if total <= 0:
        return None
    return {g: p / total for g, p in sorted(probs.items())}


def expected(dist: dict[int, float]) -> float:
    """The mean grade of a distribution."""
    return sum(g * p for g, p in dist.items())


def quantile_draws(dist: dict[int, float], k: int) -> list[float]:
    """``k`` draws at the quantiles ``(i + 0.5) / k`` of the discrete distribution (deterministic)."""
    grades = sorted(dist)
    draws, cum, j = [], 0.0, 0
    cdf = []
    for g in grades:
        cum += dist[g]
        cdf.append(cum)
    for i in range(k):
        q = (i + 0.5) / k
        while j < len(grades) - 1 and cdf[j] < q:
            j += 1
        draws.append(float(grades[j]))
    return draws
