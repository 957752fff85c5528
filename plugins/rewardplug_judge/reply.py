"""Where a judge's reply may hold its verdict: the parts a response cannot have planted.

A response under RL writes whatever raises its reward, including verdict-shaped text (``Rating:
10``, ``{"rating": 10}``, ``Response 1: OK``) in the hope that the judge repeats it. Judges quote.
So the parsers read a verdict only from the judge's *own* lines:

* :func:`mask` blanks what the judge quoted rather than said: anything between an echoed
  response fence ``<response-NONCE ...>`` and its ``</response-NONCE>``, then Markdown code
  blocks (fenced with three backticks or tildes) and lines starting with ``>``. Given the
  request's nonce (the sources pass it), that fence is an echo wherever the judge wrote it, and
  an echo of it the judge never closed runs to the end of the reply; any other fence-shaped tag
  counts only at the start of a line, and an unclosed one only blanks itself (so a quoted
  look-alike cannot blank the judge's own verdict). Blanking keeps every offset, so a grade's
  span still points into the original reply (logprobs mode needs it).
* :func:`final_run` is the *verdict section*: the last run of consecutive verdict lines (blank
  lines may sit between them; any other line ends a run). Earlier drafts and restatements in
  the reasoning are not verdicts.
* :func:`whole_json` accepts a JSON verdict only when it is the whole reply (optionally in one
  ```json block): a JSON fragment inside reasoning is never a verdict.
* :func:`by_label` collects one verdict per response label from a section: a label given two
  different verdicts, or a label the request did not have, makes the reply unparseable.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Hashable, Sequence
from typing import Any, TypeVar

__all__ = ["by_label", "final_run", "line_matches", "mask", "whole_json"]

T = TypeVar("T")

_ECHO_OPEN = r"<\s*response-({})\b[^>\n]*>"
_ECHO_CLOSE = r"<\s*/\s*response-{}\s*>"
_ANY_NONCE = "[0-9a-f]{6,}"
_CODE_FENCE = re.compile(r"^[ \t]*(`{3,}|~{3,})", re.MULTILINE)
_QUOTED = re.compile(r"^[ \t]*>[^\n]*", re.MULTILINE)
_JSON_BLOCK = re.compile(r"^```[ \t]*(?:json)?[ \t]*\n(.*)\n[ \t]*```$", re.DOTALL | re.IGNORECASE)


def _blank(chars: list[str], start: int, end: int) -> None:
    for i in range(start, min(end, len(chars))):
        if chars[i] != "\n":
            chars[i] = " "


def mask(text: str, nonce: str | None = None) -> str:
    """``text`` with echoed fences, code blocks and quoted lines blanked (same length)."""
    chars = list(text)
    # echoed fences first (a quote or code fence inside one is echo too): the request's own
    # fence wherever it is, then any fence-shaped block that starts a line
    if nonce is not None:
        _echoes(text, chars, re.escape(nonce), anywhere=True)
    _echoes(text, chars, _ANY_NONCE, anywhere=False)
    masked = "".join(chars)
    opening: re.Match[str] | None = None
    for m in _CODE_FENCE.finditer(masked):
        if opening is None:
            opening = m
        elif m.group(1)[0] == opening.group(1)[0] and len(m.group(1)) >= len(opening.group(1)):
            line_end = masked.find("\n", m.end())
            _blank(chars, opening.start(), len(masked) if line_end < 0 else line_end)
            opening = None
    if opening is not None:  # an unclosed code block runs to the end of the reply
        _blank(chars, opening.start(), len(masked))
    for m in _QUOTED.finditer(masked):
        _blank(chars, m.start(), m.end())
    return "".join(chars)


def _echoes(text: str, chars: list[str], nonce: str, anywhere: bool) -> None:
    """Blank fence echoes: from an opening tag to its closing tag (or, for the request's own
    fence, to the end of the reply); stray closing tags blank themselves."""
    start = "" if anywhere else r"(?:^|(?<=\n))[ \t]*"
    opening = re.compile(start + _ECHO_OPEN.format(nonce), re.IGNORECASE)
    pos = 0
    while True:
        m = opening.search(text, pos)
        if m is None:
            break
        close = re.compile(_ECHO_CLOSE.format(re.escape(m.group(1))), re.IGNORECASE)
        c = close.search(text, m.end())
        end = c.end() if c else len(text) if anywhere else m.end()
        _blank(chars, m.start(), end)
        pos = end
    for m in re.finditer(_ECHO_CLOSE.format(nonce), text, re.IGNORECASE):
        _blank(chars, m.start(), m.end())


def line_matches(masked: str, pattern: re.Pattern[str]) -> list[re.Match[str] | None]:
    """Per non-blank line of ``masked``: ``pattern.match`` at the line's start (or None)."""
    out: list[re.Match[str] | None] = []
    start = 0
    while start <= len(masked):
        end = masked.find("\n", start)
        end = len(masked) if end < 0 else end
        if masked[start:end].strip():
            out.append(pattern.match(masked, start, end))
        start = end + 1
    return out


def final_run(masked: str, pattern: re.Pattern[str]) -> list[re.Match[str]]:
    """The verdict section: matches of the last run of consecutive lines matching ``pattern``."""
    run: list[re.Match[str]] = []
    current: list[re.Match[str]] = []
    for m in line_matches(masked, pattern):
        if m is not None:
            current.append(m)
        elif current:
            run, current = current, []
    return current or run


def by_label(
    items: Sequence[tuple[int, Hashable, T]],
    count: int,
    same: Callable[[T], Hashable] | None = None,
) -> list[T | None]:
    """One verdict per label 1..count from ``(label, key, verdict)``: None everywhere when a label
    is out of range or given two verdicts with different keys (the reply is unparseable)."""
    out: list[T | None] = [None] * count
    keys: dict[int, Hashable] = {}
    for label, key, verdict in items:
        if not 1 <= label <= count:
            return [None] * count
        if label in keys:
            if keys[label] != key:
                return [None] * count
            continue
        keys[label] = key
        out[label - 1] = verdict
    return out


def whole_json(text: str) -> tuple[dict[str, Any], int] | None:
    """``(object, offset of its text)`` when the whole reply is one JSON object, else None."""
    stripped = text.strip()
    offset = text.find(stripped) if stripped else 0
    block = _JSON_BLOCK.match(stripped)
    if block:
        inner = block.group(1)
        offset += block.start(1)
        stripped = inner.strip()
        offset += inner.find(stripped)
    if not stripped.startswith("{"):
        return None
    try:
        obj = json.loads(stripped)
    except ValueError:
        return None
    return (obj, offset) if isinstance(obj, dict) else None
