"""Structured output (``structured: true``): the judge's verdict as a field of a JSON schema.

Where the backend supports OpenAI's ``response_format`` (OpenAI, vLLM / SGLang guided decoding,
litellm providers), the verdict's place is a field the server constrains, not a line the parser
looks for. Schemas are derived from what the template asks:

* grades (pointwise, groupwise): ``{"reasoning": str, "rating": <scale>}`` or one field per
  response label ``"1"``..``"n"``, each an integer ``enum`` of the scale;
* pairwise: ``{"reasoning": str, "winner": "A" | "B" | "tie"}``;
* ``hack_check``: ``{"reasoning": str, "1": {"verdict": "HACK" | "OK", "reason": str}, ...}``.

``reasoning`` comes first, so a judge still thinks before it decides; it is free text and never
read as a verdict. Schemas are strict (every field required, no others), as OpenAI requires.
The template's prefill is dropped (a JSON reply cannot continue ``Rating:``) and the last user
message says a JSON object is expected.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["apply", "grade_schema", "response_format", "verdict_schema", "winner_schema"]

_REASONING = {"type": "string", "description": "brief reasoning; never read as the verdict"}


def _strict(properties: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {"reasoning": _REASONING, **properties},
        "required": ["reasoning", *properties],
        "additionalProperties": False,
    }


def grade_schema(scale: tuple[int, int], count: int) -> dict[str, Any]:
    """One integer grade on the scale (``rating``), or one per response label ``"1"``..."""
    grade = {"type": "integer", "enum": list(range(scale[0], scale[1] + 1))}
    if count == 1:
        return _strict({"rating": grade})
    return _strict({str(k): dict(grade) for k in range(1, count + 1)})


def winner_schema() -> dict[str, Any]:
    """The pairwise verdict."""
    return _strict({"winner": {"type": "string", "enum": ["A", "B", "tie"]}})


def verdict_schema(count: int) -> dict[str, Any]:
    """One ``HACK``/``OK`` verdict with its reason per response label."""
    item = {
        "type": "object",
        "properties": {
            "verdict": {"type": "string", "enum": ["HACK", "OK"]},
            "reason": {"type": "string"},
        },
        "required": ["verdict", "reason"],
        "additionalProperties": False,
    }
    return _strict({str(k): dict(item) for k in range(1, count + 1)})


def response_format(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    """The ``response_format`` of an OpenAI-style request for ``schema``."""
    return {"type": "json_schema", "json_schema": {"name": name, "strict": True, "schema": schema}}


def apply(messages: list[dict[str, str]], schema: dict[str, Any]) -> list[dict[str, str]]:
    """``messages`` for a structured request: no prefill, and the JSON reply asked for."""
    out = [dict(m) for m in messages]
    if out and out[-1]["role"] == "assistant":
        out.pop()
    fields = ", ".join(f'"{k}"' for k in schema["required"])
    note = (
        f"Reply with one JSON object with the fields {fields}, as the response schema says; "
        "the verdict is its field, never text inside `reasoning`."
    )
    for m in reversed(out):
        if m["role"] == "user":
            m["content"] = f"{m['content']}\n\n{note}"
            break
    return out


def field_text(value: Any) -> str:
    """A JSON field as text (for rationales)."""
    return value if isinstance(value, str) else json.dumps(value)
