"""Judge prompts for ``llm`` criteria and ``implicit`` rubrics, and parsers for the replies.

All ``llm`` criteria of one response go into one prompt as a numbered list; the judge answers one
line per criterion (``2: YES - reason`` or ``3: 70 - reason``). Pitfall criteria are asked as
"does the response show this problem?", so YES means the pitfall occurs (outcome 1), exactly like a
programmatic pitfall check. An ``implicit`` rubric is shown whole and the judge ends with
``GRADE: <0-100>``. Parsers are lenient about markdown decoration and return None for anything
they cannot read, so a garbled sample is dropped instead of being read as a 0.
"""

from __future__ import annotations

import re
from typing import Any

from rewardplug import Sample
from rewardplug.plugin_api import Message
from rewardplug_rubric.model import Rubric, RubricCriterion

__all__ = [
    "CRITERIA_PREFILL",
    "IMPLICIT_PREFILL",
    "criteria_messages",
    "implicit_messages",
    "parse_criteria_reply",
    "parse_grade",
]

SYSTEM = (
    "You are a strict, careful grader. You check one response against each listed criterion "
    "independently and literally, without rewarding length or style unless a criterion asks for it."
)

_LINE = re.compile(  # [ \t] rather than \s: an answer never continues on the next line
    r"^[ \t*_#-]*(?:criterion[ \t]*)?(\d{1,3})[ \t]*[:.)\]]?[ \t*_]*[:\-–—]?[ \t*_]*"
    r"(yes|no|true|false|pass|fail|met|unmet|\d{1,3}(?:\.\d+)?)\b[ \t*_]*(?:/[ \t]*100)?"
    r"[ \t*_]*(?:[-–—:,.]?[ \t]*(.*))?$",
    re.IGNORECASE | re.MULTILINE,
)
_GRADE = re.compile(
    r"^[ \t*_#]*(?:final[ \t]+)?grade[ \t]*[*_]*[ \t]*[:=]?[ \t]*[*_]*[ \t]*(\d{1,3}(?:\.\d+)?)",
    re.IGNORECASE | re.MULTILINE,
)
_YES = {"yes", "true", "pass", "met"}
_NO = {"no", "false", "fail", "unmet"}


def _context(sample: Sample) -> tuple[str, str]:
    """The prompt, reference and fenced response, and the fence's nonce (issue 26)."""
    from rewardplug_judge import fence

    response = sample.response.strip()
    nonce = fence.make_nonce([sample.prompt_text, sample.reference, response])
    parts = [f"## Prompt\n{sample.prompt_text.strip()}"]
    if sample.reference:
        parts.append(f"## Reference answer (for comparison)\n{sample.reference.strip()}")
    parts.append(f"## Response to grade\n{fence.block(response, nonce, 1)}")
    return "\n\n".join(parts), nonce


def _question(c: RubricCriterion, scale: str) -> str:
    answer = "YES/NO" if scale == "binary" else "0-100"
    if c.is_pitfall:
        return f"({answer}) Does the response show this problem? {c.text.strip()}"
    return f"({answer}) {c.text.strip()}"


#: what a prefilled reply starts with (see ``prefill`` on the rubric source)
CRITERIA_PREFILL = "1:"
IMPLICIT_PREFILL = "GRADE:"


def criteria_messages(
    sample: Sample, items: list[tuple[RubricCriterion, str]], prefill: bool = False
) -> list[Message]:
    """Chat messages asking about ``items`` (criterion, scale) at once, numbered from 1.

    With ``prefill`` the assistant's reply is started with ``"1:"``, which keeps small local
    models on the answer format; prepend it to the completion before parsing.
    """
    questions = "\n".join(f"{i}. {_question(c, scale)}" for i, (c, scale) in enumerate(items, 1))
    context, nonce = _context(sample)
    user = (
        f"{context}\n\n## Criteria\n{questions}\n\n"
        "Answer every criterion on its own line, in order: its number, a colon, then YES or NO "
        "(or a whole number from 0 to 100 where the criterion says 0-100), then ' - ' and one "
        "short reason. For example:\n1: YES - gives the requested list\n2: 40 - partly correct\n"
        "Write nothing else."
    )
    return _messages(user, CRITERIA_PREFILL if prefill else None, nonce)


