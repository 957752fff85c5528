"""Reward functions used by the integration tests (through the ``python`` source).

This folder is on ``sys.path`` while pytest runs (rootdir-relative test modules), so stacks refer
to these as ``rp_test_rewards:<name>``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any


def length(completions: Sequence[str], **_: Any) -> list[float]:
    """The completion's length in characters (a deterministic, easy-to-predict score)."""
    return [float(len(c)) for c in completions]


def slow_length(completions: Sequence[str], delay: float = 0.2, **_: Any) -> list[float]:
    """Like :func:`length`, after sleeping ``delay`` seconds once per batch (a slow model)."""
    time.sleep(delay)
    return [float(len(c)) for c in completions]


def noisy_length(completions: Sequence[str], **_: Any) -> list[list[float]]:
    """Draws around the length: responses within 2 characters are not confidently different."""
    return [[len(c) - 1.0, float(len(c)), len(c) + 1.0] for c in completions]


def contains_reference(
    completions: Sequence[str], reference: Sequence[str | None], **_: Any
) -> list[float | None]:
    """1.0 when the reference occurs in the completion, 0.0 otherwise, None without reference."""
    return [
        None if r is None else float(r in c) for c, r in zip(completions, reference, strict=True)
    ]


#: prompts of every call to :func:`recording_length` (the TRL test checks the grouping)
CALLS: list[list[str]] = []


def recording_length(prompts: Sequence[str], completions: Sequence[str], **_: Any) -> list[float]:
    """Like :func:`length`, and records the prompts of each call."""
    CALLS.append(list(prompts))
    return [float(len(c)) for c in completions]


def broken(completions: Sequence[str], **_: Any) -> list[float]:
    """Always raises (a reward function with a bug)."""
    raise RuntimeError("this reward function is broken")
