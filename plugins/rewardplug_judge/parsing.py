"""Read grades out of a judge's reply: where the template puts them, and nowhere else.

Pointwise replies give one grade: the whole reply as one JSON object (``{"rating": N}``, also
``score``/``grade``; what a structured-output backend returns), else the final ``Rating: N`` line.
Groupwise replies give one grade per numbered response: the whole reply as one JSON object
(``{"ratings": [...]}`` or keys ``"1"``..``"count"``), else the verdict section's
``Response i: Rating: N`` lines (a label given two different grades, or a label the request did
not have, makes the reply unparseable), else a section of exactly ``count`` bare ``Rating: N``
lines in order. Quoted lines, code blocks, echoed response fences and JSON fragments inside
reasoning are never read (:mod:`rewardplug_judge.reply`). Every grade keeps the character span
of its number, so logprobs mode can find the token that carries it. A grade outside the scale,
or a reply with none, is unparseable (``None``) — never a 0.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from rewardplug_judge.reply import by_label, final_run, line_matches, mask, whole_json

__all__ = ["Grade", "parse_grades"]

_NUMBER = r"(-?\d+(?:\.\d+)?)"
_DECOR = r"[ \t*_#]*"
_RATING_WORD = (
    r"(?:(?:final|overall|my)[ \t]+)?rating[ \t]*[*_]*[ \t]*[:=][ \t]*[*_]*[ \t]*\[*[ \t]*"
)
_RATING = re.compile(_DECOR + _RATING_WORD + _NUMBER, re.IGNORECASE)
_LABELLED = re.compile(
    _DECOR + r"response[ \t]*#?[ \t]*(\d+)[ \t]*[*_]*[ \t]*[:.)\-–][ \t]*[*_]*[ \t]*"
    r"(?:" + _RATING_WORD + _NUMBER + r"|\[*" + _NUMBER + r"\]*[*_]*[ \t]*(?:/[ \t]*\d+)?[ \t.]*$)",
    re.IGNORECASE,
)
_ANY = re.compile(f"(?:{_RATING.pattern})|(?:{_LABELLED.pattern})", re.IGNORECASE)
_JSON_KEYS = ("rating", "score", "grade")
_JSON_LIST_KEYS = ("ratings", "scores", "grades")


@dataclass(frozen=True)
class Grade:
    """A grade on the judge's scale and where its number is in the reply (``start``..``end``)."""

    value: float
    start: int = -1
    end: int = -1


def _number_span(text: str, start: int, value: Any) -> tuple[int, int]:
    """Span of the first occurrence of ``value``'s digits at or after ``start`` (or -1, -1)."""
    m = re.compile(r"(?<![\d.])" + re.escape(_fmt(value)) + r"(?![\d])").search(text, start)
    return (m.start(), m.end()) if m else (-1, -1)


def _fmt(value: Any) -> str:
    if isinstance(value, str):
        return value.strip()
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return None
    return None


def _from_json(
    text: str, obj: dict[str, Any], offset: int, count: int, lo: float, hi: float
) -> list[Grade | None]:
    lowered = {str(k).lower().strip(): v for k, v in obj.items()}
    if count == 1:
        for key in _JSON_KEYS:
            value = _number(lowered.get(key))
            if value is not None:
                return [_grade(text, offset, lowered[key], value, lo, hi)]
        return [None]
    for key in _JSON_LIST_KEYS:
        values = lowered.get(key)
        if isinstance(values, list):
            return _grades_in_order(text, offset, values, lo, hi) if len(values) == count else []
    keyed = [lowered.get(str(i + 1), lowered.get(f"response {i + 1}")) for i in range(count)]
    return _grades_in_order(text, offset, keyed, lo, hi)


def _grades_in_order(
    text: str, offset: int, values: list[Any], lo: float, hi: float
) -> list[Grade | None]:
    out: list[Grade | None] = []
    pos = offset
    for raw in values:
        value = _number(raw)
        grade = None if value is None else _grade(text, pos, raw, value, lo, hi)
        if grade is not None and grade.end > 0:
            pos = grade.end
        out.append(grade)
    return out


def _grade(text: str, start: int, raw: Any, value: float, lo: float, hi: float) -> Grade | None:
    if not lo <= value <= hi:
        return None
    s, e = _number_span(text, start, raw)
    return Grade(value, s, e)


def _line_grade(m: re.Match[str], group: int, lo: float, hi: float) -> Grade | None:
    value = float(m.group(group))
    return Grade(value, m.start(group), m.end(group)) if lo <= value <= hi else None


def parse_grades(
    text: str, count: int = 1, scale: tuple[float, float] = (1, 10), nonce: str | None = None
) -> list[Grade | None]:
    """Grades for ``count`` responses from one reply; ``None`` where no valid grade was found.

    ``nonce`` is the request's fence nonce (:func:`rewardplug_judge.fence.nonce_of`): echoes of
    that fence are never read.
    """
    lo, hi = scale
    whole = whole_json(text)
    if whole is not None:
        got = _from_json(text, whole[0], whole[1], count, lo, hi)
        return got if len(got) == count else [None] * count
    masked = mask(text, nonce)
    if count == 1:  # the final line of the form `Rating: N` (or `Response 1: Rating: N`)
        for m in reversed([m for m in line_matches(masked, _ANY) if m is not None]):
            if m.group(1) is not None:
                return [_line_grade(m, 1, lo, hi)]
            if m.group(2) == "1":
                return [_line_grade(m, 3 if m.group(3) is not None else 4, lo, hi)]
        return [None]
    section = final_run(masked, _LABELLED)
    if section:
        items = []
        for m in section:
            group = 2 if m.group(2) is not None else 3
            grade = _line_grade(m, group, lo, hi)
            items.append((int(m.group(1)), float(m.group(group)), grade))
        return by_label(items, count)
    bare = final_run(masked, _RATING)
    if len(bare) == count:
        return [_line_grade(m, 1, lo, hi) for m in bare]
    return [None] * count
