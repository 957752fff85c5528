"""A reward function the hack_check stack test uses through ``use: python`` (a real import)."""

from __future__ import annotations


def has_code(prompts, completions, **kwargs):
    """1.0 for a response with a fenced code block, else 0.0 (a stand-in for a test reward)."""
    return [1.0 if "```" in c else 0.0 for c in completions]
