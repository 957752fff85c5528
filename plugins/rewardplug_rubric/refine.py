"""Rubric refinement through differentiation: ``rewardplug rubric refine``.

Rubric rewards resist over-optimization when their criteria separate great responses from merely
good ones ("Chasing the Tail"), and those are exactly the responses the discretizer reports as
tied. Each round:

1. score the data with the current rubric and discretize it (tiers per group);
2. from the *training* groups take a pair to separate: the top two of a group whose best
   responses share tier 0 (else the best two of a group), preferring pairs whose gold labels
   differ — the better one named by the labels;
3. ask a judge backend for ONE atomic, yes/no-checkable criterion that the better response meets
   and the other does not; a reply that is not a valid criterion (no ``CRITERION:`` line, several
   sentences, a duplicate, a bad category, a rubric that fails validation) is rejected with the
   reason and the round tries the next pair (up to ``tries`` times);
4. re-score with the criterion added and keep it only if DA on the *held-out* groups rises by
   more than ``min_gain`` while SP does not fall by more than ``max_sp_drop``.

Every round's DA / SP / mean tiers (before and after) and the decision go into the log. The
judge scores ``llm`` criteria one call per criterion (``batch_criteria: false``), so with the
judge cache on, a re-score pays only for the new criterion.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from rewardplug import Sample
from rewardplug.plugin_api import Message
from rewardplug_rubric.checks import count_sentences
from rewardplug_rubric.model import CATEGORY_WEIGHTS, Rubric, RubricError, load_rubric

__all__ = ["Pair", "ProposalError", "parse_proposal", "proposal_messages", "refine"]

_CRITERION = re.compile(
    r"^[ \t*#>\-]*criterion\**[ \t]*[:\-–]+[ \t]*\**(.+?)\**[ \t]*$", re.I | re.M
)
_CATEGORY = re.compile(
    r"^[ \t*#>\-]*category\**[ \t]*[:\-–]+[ \t]*\**[ \t]*([A-Za-z]+)", re.I | re.M
)
_MAX_CHARS = 300


class ProposalError(ValueError):
    """A judge's proposal is not a usable criterion; the message says why."""


@dataclass
class Pair:
    """Two responses of one training group to separate (``better`` first when gold says so)."""

    group: str
    better: int
    other: int
    why: str
    known: bool
    """True when the gold labels say which one is better."""


def proposal_messages(rubric: Rubric, first: Sample, second: Sample, known: bool) -> list[Message]:
    """Chat messages asking for one criterion that separates ``first`` from ``second``."""
    existing = "\n".join(f"- {c.text or c.kind}" for c in rubric.criteria)
    if known:
        ask = (
            "Response X is better than Response Y. Write ONE new criterion that Response X "
            "meets and Response Y does not."
        )
    else:
        ask = (
            "The current rubric cannot tell these two responses apart. Write ONE new criterion "
            "that separates a great response from a merely good one and that exactly one of them "
            "meets."
        )
    from rewardplug_judge import fence

    nonce = fence.make_nonce([first.prompt_text, first.response, second.response])
    x, y = fence.block(first.response, nonce, "X"), fence.block(second.response, nonce, "Y")
    user = (
        f"## Task\n{first.prompt_text}\n\n## Response X\n{x}\n\n"
        f"## Response Y\n{y}\n\n## Current rubric criteria\n{existing}\n\n"
        f"{ask} The criterion must be atomic (it checks one thing), answerable yes or no by "
        "reading a response, about quality rather than length, and not already covered by "
        "the current criteria.\n\nReply with exactly two lines:\n"
        "CRITERION: <one sentence>\nCATEGORY: essential | important | optional | pitfall"
    )
    system = (
        "You write precise grading criteria for rubrics that reward model responses.\n\n"
        + fence.instruction(nonce)
    )
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def parse_proposal(text: str | None, rubric: Rubric) -> tuple[str, str]:
    """``(criterion text, category)`` from a judge's reply; :class:`ProposalError` says why not."""
    if not text or not text.strip():
        raise ProposalError("the judge's reply is empty")
    found = _CRITERION.findall(text)
    if not found:
        raise ProposalError(f"no 'CRITERION: ...' line in the reply ({text.strip()[:120]!r})")
    criterion = found[-1].strip().strip("\"'`")
    if len(criterion) < 8:
        raise ProposalError(f"the criterion {criterion!r} is too short to be checkable")
    if len(criterion) > _MAX_CHARS:
        raise ProposalError(f"the criterion is {len(criterion)} characters (over {_MAX_CHARS})")
    if count_sentences(criterion) > 1:
        raise ProposalError(f"the criterion is not atomic: several sentences in {criterion!r}")
    existing = {(c.text or "").strip().casefold() for c in rubric.criteria}
    if criterion.casefold() in existing:
        raise ProposalError(f"the rubric already has the criterion {criterion!r}")
    categories = _CATEGORY.findall(text)
    category = categories[-1].lower() if categories else "important"
    if category not in CATEGORY_WEIGHTS:
        raise ProposalError(f"category {category!r} is not one of {sorted(CATEGORY_WEIGHTS)}")
    return criterion, category


