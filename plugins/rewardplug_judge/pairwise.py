"""``llm_judge`` ``mode: pairwise``: every pair of a group judged in both orders, scores from a
Bradley–Terry fit per draw.

For a group of n responses (in canonical order, by sample id) every pair (i, j) is asked as
"A = i, B = j" and as "A = j, B = i", K samples each. Draw ``d`` of the group is one order and one
sample: order ``d // K``, sample ``d % K``; it holds one outcome per pair. Each draw's outcomes
are fitted with Bradley–Terry (:mod:`rewardplug_judge.bradley_terry`) and a response's score in
that draw is its modelled chance of beating the others, so the order swaps and the samples are
the 2K draws the discretizer compares. ``detail`` reports the group's position bias (how often
the first-shown response won, and how often a pair's verdict survived the swap).

A reply without a readable winner is re-asked (``parse_retries``) and otherwise left out of its
draw; a response with no readable comparison at all, or alone in its group, abstains.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from rewardplug import Sample, Score
from rewardplug_judge import structured
from rewardplug_judge.bradley_terry import fit, win_scores
from rewardplug_judge.fence import nonce_of
from rewardplug_judge.prompts import truncate
from rewardplug_judge.reply import line_matches, mask, whole_json

if TYPE_CHECKING:
    from rewardplug_judge.backed import BackedSource
    from rewardplug_judge.backends import Completion
    from rewardplug_judge.judge_config import JudgeConfig

__all__ = ["parse_winner", "score_pairwise"]

_WINNER = re.compile(
    r"[ \t*_#]*(?:final[ \t]+)?winner[ \t]*[*_]*[ \t]*[:=]?[ \t]*[*_]*[ \t]*\[*[ \t]*"
    r"(?:response[ \t]+)?(a|b|tie|both|neither|equal)\b",
    re.I,
)
_BRACKET = re.compile(
    r"[ \t*_#]*(?:(?:final[ \t]+)?verdict[ \t]*[*_]*[ \t]*[:=]?[ \t]*[*_]*[ \t]*)?"
    r"\[\[[ \t]*(a|b|tie)[ \t]*\]\]",
    re.I,
)


def parse_winner(text: str | None, nonce: str | None = None) -> float | None:
    """1.0 when A wins, 0.0 when B wins, 0.5 for a tie; None when the reply does not say.

    A reply that is one JSON object is read from its ``winner`` field (structured output);
    otherwise the final line that starts with ``Winner: X`` counts (else the final line that starts with
    ``[[X]]`` or ``Verdict: [[X]]``);
    quoted lines, code blocks and echoed response fences are never read
    (:mod:`rewardplug_judge.reply`).
    """
    if not text:
        return None
    whole = whole_json(text)
    if whole is not None:  # a JSON reply (structured output): its `winner` field, nothing else
        word = str({str(k).lower(): v for k, v in whole[0].items()}.get("winner", "")).lower()
        return {"a": 1.0, "b": 0.0, "tie": 0.5}.get(word.strip())
    masked = mask(text, nonce)
    found = [m.group(1) for m in line_matches(masked, _WINNER) if m is not None]
    if not found:
        found = [m.group(1) for m in line_matches(masked, _BRACKET) if m is not None]
    if not found:
        return None
    word = found[-1].lower()
    return 1.0 if word == "a" else 0.0 if word == "b" else 0.5


async def score_pairwise(source: BackedSource, samples: Sequence[Sample]) -> list[Score]:
    """Scores for a batch (its groups judged concurrently), in batch order."""
    groups: dict[str, list[int]] = {}
    for i, s in enumerate(samples):
        groups.setdefault(s.group, []).append(i)
    scores: list[Score | None] = [None] * len(samples)

    async def one(members: list[int]) -> None:
        from rewardplug_judge.backends import FatalBackendError

        members = sorted(members, key=lambda i: (samples[i].id, i))
        try:
            got = await _group(source, [samples[i] for i in members])
        except FatalBackendError:
            raise
        except Exception as exc:  # one group's failure must not sink the others
            got = [Score.error(f"pairwise judge failed: {type(exc).__name__}: {exc}")] * len(
                members
            )
        for i, score in zip(members, got, strict=True):
            scores[i] = score

    async with asyncio.TaskGroup() as tg:
        for members in groups.values():
            tg.create_task(one(members))
    return [s if s is not None else Score.error("not scored") for s in scores]


async def _group(source: BackedSource, group: list[Sample]) -> list[Score]:
    cfg = cast("JudgeConfig", source.config)  # an llm_judge source in mode: pairwise
    n, k = len(group), cfg.samples
    if n < 2:
        return [Score.abstain("pairwise judging needs at least two responses in the group")]
    texts, notes = [], []
    for s in group:
        text, cut = truncate(s.response, cfg.max_response_chars)
        texts.append(text)
        notes.append({"truncated": cut} if cut else {})
    pairs = [(i, j) for i in range(n) for j in range(i + 1, n)]
    asks = [(a, b) for i, j in pairs for a, b in ((i, j), (j, i))]
    replies = await asyncio.gather(*(_ask(source, group[0], texts, a, b) for a, b in asks))
    # outcome[d][(a, b)] = 1 when A = a won, 0 when B = b won, 0.5 tie (draw d = order, sample)
    outcomes: list[dict[tuple[int, int], float]] = [{} for _ in range(2 * k)]
    completions: list[Completion] = []
    position = {"first": 0.0, "second": 0.0, "tie": 0.0, "unreadable": 0}
    rationale = ""
    for (a, b), (results, comps) in zip(asks, replies, strict=True):
        completions.extend(comps)
        order = 0 if a < b else 1
        for d, result in enumerate(results):
            if result is None:
                position["unreadable"] += 1
                continue
            outcome, text = result
            outcomes[order * k + d][(a, b)] = outcome
            key = "first" if outcome == 1.0 else "second" if outcome == 0.0 else "tie"
            position[key] += 1
            rationale = rationale or text
    bias = _bias(position, outcomes, pairs, k)
    draws: list[list[float]] = [[] for _ in range(n)]
    strengths: list[list[float]] = [[] for _ in range(n)]
    record = [{"wins": 0.0, "losses": 0.0, "ties": 0} for _ in range(n)]
    for draw in outcomes:
        if not draw:
            continue
        wins = np.zeros((n, n))
        seen = np.zeros(n, dtype=bool)
        for (a, b), outcome in draw.items():
            wins[a, b] += outcome
            wins[b, a] += 1.0 - outcome
            seen[a] = seen[b] = True
            _tally(record, a, b, outcome)
        theta = fit(wins, prior=cfg.pairwise_prior)
        score = win_scores(theta)
        for i in np.flatnonzero(seen).tolist():
            draws[i].append(float(score[i]))
            strengths[i].append(float(theta[i]))
    out = []
    errors = sorted({c.error for c in completions if c.error})
    for i in range(n):
        detail: dict[str, Any] = {
            "mode": "pairwise",
            "judge": f"{cfg.backend}:{cfg.model}",
            **notes[i],
            **record[i],
            "group_size": n,
            "bt_strength": round(float(np.mean(strengths[i])), 6) if strengths[i] else None,
            "position_bias": bias,
            "missing_draws": 2 * k - len(draws[i]),
        }
        if i == 0:
            detail["tokens"] = {
                "prompt": sum(c.prompt_tokens for c in completions),
                "completion": sum(c.completion_tokens for c in completions),
            }
            detail["rationale"] = rationale[:600]
        if errors:
            detail["request_errors"] = errors[:3]
        if not draws[i]:
            why = (
                f"every judge request failed ({errors[0]})"
                if errors
                else "no comparison of this response had a readable 'Winner: A|B|tie'"
            )
            out.append(Score.abstain(f"no pairwise verdict: {why}", **detail))
        else:
            out.append(Score.of(draws=draws[i], **detail))
    return out


async def _ask(
    source: BackedSource, first: Sample, texts: list[str], a: int, b: int
) -> tuple[list[tuple[float, str] | None], list[Completion]]:
    """K verdicts for "A = a, B = b"; unreadable ones are re-asked as fresh draws ``K*r + s``."""
    cfg = cast("JudgeConfig", source.config)  # an llm_judge source in mode: pairwise
    k = cfg.samples
    messages = source.template.render(
        prompt=first.prompt_text,
        response_a=texts[a],
        response_b=texts[b],
        reference=first.reference,
    )
    nonce = nonce_of(messages)
    fmt = None
    if cfg.structured:
        schema = structured.winner_schema()
        messages, fmt = (
            structured.apply(messages, schema),
            structured.response_format("winner", schema),
        )
    prefill = messages[-1]["content"] if messages[-1]["role"] == "assistant" else ""
    results: list[tuple[float, str] | None] = [None] * k
    completions: list[Completion] = []
    todo = list(range(k))
    for round_ in range(cfg.parse_retries + 1):
        got = await source.backend.complete(
            messages, draws=[k * round_ + s for s in todo], response_format=fmt
        )
        completions.extend(got)
        again = []
        for s, c in zip(todo, got, strict=True):
            text = prefill + c.text if c.ok else None
            winner = parse_winner(text, nonce)
            if winner is None:
                if c.ok:
                    again.append(s)
                continue
            results[s] = (winner, text or "")
        todo = again
        if not todo:
            break
    return results, completions


def _tally(record: list[dict[str, Any]], a: int, b: int, outcome: float) -> None:
    if outcome == 0.5:
        record[a]["ties"] += 1
        record[b]["ties"] += 1
        return
    winner, loser = (a, b) if outcome == 1.0 else (b, a)
    record[winner]["wins"] += 1
    record[loser]["losses"] += 1


def _bias(
    position: dict[str, float],
    outcomes: list[dict[tuple[int, int], float]],
    pairs: list[tuple[int, int]],
    k: int,
) -> dict[str, Any]:
    """How often the first-shown response won, and how often a verdict survived the swap."""
    decided = position["first"] + position["second"] + position["tie"]
    consistent = checked = 0
    for s in range(k):
        forward, backward = outcomes[s], outcomes[k + s]
        for i, j in pairs:
            if (i, j) in forward and (j, i) in backward:
                checked += 1
                consistent += forward[(i, j)] == 1.0 - backward[(j, i)]
    return {
        "first_wins": round(position["first"] / decided, 4) if decided else None,
        "second_wins": round(position["second"] / decided, 4) if decided else None,
        "ties": round(position["tie"] / decided, 4) if decided else None,
        "swap_consistent": round(consistent / checked, 4) if checked else None,
        "unreadable": int(position["unreadable"]),
    }
