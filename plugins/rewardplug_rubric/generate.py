"""Generate per-prompt checklists (rubrics) with a judge backend: ``rewardplug rubric generate``.

For each prompt a writer model is asked for a short list of atomic, checkable criteria that
separate an excellent response from a merely good one, each labelled with a category
(essential / important / optional / pitfall), one per line as ``<category>: <criterion>``.
Reference responses, when given, are shown as examples of strong answers. The reply is parsed
leniently, de-duplicated and validated as a rubric whose criteria are ``llm`` checks; the
result goes into the row's ``rubric`` field, where the ``rubric`` source picks it up as a
per-sample rubric.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rewardplug.plugin_api import Message, prompt_text
from rewardplug_rubric.judge import RubricJudge
from rewardplug_rubric.model import RubricError, load_rubric

__all__ = ["checklist_messages", "generate_file", "generate_rubrics", "parse_checklist"]

_ITEM = re.compile(
    r"^[ \t>*_#\-\d.)]*\**[ \t]*(essential|important|optional|pitfall)\**[ \t]*[:\-–—)\]]+[ \t]*"
    r"\**[ \t]*(.+?)[ \t]*$",
    re.IGNORECASE | re.MULTILINE,
)
PREFILL = "essential:"


def checklist_messages(
    prompt: str, references: Sequence[str] = (), max_criteria: int = 8, prefill: bool = False
) -> list[Message]:
    """Chat messages asking a writer model for a checklist for ``prompt``."""
    refs = ""
    if references:
        shown = "\n\n".join(
            f"### Reference response {i}\n{r.strip()}" for i, r in enumerate(references, 1)
        )
        refs = (
            "\n\nStrong responses to this prompt look like the references below. Use them to "
            "see what an excellent answer contains; criteria must still make sense for any "
            f"response.\n\n{shown}"
        )
    user = (
        f"## Prompt\n{prompt.strip()}{refs}\n\n"
        f"Write a grading checklist of at most {max_criteria} criteria for responses to this "
        "prompt. Focus on what separates an excellent response from a merely good one, not only "
        "on the basics. Each criterion must check exactly one thing and be decidable yes/no by "
        "reading the response. Label each with a category: essential (a response without it "
        "fails), important, optional (a nice touch), or pitfall (a mistake to avoid, written as "
        "the mistake). Write one criterion per line as '<category>: <criterion>' and nothing "
        "else. For example:\nessential: States that the boiling point of water at sea level is "
        "100 °C.\npitfall: Confuses Celsius with Fahrenheit."
    )
    messages: list[Message] = [
        {"role": "system", "content": "You write precise grading checklists for AI responses."},
        {"role": "user", "content": user},
    ]
    if prefill:
        messages.append({"role": "assistant", "content": PREFILL})
    return messages


def parse_checklist(text: str, max_criteria: int = 8) -> list[dict[str, Any]]:
    """Criteria (``{id, text, category, check: {kind: llm}}``) found in a writer's reply."""
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for category, criterion in _ITEM.findall(text or ""):
        criterion = criterion.strip().strip("*").strip()
        key = re.sub(r"\W+", " ", criterion.casefold()).strip()
        if len(key) < 8 or key in seen:
            continue
        seen.add(key)
        out.append(
            {
                "id": f"c{len(out) + 1}",
                "text": criterion,
                "category": category.lower(),
                "check": {"kind": "llm"},
            }
        )
        if len(out) == max_criteria:
            break
    return out


async def _agenerate(
    judge: RubricJudge, prompts: list[list[Message]], prefixes: list[str]
) -> list[str | None]:
    try:
        replies = await judge.acomplete(prompts, 1)
    finally:
        await judge.backend.aclose()
    return [p + r[0].text if r[0].ok else None for p, r in zip(prefixes, replies, strict=True)]


def generate_rubrics(
    rows: Sequence[dict[str, Any]],
    judge: dict[str, Any],
    *,
    prompt_field: str = "prompt",
    reference_fields: Sequence[str] = (),
    max_criteria: int = 8,
    aggregate: str = "weighted_mean",
    prefill: bool | None = None,
) -> list[tuple[dict[str, Any] | None, str | None]]:
    """Per row: ``(rubric mapping, None)`` or ``(None, why no checklist came out)``."""
    writer = RubricJudge(judge)  # raises a clear error when the judge plugin is missing
    from rewardplug_judge.backends import run_sync

    if prefill is None:
        prefill = judge.get("backend", "transformers") == "transformers"
    messages, prefixes = [], []
    for row in rows:
        refs = [str(row[f]) for f in reference_fields if row.get(f)]
        text = prompt_text(row.get(prompt_field) or "")
        messages.append(checklist_messages(text, refs, max_criteria, prefill))
        prefixes.append(PREFILL if prefill else "")
    try:
        replies = run_sync(_agenerate(writer, messages, prefixes))
    finally:
        writer.close()
    out: list[tuple[dict[str, Any] | None, str | None]] = []
    for i, reply in enumerate(replies):
        if reply is None:
            out.append((None, "the writer model call failed"))
            continue
        criteria = parse_checklist(reply, max_criteria)
        if not criteria:
            out.append((None, f"no '<category>: <criterion>' lines in the reply: {reply[:200]!r}"))
            continue
        rubric = {"name": f"checklist-{i}", "aggregate": aggregate, "criteria": criteria}
        try:
            load_rubric(rubric)
        except RubricError as exc:
            out.append((None, str(exc)))
            continue
        out.append((rubric, None))
    return out


def generate_file(
    prompts_path: str | Path,
    output_path: str | Path,
    judge: dict[str, Any],
    **options: Any,
) -> dict[str, int]:
    """Read prompts (JSONL), write every row with a ``rubric`` (or ``rubric_error``) to JSONL."""
    rows = []
    with open(prompts_path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except ValueError as exc:
                    raise ValueError(f"{prompts_path}:{n}: not a JSON line ({exc})") from None
    prompt_field = options.get("prompt_field", "prompt")
    missing = [i for i, r in enumerate(rows, 1) if not r.get(prompt_field)]
    if missing:
        raise ValueError(f"{prompts_path}: rows {missing[:5]} have no {prompt_field!r} field")
    results = generate_rubrics(rows, judge, **options)
    written = failed = 0
    with open(output_path, "w", encoding="utf-8") as out:
        for row, (rubric, error) in zip(rows, results, strict=True):
            row = dict(row)
            if rubric is not None:
                row["rubric"] = rubric
                written += 1
            else:
                row["rubric_error"] = error
                failed += 1
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
    return {"written": written, "failed": failed}
