"""Reward functions used by the core tests through ``use: python`` (real import paths)."""

from __future__ import annotations

CALLS: list[int] = []


def exact_match(prompts, completions, gold, **kwargs):
    """TRL-style batch function: 1.0 for the gold answer, 0.0 otherwise."""
    CALLS.append(len(completions))
    return [1.0 if c.strip() == g else 0.0 for c, g in zip(completions, gold, strict=True)]


def noisy(prompts, completions, quality, **kwargs):
    """Returns draws: the sample's quality with a little spread, None when quality is missing."""
    out = []
    for q in quality:
        out.append(None if q is None else [q - 0.1, q, q + 0.1])
    return out


def strict_signature(prompts, completions):
    """Accepts no columns: columns must not be passed to it."""
    return [float(len(c)) for c in completions]


def fragile(prompts, completions, **kwargs):
    """Fails the whole batch if any completion says 'boom'."""
    if any("boom" in c for c in completions):
        raise RuntimeError("boom inside")
    return [0.5 for _ in completions]


def nan_for_empty(prompts, completions, **kwargs):
    return [float("nan") if not c else 1.0 for c in completions]


def one_sample(prompt, completion, gold=None):
    """Per-sample function (``batched: false``)."""
    return 1.0 if completion == gold else 0.0


def wrong_length(prompts, completions, **kwargs):
    return [1.0]


def seeded_draws(prompts, completions, quality, **kwargs):
    """Eight draws around the sample's quality, seeded by the completion alone (batch-independent)."""
    import hashlib

    import numpy as np

    out = []
    for c, q in zip(completions, quality, strict=True):
        seed = int.from_bytes(hashlib.blake2b(c.encode(), digest_size=8).digest(), "little")
        out.append((q + 0.3 * np.random.default_rng(seed).standard_normal(8)).tolist())
    return out


def given_draws(prompts, completions, draws, **kwargs):
    """The draws listed in the sample's ``draws`` column (any K, per sample)."""
    return [list(d) for d in draws]


def always_down(prompts, completions, **kwargs):
    """A backend that is not there: every call fails."""
    raise ConnectionError("connection refused: http://127.0.0.1:9/v1")


def interrupt_on_stop(prompts, completions, **kwargs):
    """Like Ctrl-C arriving while the batch holding a 'STOP' completion is scored."""
    if "STOP" in completions:
        raise KeyboardInterrupt
    return [1.0 for _ in completions]


def slow_length(prompts, completions, **kwargs):
    """A reward that takes a while per batch (so a run can be interrupted mid-way)."""
    import time

    time.sleep(0.05)
    return [float(len(c)) for c in completions]


def column_draws(prompts, completions, column, **columns):
    """Draws from the metadata column named ``column``; None (or a missing column) abstains."""
    values = columns.get(column) or [None] * len(completions)
    return [None if v is None else list(v) for v in values]