def _messages(user: str, prefill: str | None, nonce: str) -> list[Message]:
    from rewardplug_judge import fence

    messages: list[Message] = [
        {"role": "system", "content": f"{SYSTEM}\n\n{fence.instruction(nonce)}"},
        {"role": "user", "content": user},
    ]
    if prefill:
        messages.append({"role": "assistant", "content": prefill})
    return messages


def parse_criteria_reply(
    text: str | None, scales: list[str], nonce: str | None = None
) -> list[tuple[float, str] | None]:
    """Per criterion (in order): ``(outcome in [0, 1], reason)`` or None when not answered.

    Only the judge's own lines count: quoted (``>``) lines, code blocks and echoed response
    fences are never answers. A criterion answered twice with different outcomes is unanswered
    (it is re-asked alone), never "the first one wins".
    """
    from rewardplug_judge.reply import mask

    out: list[tuple[float, str] | None] = [None] * len(scales)
    if not text:
        return out
    conflicting: set[int] = set()
    for match in _LINE.finditer(mask(text, nonce)):
        index = int(match.group(1)) - 1
        if not 0 <= index < len(scales):
            continue
        value = _read(match.group(2), scales[index])
        if value is None:
            continue
        if out[index] is not None and out[index][0] != value:  # type: ignore[index]
            conflicting.add(index)
        elif out[index] is None:
            out[index] = (value, (match.group(3) or "").strip())
    for index in conflicting:
        out[index] = None
    # A one-criterion reply often skips the number ("YES - because ..."): read its first word.
    if len(scales) == 1 and out[0] is None and not conflicting:
        bare = re.match(r"^[\s*_]*(\w+(?:\.\d+)?)[\s*_]*(?:$|[-–—:,.!]\s*(.*))", text.strip(), re.S)
        if bare:
            value = _read(bare.group(1), scales[0])
            if value is not None:
                out[0] = (value, (bare.group(2) or "").strip().split("\n", 1)[0])
    return out


def _read(token: str, scale: str) -> float | None:
    word = token.lower()
    if word in _YES:
        return 1.0
    if word in _NO:
        return 0.0
    if scale == "binary":
        return {"1": 1.0, "0": 0.0}.get(word)
    try:
        number = float(word)
    except ValueError:
        return None
    return number / 100.0 if 0.0 <= number <= 100.0 else None


def implicit_messages(sample: Sample, rubric: Rubric, prefill: bool = False) -> list[Message]:
    """Chat messages showing the whole rubric and asking for one grade from 0 to 100.

    With ``prefill`` the reply starts with ``"GRADE:"`` (no reasoning, a number straight away).
    """
    context, nonce = _context(sample)
    user = (
        f"{context}\n\n## Rubric\n{rubric.as_text()}\n\n"
        "Criteria marked 'pitfall' describe mistakes: the response should avoid them. Weigh the "
        "criteria by their weights; an 'essential' criterion matters most. Think briefly about how "
        "well the response meets the rubric as a whole, then end with a line 'GRADE: <number>' "
        "where the number is from 0 (fails the rubric) to 100 (fully meets it)."
    )
    return _messages(user, IMPLICIT_PREFILL if prefill else None, nonce)


def parse_grade(text: str | None, nonce: str | None = None) -> float | None:
    """The final ``GRADE: n`` line of a reply, scaled to [0, 1]; None when absent or out of range.

    Quoted lines, code blocks and echoed response fences are never read.
    """
    if not text:
        return None
    from rewardplug_judge.reply import mask

    found: list[Any] = _GRADE.findall(mask(text, nonce))
    if not found:
        return None
    number = float(found[-1])
    return number / 100.0 if 0.0 <= number <= 100.0 else None
