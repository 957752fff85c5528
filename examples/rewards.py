"""Plain reward functions for the example stacks (used through the ``python`` source).

They are ordinary TRL-style batch reward functions -- ``fn(completions, **columns) -> list`` --
so they also work in TRL directly. A stack refers to them as ``rewards:<name>``; the module must be
importable, so put this folder on the import path first::

    PYTHONPATH=examples rewardplug score examples/stacks/math.yaml data.jsonl -o out.jsonl

(or copy this file next to your training script). Each function returns one value per
completion: a float, or None when it cannot judge (no reference): rewardplug turns None into an
abstention, never into a silent 0.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

__all__ = ["boxed_or_last_number", "exact_match", "fenced_code", "math_answer", "short_enough"]

_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")
_BOXED = re.compile(r"\\boxed\{([^{}]*)\}")
_HASH_ANSWER = re.compile(r"####\s*(.+)")


def _text(completion: Any) -> str:
    """A completion as text (TRL passes chat completions as message lists)."""
    if isinstance(completion, list):
        return "".join(m.get("content", "") if isinstance(m, dict) else str(m) for m in completion)
    return str(completion)


def _normalize(text: str) -> str:
    return " ".join(text.strip().lower().rstrip(".").split())


def boxed_or_last_number(text: str) -> str | None:
    """The final answer of a worked solution: ``\\boxed{..}``, ``#### ..``, else the last number."""
    for pattern in (_BOXED, _HASH_ANSWER):
        found = pattern.findall(text)
        if found:
            return found[-1].strip()
    numbers = _NUMBER.findall(text)
    return numbers[-1] if numbers else None


def _as_number(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        return float(text.replace(",", "").replace("$", "").strip())
    except ValueError:
        return None


def math_answer(
    completions: Sequence[Any], reference: Sequence[str | None] | None = None, **_: Any
) -> list[float | None]:
    """1.0 when the completion's final answer equals the reference answer (numerically when both
    are numbers), 0.0 when it differs, None without a reference."""
    refs = reference if reference is not None else [None] * len(completions)
    out: list[float | None] = []
    for completion, ref in zip(completions, refs, strict=True):
        if ref is None:
            out.append(None)
            continue
        gold = boxed_or_last_number(str(ref)) or str(ref)
        got = boxed_or_last_number(_text(completion))
        a, b = _as_number(got), _as_number(gold)
        if a is not None and b is not None:
            out.append(1.0 if abs(a - b) <= 1e-6 * max(1.0, abs(b)) else 0.0)
        else:
            out.append(1.0 if got is not None and _normalize(got) == _normalize(gold) else 0.0)
    return out


def exact_match(
    completions: Sequence[Any], reference: Sequence[str | None] | None = None, **_: Any
) -> list[float | None]:
    """1.0 when the whole completion equals the reference (case and spacing ignored), else 0.0;
    None without a reference."""
    refs = reference if reference is not None else [None] * len(completions)
    return [
        None if ref is None else float(_normalize(_text(c)) == _normalize(str(ref)))
        for c, ref in zip(completions, refs, strict=True)
    ]


def fenced_code(completions: Sequence[Any], **_: Any) -> list[float]:
    """1.0 when the completion contains a fenced code block (a formatting reward), else 0.0."""
    return [1.0 if re.search(r"```[\w+-]*\n.*?```", _text(c), re.S) else 0.0 for c in completions]


def short_enough(completions: Sequence[Any], max_chars: int = 2000, **_: Any) -> list[float]:
    """1.0 up to ``max_chars`` characters, falling linearly to 0.0 at twice that length."""
    out = []
    for c in completions:
        n = len(_text(c))
        out.append(1.0 if n <= max_chars else max(0.0, 2.0 - n / max_chars))
    return out
