"""Reward functions the transform tests use through ``use: python`` (real import paths)."""

from __future__ import annotations

CALLS: list[list[str]] = []


def length_score(prompts, completions):
    """One number per response: its length in characters (and every call is recorded)."""
    CALLS.append(list(completions))
    return [float(len(c)) for c in completions]


def length_draws(prompts, completions):
    """Three draws around the length, or an abstention for a response that says 'skip'."""
    return [None if "skip" in c else [len(c) - 0.5, len(c), len(c) + 0.5] for c in completions]


def fails_on_references(prompts, completions, **columns):
    """Scores responses but raises on a batch that holds a reference (text 'REF')."""
    if any(c == "REF" for c in completions):
        raise RuntimeError("cannot score references")
    return [float(len(c)) for c in completions]
