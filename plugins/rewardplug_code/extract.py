"""Turning a model response into the program to run.

The code is the response's fenced Python block when there is one (```` ```python ````, else the
first untagged fence), otherwise the whole response. ``stop`` strings truncate the response first
(raw completions such as CodeGen samples run on past the function); ``prepend_prompt`` joins the
prompt and the response for completions that continue the prompt (HumanEval style).
"""

from __future__ import annotations

import re

__all__ = ["CodeError", "extract_code"]

_TAGGED = re.compile(r"```[ \t]*(?:python3?|py)[ \t]*\r?\n(.*?)```", re.S | re.I)
_UNTAGGED = re.compile(r"```[ \t]*\r?\n(.*?)```", re.S)


class CodeError(ValueError):
    """The response holds no runnable code; the message says why (it goes into ``detail``)."""


def extract_code(
    response: str,
    prompt: str | None = None,
    *,
    prepend_prompt: bool = False,
    stop: tuple[str, ...] | list[str] = (),
    max_bytes: int = 200_000,
) -> str:
    """The program text for ``response``; raises :class:`CodeError` when there is none."""
    if len(response) > 4 * max_bytes:  # do not even scan megabytes of text
        raise CodeError(f"the response is {len(response)} characters, far over max_code_bytes")
    _check_text(response, "response")
    for s in stop:
        cut = response.find(s)
        if s and cut >= 0:
            response = response[:cut]
    match = _TAGGED.search(response) or _UNTAGGED.search(response)
    code = match.group(1) if match else response
    if not code.strip():
        raise CodeError("the response contains no code")
    if prepend_prompt:
        if not isinstance(prompt, str):
            raise CodeError("prepend_prompt needs a plain-text prompt, not chat messages")
        _check_text(prompt, "prompt")
        code = prompt + code
    size = len(code.encode("utf-8"))
    if size > max_bytes:
        raise CodeError(f"the code is {size} bytes, over the cap of {max_bytes} (max_code_bytes)")
    return code


def _check_text(text: str, what: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        # Undecodable bytes survive into Python strings as lone surrogates.
        raise CodeError(f"the {what} is not valid UTF-8 text") from None
    if "\x00" in text:
        raise CodeError(f"the {what} contains NUL bytes, which no Python source may hold")
