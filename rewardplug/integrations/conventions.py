"""Trainer conventions the front ends share: which split names mean evaluation, and which end
markers chat templates leave at the end of a decoded response.

Kept free of imports so that the CLI can show them in ``--help`` without loading anything.
"""

from __future__ import annotations

__all__ = ["DEFAULT_STRIP_SUFFIXES", "EVAL_SPLITS", "is_eval_split"]

#: ``split`` values that mark an evaluation sample (verl's preprocessing scripts write ``train`` /
#: ``test`` in ``extra_info.split``; OpenRLHF labels may carry the same key)
EVAL_SPLITS = frozenset({"test", "eval", "evaluation", "val", "valid", "validation", "dev"})

#: end-of-turn / end-of-sequence texts of common chat templates (ChatML/Qwen, Llama 3, Llama 2 and
#: Mistral, GPT-2 style, Gemma), cut from the end of a response before scoring
DEFAULT_STRIP_SUFFIXES: tuple[str, ...] = (
    "<|im_end|>",
    "<|eot_id|>",
    "</s>",
    "<|endoftext|>",
    "<end_of_turn>",
)


def is_eval_split(value: object) -> bool:
    """Whether a ``split`` value names an evaluation phase (case and spaces ignored)."""
    return isinstance(value, str) and value.strip().lower() in EVAL_SPLITS
