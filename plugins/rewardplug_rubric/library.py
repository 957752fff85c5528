"""Check functions used by the shipped rubrics (``check: {kind: python, function: ...}``).

They are ordinary functions, usable from your own rubrics too: each takes the keyword arguments
it needs (``response``, ``reference``, dataset columns, check ``kwargs``) and returns a bool, a
score in [0, 1], or None when it cannot tell (the criterion is then left out).

* math: :func:`final_answer_matches` compares the response's final number with the reference's,
  after normalizing how numbers are written; :func:`shows_reasoning` counts worked calculations.
* code: :func:`python_parses`, :func:`functions_documented`, :func:`has_bare_except`,
  :func:`lines_within`, all on the first fenced code block (or the whole response).
"""

from __future__ import annotations

import ast
import re
from fractions import Fraction

__all__ = [
    "code_of",
    "final_answer",
    "final_answer_matches",
    "functions_documented",
    "has_bare_except",
    "lines_within",
    "normalize_number",
    "python_parses",
    "shows_reasoning",
]

# A number as people write it: -1,234.5  $18  3/4  .5 (not part of a word or a longer number).
_NUMBER_STRICT = re.compile(
    r"(?<![\w.])-?\$?(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?:\.\d+)?(?:\s?/\s?\d+)?(?![\w])|(?<![\w.])-?\.\d+"
)
# Markers after which a solution states its final answer, strongest first.
_ANSWER_MARKERS = (
    re.compile(r"####\s*(.+)"),
    re.compile(r"\\boxed\{([^{}]+)\}"),
    re.compile(r"(?m)^\s*(?:A|(?i:final\s+answer|answer))\s*:\s*(.+)$"),
    re.compile(r"(?i)(?:final answer|the answer|answer) (?:is|=|:)\s*(.+)"),
)
# "<number or )> = <number>": the result of a calculation (GSM8K's <<a*b=c>> annotations too).
_CALCULATION = re.compile(r"[\d)%]\s*=\s*\$?\s*-?\.?\d")


def normalize_number(text: str) -> Fraction | None:
    """The number written in ``text`` as an exact fraction: ``"$1,234.50"`` -> 2469/2, ``"3/4"``.

    Thousands separators, currency signs, a trailing percent sign or unit word and surrounding
    punctuation are ignored. Returns None when ``text`` holds no number.
    """
    found = _NUMBER_STRICT.search(text.replace("−", "-"))
    if not found:
        return None
    token = found.group(0).replace("$", "").replace(",", "").replace(" ", "")
    try:
        if "/" in token:
            num, den = token.split("/")
            return Fraction(num) / Fraction(den) if Fraction(den) != 0 else None
        return Fraction(token)
    except (ValueError, ZeroDivisionError):
        return None


def final_answer(text: str) -> Fraction | None:
    """The final numeric answer of a solution.

    Looks for an explicit marker (``#### 18``, ``\\boxed{18}``, ``A: 18``, ``the answer is 18``),
    taking the last marked statement, and falls back to the last number in the text.
    """
    for marker in _ANSWER_MARKERS:
        matches = marker.findall(text)
        for candidate in reversed(matches):
            value = normalize_number(candidate)
            if value is not None:
                return value
    numbers = _NUMBER_STRICT.findall(text.replace("−", "-"))
    for token in reversed(numbers):
        value = normalize_number(token)
        if value is not None:
            return value
    return None


def final_answer_matches(
    response: str, reference: str | None = None, answer: str | None = None, rel_tol: float = 1e-6
) -> bool | None:
    """True when the response's final number equals the reference's (``answer`` column first).

    None (cannot tell) when there is no reference or it holds no number; False when the response
    states no number.
    """
    gold_text = answer if answer is not None else reference
    if gold_text is None:
        return None
    gold = final_answer(str(gold_text))
    if gold is None:
        return None
    got = final_answer(response)
    if got is None:
        return False
    if gold == got:
        return True
    scale = max(abs(float(gold)), abs(float(got)), 1.0)
    return abs(float(gold) - float(got)) <= rel_tol * scale


def shows_reasoning(response: str, min_steps: int = 2) -> float:
    """Share of ``min_steps`` worked calculations shown in the response.

    A calculation is an equation with a numeric result (``16 - 3 = 13``, ``<<16-3=13>>``,
    ``(4+2=6 pets)``), counted wherever it appears, several per line included. Returns
    ``min(1, calculations / min_steps)``: a bare answer scores 0, two calculations score 1.
    """
    steps = len(_CALCULATION.findall(response))
    return min(1.0, steps / max(1, min_steps))


_FENCED = re.compile(r"```[ \t]*([\w+-]*)[^\n]*\n(.*?)```", re.DOTALL)


def code_of(response: str) -> str:
    """The first fenced code block (preferring one tagged ``python``), else the whole response."""
    blocks: list[tuple[str, str]] = _FENCED.findall(response)
    for lang, body in blocks:
        if lang.lower() in ("python", "py", "python3"):
            return body
    return blocks[0][1] if blocks else response


def _tree(response: str) -> ast.Module | None:
    try:
        return ast.parse(code_of(response))
    except (SyntaxError, ValueError):
        return None


def python_parses(response: str) -> bool:
    """The response's code is syntactically valid Python with at least one statement."""
    tree = _tree(response)
    return tree is not None and len(tree.body) > 0


def functions_documented(response: str) -> float | None:
    """Share of functions and classes that have a docstring; None when the code defines none."""
    tree = _tree(response)
    if tree is None:
        return None
    defs = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
    ]
    if not defs:
        return None
    return sum(1 for d in defs if ast.get_docstring(d)) / len(defs)


def has_bare_except(response: str) -> bool:
    """True when the code swallows every exception with a bare ``except:`` (a pitfall)."""
    tree = _tree(response)
    if tree is None:
        return False
    return any(isinstance(n, ast.ExceptHandler) and n.type is None for n in ast.walk(tree))


def lines_within(response: str, limit: int = 100) -> bool:
    """Every line of the code is at most ``limit`` characters long."""
    return all(len(line) <= limit for line in code_of(response).splitlines())
