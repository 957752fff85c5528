"""Reward functions the compose tests use through ``use: python`` (real import paths)."""

from __future__ import annotations

import re

NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def reference_numbers(prompts, completions, reference):
    """Share of the numbers a (step) text states that also occur in the reference solution, as
    three draws a little apart; None (abstain) for a text without numbers."""
    out = []
    for text, ref in zip(completions, reference, strict=True):
        found = NUMBER.findall(text)
        if not found:
            out.append(None)
            continue
        known = set(NUMBER.findall(ref or ""))
        share = sum(n in known for n in found) / len(found)
        out.append([share - 0.05, share, share + 0.05])
    return out


def length(prompts, completions):
    """Characters of the text, one number."""
    return [float(len(c)) for c in completions]


def half_length(prompts, completions):
    """Half the characters, as two draws a unit apart."""
    return [[len(c) / 2 - 0.5, len(c) / 2 + 0.5] for c in completions]


def fragile(prompts, completions):
    """Raises on any batch with a response that says 'boom'."""
    if any("boom" in c for c in completions):
        raise RuntimeError("boom inside")
    return [1.0 for _ in completions]