def with_criterion(rubric: Rubric, text: str, category: str, cid: str) -> Rubric:
    """``rubric`` plus an ``llm`` criterion; validated (a :class:`ProposalError` if it fails)."""
    data = rubric.model_dump(mode="json", exclude_none=True)
    data["criteria"].append({"id": cid, "text": text, "category": category})
    try:
        return load_rubric(data)
    except RubricError as exc:
        raise ProposalError(f"the refined rubric does not validate: {exc}") from None


def split_groups(groups: Sequence[str], holdout: float, seed: int) -> set[str]:
    """The held-out groups: a fixed fraction, chosen by a seeded hash of the group key."""

    def rank(g: str) -> str:
        return hashlib.blake2b(f"{seed}:{g}".encode(), digest_size=8).hexdigest()

    unique = sorted(set(groups), key=rank)
    n = min(len(unique) - 1, max(1, round(holdout * len(unique))))
    return set(unique[:n])


@dataclass
class Scored:
    """One scoring of the data: raw values, discretized rewards and tiers, and metrics."""

    raw: list[float | None]
    reward: list[float | None]
    tier: list[int | None]
    heldout: dict[str, Any]


def score_rubric(
    rubric: Rubric,
    samples: Sequence[Sample],
    gold: Sequence[float | None],
    heldout: set[str],
    judge: dict[str, Any] | None,
    k: int,
    confidence: float,
) -> Scored:
    """Score ``samples`` with ``rubric``, discretize per group, and measure held-out DA / SP."""
    from rewardplug import discretize, evaluate
    from rewardplug_rubric.source import RubricSource

    options: dict[str, Any] = {"rubric": rubric.model_dump(mode="json", exclude_none=True)}
    options.update(per_sample=False, samples=k, batch_criteria=False)
    if judge is not None:
        options["judge"] = judge
    source = RubricSource(options)
    try:
        scores = source.score(samples)
    finally:
        source.close()
    groups = [s.group for s in samples]
    draws = [sc.draws if sc.ok else None for sc in scores]
    result = discretize(draws, groups, confidence=confidence)
    reward = [None if not sc.ok else float(r) for sc, r in zip(scores, result.reward, strict=True)]
    tier = [None if not sc.ok else int(t) for sc, t in zip(scores, result.tier, strict=True)]
    keep = [i for i, g in enumerate(groups) if g in heldout]
    metrics = evaluate(
        [reward[i] for i in keep], [gold[i] for i in keep], [groups[i] for i in keep], n_boot=0
    )
    tiers: dict[str, int] = {}
    for i in keep:
        t = tier[i]
        if t is not None:
            tiers[groups[i]] = max(tiers.get(groups[i], 0), t + 1)
    summary = {
        "DA": metrics["discriminative_ability"],
        "SP": metrics["specificity"],
        "accuracy": metrics["accuracy"],
        "mean_tiers": round(float(np.mean(list(tiers.values()))), 4) if tiers else None,
        "abstained": sum(1 for i in keep if reward[i] is None),
    }
    return Scored([sc.value if sc.ok else None for sc in scores], reward, tier, summary)


def pick_pairs(
    samples: Sequence[Sample], gold: Sequence[float | None], scored: Scored, heldout: set[str]
) -> list[Pair]:
    """Training pairs to separate: tied tops first, then best twos; gold-differing ones first."""
    by_group: dict[str, list[int]] = {}
    for i, s in enumerate(samples):
        if s.group not in heldout and scored.raw[i] is not None:
            by_group.setdefault(s.group, []).append(i)
    pairs: list[tuple[int, Pair]] = []
    for group, members in sorted(by_group.items()):
        if len(members) < 2:
            continue
        members.sort(key=lambda i: (-(scored.raw[i] or 0.0), samples[i].id))
        a, b = members[0], members[1]
        tied = scored.tier[a] == scored.tier[b] == 0
        why = "top responses share tier 0" if tied else "best two of the group"
        ga, gb = gold[a], gold[b]
        known = ga is not None and gb is not None and ga != gb
        if known and gb > ga:  # type: ignore[operator]
            a, b = b, a
        priority = (0 if known else 2) + (0 if tied else 1)
        pairs.append((priority, Pair(group, a, b, why, known)))
    return [p for _, p in sorted(pairs, key=lambda x: x[0])]


