"""Judge prompt templates: find them, and fill them safely into chat messages.

A template is a Markdown file (shipped ones live in ``rubrics/prompts/``; select by name or give a
path). Markers split it into chat messages: ``<!-- system -->``, ``<!-- user -->`` and
``<!-- assistant -->`` (a prefill the judge continues, e.g. ``Rating:``); text before any marker
belongs to the user message. Other HTML comments are notes for humans and are dropped.

Placeholders are ``{prompt}``, ``{response}``, ``{reference}``, ``{responses}`` (groupwise: every
response, numbered), ``{response_a}``, ``{response_b}`` (pairwise), ``{count}``, ``{scale_min}``
and ``{scale_max}``. Filling is one pass over the *template*: text inserted from a response is
never scanned again, so braces or ``{response}`` inside a response stay as they are.
``<!-- if reference -->...<!-- endif -->`` keeps its body only when the sample has a reference.

Responses are policy output, so :meth:`Template.render` puts each one inside a fence it cannot
contain or close (:mod:`rewardplug_judge.fence`) and adds the fence instruction to the system
message (or, in a template without one, before the first fenced response): this protects every
template, shipped or third-party, without any change to it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["Template", "fill", "load_template", "truncate"]

_MARKER = re.compile(r"<!--\s*(system|user|assistant)\s*-->", re.IGNORECASE)
_IF_BLOCK = re.compile(r"<!--\s*if\s+(\w+)\s*-->(.*?)<!--\s*endif\s*-->", re.DOTALL | re.IGNORECASE)
_COMMENT = re.compile(r"<!--(?!\s*(?:system|user|assistant|if\s|endif)).*?-->", re.DOTALL)
_PLACEHOLDER = re.compile(r"\{(\w+)\}")
_FENCED_PLACEHOLDER = re.compile(r"\{(?:response|response_a|response_b|responses)\}")


@dataclass(frozen=True)
class Template:
    """A parsed judge template: its source and the raw text of each message part."""

    name: str
    text: str

    def render(self, **values: Any) -> list[dict[str, str]]:
        """Chat messages with the placeholders filled (see :func:`fill`) and responses fenced.

        ``response``, ``response_a`` and ``response_b`` are raw response texts; ``responses`` is
        a list of them (a single string is one response). Each is inserted inside its fence.
        """
        values = _fenced(values)
        nonce = values.pop("_nonce")
        body = _COMMENT.sub("", self.text)
        body = _IF_BLOCK.sub(lambda m: m.group(2) if values.get(m.group(1)) else "", body)
        body = re.sub(r"\n{3,}", "\n\n", body)  # removed blocks leave blank runs
        parts = _MARKER.split(body)
        messages: list[dict[str, str]] = []
        head = parts[0].strip()
        if head:
            messages.append({"role": "user", "content": fill(head, values)})
        for role, chunk in zip(parts[1::2], parts[2::2], strict=True):
            content = fill(chunk.strip(), values)
            if content or role.lower() == "assistant":
                messages.append({"role": role.lower(), "content": content})
        if not any(m["role"] == "user" for m in messages):
            raise ValueError(f"judge template {self.name!r} has no user message")
        if _FENCED_PLACEHOLDER.search(body):
            _instruct(messages, nonce)
        return messages

    def placeholders(self) -> tuple[frozenset[str], frozenset[str]]:
        """``(always, conditional)``: the placeholders every request fills, and those only inside
        ``<!-- if x -->`` blocks (filled when the sample has ``x``). A template that shows
        ``{reference}`` outside such a block needs every sample to have one."""
        body = _COMMENT.sub("", self.text)
        conditional = {
            name for m in _IF_BLOCK.finditer(body) for name in _PLACEHOLDER.findall(m.group(2))
        }
        always = set(_PLACEHOLDER.findall(_IF_BLOCK.sub("", body)))
        return frozenset(always), frozenset(conditional - always)


def _fenced(values: dict[str, Any]) -> dict[str, Any]:
    """``values`` with every response placeholder replaced by its fenced text."""
    from rewardplug_judge import fence

    out = dict(values)
    many = values.get("responses")
    texts = [many] if isinstance(many, str) else list(many or [])
    content = [values.get(k) for k in ("prompt", "reference", "response", "response_a")]
    content += [values.get("response_b"), *texts]
    nonce = fence.make_nonce(content)
    for name, label in (("response", 1), ("response_a", "A"), ("response_b", "B")):
        if name in values:
            out[name] = fence.block(str(values[name] or ""), nonce, label)
    if "responses" in values:
        out["responses"] = fence.numbered([str(t) for t in texts], nonce)
    out["_nonce"] = nonce
    return out


def _instruct(messages: list[dict[str, str]], nonce: str) -> None:
    """Add the fence instruction to the system message, or before the first fenced response."""
    from rewardplug_judge import fence

    note = fence.instruction(nonce)
    for m in messages:
        if m["role"] == "system":
            m["content"] = f"{m['content']}\n\n{note}".strip()
            return
    for m in messages:
        if f"<response-{nonce}" in m["content"]:
            m["content"] = f"{note}\n\n{m['content']}"
            return


def fill(text: str, values: dict[str, Any]) -> str:
    """Replace ``{name}`` for known names in one pass; unknown ``{...}`` are left untouched."""

    def sub(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            return match.group(0)
        value = values[name]
        return "" if value is None else str(value)

    return _PLACEHOLDER.sub(sub, text)


def load_template(name_or_path: str) -> Template:
    """A template by name (``pointwise`` -> ``rubrics/prompts/pointwise.md``) or by file path."""
    from rewardplug.plugin_api import rubrics_dir

    path = Path(name_or_path)
    candidates = [path] if path.suffix else []
    candidates.append(rubrics_dir() / "prompts" / f"{name_or_path}.md")
    for candidate in candidates:
        if candidate.is_file():
            return Template(str(candidate), candidate.read_text(encoding="utf-8"))
    shipped = sorted(p.stem for p in (rubrics_dir() / "prompts").glob("*.md"))
    raise FileNotFoundError(
        f"judge prompt {name_or_path!r} not found; give a file path or one of {shipped}"
    )


def truncate(text: str, limit: int) -> tuple[str, dict[str, int] | None]:
    """Cut ``text`` to about ``limit`` characters, keeping its start and its end.

    The end is kept because answers often conclude there (a final result, ``A: 18``). Returns the
    text and, when it was cut, ``{"original_chars", "kept_chars"}`` for ``Score.detail``.
    """
    if len(text) <= limit:
        return text, None
    head = (limit * 2) // 3
    tail = limit - head
    cut = len(text) - head - tail
    kept = text[:head] + f"\n\n[... {cut} characters cut by the judge ...]\n\n" + text[-tail:]
    return kept, {"original_chars": len(text), "kept_chars": head + tail}
