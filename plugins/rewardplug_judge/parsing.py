"""Read grades out of a judge's reply: a JSON object or ``Rating: N`` lines.

Pointwise replies give one grade; groupwise replies give one grade per numbered response. Every
grade keeps the character span of its number, so logprobs mode can find the token that carries
it. A grade outside the scale, or a reply with none, is unparseable (``None``) — never a 0.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

__all__ = ["Grade", "parse_grades"]

_NUMBER = r"(-?\d+(?:\.\d+)?)"
_RATING = re.compile(r"rating\s*\**\s*[:=]\s*\**\s*\[*\s*" + _NUMBER, re.IGNORECASE)
_LABELLED = re.compile(
    r"response\s*#?\s*(\d+)\s*\**\s*[:.)\-–]?\s*\**\s*(?:rating\s*\**\s*[:=]\s*\**\s*)?\[*"
    + _NUMBER,
    re.IGNORECASE,
)
_JSON_KEYS = ("rating", "score", "grade")
_JSON_LIST_KEYS = ("ratings", "scores", "grades")


@dataclass(frozen=True)
class Grade:
    """A grade on the judge's scale and where its number is in the reply (``start``..``end``)."""

    value: float
    start: int = -1
    end: int = -1


def _in_scale(value: float, lo: float, hi: float) -> bool:
    return lo <= value <= hi


def _json_objects(text: str) -> list[tuple[Any, int]]:
    """JSON objects embedded in ``text`` (with their start offsets), outermost first."""
    found = []
    decoder = json.JSONDecoder()
    i = text.find("{")
    while i != -1:
        try:
            obj, end = decoder.raw_decode(text, i)
        except ValueError:
            i = text.find("{", i + 1)
            continue
        if isinstance(obj, dict):
            found.append((obj, i))
        i = text.find("{", end)
    return found


def _number_span(text: str, start: int, value: Any) -> tuple[int, int]:
    """Span of the first occurrence of ``value``'s digits at or after ``start`` (or -1, -1)."""
    m = re.compile(r"(?<![\d.])" + re.escape(_fmt(value)) + r"(?![\d])").search(text, start)
    return (m.start(), m.end()) if m else (-1, -1)


def _fmt(value: Any) -> str:
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


def _from_json(text: str, count: int, lo: float, hi: float) -> list[Grade | None] | None:
    for obj, offset in reversed(_json_objects(text)):  # the last object is the verdict
        lowered = {str(k).lower().strip(): v for k, v in obj.items()}
        if count == 1:
            for key in _JSON_KEYS:
                value = _number(lowered.get(key))
                if value is not None:
                    return [_grade(text, offset, lowered[key], value, lo, hi)]
            continue
        for key in _JSON_LIST_KEYS:
            values = lowered.get(key)
            if isinstance(values, list) and len(values) == count:
                return _grades_in_order(text, offset, values, lo, hi)
        keyed = [lowered.get(str(i + 1), lowered.get(f"response {i + 1}")) for i in range(count)]
        if any(v is not None for v in keyed):
            return _grades_in_order(text, offset, keyed, lo, hi)
    return None


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
    if not _in_scale(value, lo, hi):
        return None
    s, e = _number_span(text, start, raw)
    return Grade(value, s, e)


def parse_grades(
    text: str, count: int = 1, scale: tuple[float, float] = (1, 10)
) -> list[Grade | None]:
    """Grades for ``count`` responses from one reply; ``None`` where no valid grade was found.

    Pointwise (``count == 1``): a JSON object with ``rating``/``score``/``grade``, else the last
    ``Rating: N`` line. Groupwise: a JSON list under ``ratings``/``scores``/``grades`` or keys
    ``"1"``..``"count"``, else ``Response i: ... Rating: N`` labels, else exactly ``count``
    ``Rating: N`` lines in order.
    """
    lo, hi = scale
    parsed = _from_json(text, count, lo, hi)
    if parsed is not None and any(g is not None for g in parsed):
        return parsed
    if count == 1:
        matches = list(_RATING.finditer(text))
        if not matches:
            return [None]
        m = matches[-1]
        value = float(m.group(1))
        return [Grade(value, m.start(1), m.end(1)) if _in_scale(value, lo, hi) else None]
    grades: list[Grade | None] = [None] * count
    for m in _LABELLED.finditer(text):
        index, value = int(m.group(1)) - 1, float(m.group(2))
        if 0 <= index < count and _in_scale(value, lo, hi):
            grades[index] = Grade(value, m.start(2), m.end(2))
    if any(g is not None for g in grades):
        return grades
    matches = list(_RATING.finditer(text))
    if len(matches) == count:
        return [
            Grade(float(m.group(1)), m.start(1), m.end(1))
            if _in_scale(float(m.group(1)), lo, hi)
            else None
            for m in matches
        ]
    return grades