def refine(
    rubric: Rubric | str | dict[str, Any],
    samples: Sequence[Sample],
    gold: Sequence[float | None],
    judge: dict[str, Any],
    *,
    rounds: int = 3,
    tries: int = 3,
    holdout: float = 0.5,
    seed: int = 0,
    samples_k: int = 1,
    confidence: float = 0.9,
    min_gain: float = 0.0,
    max_sp_drop: float = 0.05,
    propose: Callable[[list[Message]], str | None] | None = None,
    on_round: Callable[[dict[str, Any]], None] | None = None,
) -> tuple[Rubric, list[dict[str, Any]]]:
    """The refined rubric and the log (one entry per round, plus the baseline)."""
    current = load_rubric(rubric)
    if len(samples) != len(gold):
        raise ValueError(f"{len(samples)} samples but {len(gold)} gold labels")
    groups = [s.group for s in samples]
    if len(set(groups)) < 2:
        raise ValueError("refinement needs at least two groups (training and held-out)")
    heldout = split_groups(groups, holdout, seed)
    ask = propose or _proposer(judge)
    scored = score_rubric(current, samples, gold, heldout, judge, samples_k, confidence)
    log: list[dict[str, Any]] = [
        {"round": 0, "status": "baseline", "heldout_groups": len(heldout), **scored.heldout}
    ]
    if on_round:
        on_round(log[-1])
    tried: set[str] = set()  # a group asked once is not asked again (the reply is cached)
    for r in range(1, rounds + 1):
        entry: dict[str, Any] = {"round": r, "before": scored.heldout, "rejected": []}
        pairs = [p for p in pick_pairs(samples, gold, scored, heldout) if p.group not in tried]
        if not pairs:
            entry.update(status="stopped", reason="no untried training group with two scores")
            log.append(entry)
            if on_round:
                on_round(entry)
            break
        candidate = None
        for pair in pairs[: max(1, tries)]:
            tried.add(pair.group)
            first, second = samples[pair.better], samples[pair.other]
            reply = ask(proposal_messages(current, first, second, pair.known))
            where = {"group": pair.group, "ids": [first.id, second.id], "why": pair.why}
            try:
                text, category = parse_proposal(reply, current)
                candidate = with_criterion(current, text, category, f"refined_{r}")
            except ProposalError as exc:
                entry["rejected"].append({**where, "reason": str(exc)})
                continue
            entry.update(pair=where, criterion={"text": text, "category": category})
            break
        if candidate is None:
            entry.update(status="no_valid_proposal", after=None)
            log.append(entry)
            if on_round:
                on_round(entry)
            continue
        trial = score_rubric(candidate, samples, gold, heldout, judge, samples_k, confidence)
        entry["after"] = trial.heldout
        verdict = _decide(scored.heldout, trial.heldout, min_gain, max_sp_drop)
        entry["status"] = "kept" if verdict is None else "dropped"
        if verdict is None:
            current, scored = candidate, trial
        else:
            entry["reason"] = verdict
        log.append(entry)
        if on_round:
            on_round(entry)
    return current, log


def _decide(
    before: dict[str, Any], after: dict[str, Any], min_gain: float, max_sp_drop: float
) -> str | None:
    """None to keep the criterion, else why it is dropped."""
    da0, da1, sp0, sp1 = before["DA"], after["DA"], before["SP"], after["SP"]
    if da1 is None:
        return "no held-out pair with different gold could be compared"
    if da0 is not None and da1 <= da0 + min_gain:
        return f"held-out DA did not rise ({da0:.3f} -> {da1:.3f})"
    if sp0 is not None and sp1 is not None and sp1 < sp0 - max_sp_drop:
        return f"held-out SP fell too far ({sp0:.3f} -> {sp1:.3f}, max drop {max_sp_drop})"
    return None


def _proposer(judge: dict[str, Any]) -> Callable[[list[Message]], str | None]:
    from rewardplug_rubric.judge import RubricJudge

    client = RubricJudge(judge)
    # small local models keep to the format when the reply is started for them (as the rubric
    # source does for the transformers backend); remote servers may not continue a prefill
    prefill = "CRITERION:" if judge.get("backend", "transformers") == "transformers" else ""

    def ask(messages: list[Message]) -> str | None:
        if prefill:
            messages = [*messages, {"role": "assistant", "content": prefill}]
        [[completion]] = client.complete([messages], 1, [max(client.max_tokens, 60)])
        return prefill + completion.text if completion.ok else None

    return ask
