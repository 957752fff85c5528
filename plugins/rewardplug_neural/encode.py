"""Turning samples into token ids: chat template or sentence pair, truncation, length buckets.

A reward model sees ``(prompt, response)`` the way it was trained: through the tokenizer's chat
template when it has one (decoder RMs such as Skywork-Reward), otherwise as a sentence pair
(``[CLS] prompt [SEP] response [SEP]`` for BERT/DeBERTa RMs). Sequences longer than
``max_length`` are truncated so that the *response* survives: the prompt loses its beginning first.
What was cut is reported per sample (``detail["truncation"]``) rather than silently hidden.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Encoded", "buckets", "collate", "encode_pair", "encode_text", "has_chat_template"]


@dataclass
class Encoded:
    """Token ids for one input, plus what truncation did to it."""

    input_ids: list[int]
    token_type_ids: list[int] | None = None
    mode: str = "text"
    original_tokens: int = 0
    truncated: str | None = None  # None, "prompt", "prompt+response", "text"
    extra: dict[str, Any] = field(default_factory=dict)

    def detail(self) -> dict[str, Any]:
        """What goes into ``Score.detail`` about this input's tokens."""
        out: dict[str, Any] = {"tokens": len(self.input_ids), "encoding": self.mode}
        if self.truncated:
            out["truncation"] = {
                "part": self.truncated,
                "original_tokens": self.original_tokens,
                "kept_tokens": len(self.input_ids),
                "dropped_tokens": self.original_tokens - len(self.input_ids),
            }
        return out


def has_chat_template(tokenizer: Any) -> bool:
    """True when the tokenizer carries a chat template (decoder-style reward models)."""
    return bool(getattr(tokenizer, "chat_template", None))


def _messages(prompt: str | list[dict[str, Any]], response: str) -> list[dict[str, Any]]:
    history = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)
    return [*history, {"role": "assistant", "content": response}]


def encode_chat(tokenizer: Any, prompt: Any, response: str, max_length: int) -> Encoded:
    """Render (prompt, response) with the chat template; keep the *end* when too long."""
    text = tokenizer.apply_chat_template(_messages(prompt, response), tokenize=False)
    ids = list(tokenizer(text, add_special_tokens=False)["input_ids"])
    enc = Encoded(ids, None, "chat_template", len(ids))
    if len(ids) > max_length:
        # The score is read at the last token, so keep the tail; keep a leading BOS as trained.
        bos = getattr(tokenizer, "bos_token_id", None)
        head = [ids[0]] if bos is not None and ids and ids[0] == bos else []
        enc.input_ids = head + ids[len(ids) - (max_length - len(head)) :]
        enc.truncated = (
            "prompt" if _response_fits(tokenizer, response, max_length) else "prompt+response"
        )
    return enc


def _response_fits(tokenizer: Any, response: str, max_length: int) -> bool:
    return len(tokenizer(response, add_special_tokens=False)["input_ids"]) < max_length - 8


def encode_pair(tokenizer: Any, prompt_text: str, response: str, max_length: int) -> Encoded:
    """Sentence-pair encoding; the prompt loses its start first, the response its end last."""
    full = tokenizer(prompt_text, response)
    enc = Encoded(list(full["input_ids"]), _types(full), "pair", len(full["input_ids"]))
    if len(enc.input_ids) <= max_length:
        return enc
    old_side = tokenizer.truncation_side
    try:
        tokenizer.truncation_side = "left"  # the end of the prompt is next to the response
        cut = tokenizer(prompt_text, response, truncation="only_first", max_length=max_length)
        enc.truncated = "prompt"
    except Exception:  # the response alone does not fit: cut both, response from its end
        tokenizer.truncation_side = "right"
        cut = tokenizer(prompt_text, response, truncation="longest_first", max_length=max_length)
        enc.truncated = "prompt+response"
    finally:
        tokenizer.truncation_side = old_side
    enc.input_ids, enc.token_type_ids = list(cut["input_ids"]), _types(cut)
    return enc


def encode_text(tokenizer: Any, text: str, max_length: int) -> Encoded:
    """A single text (sentence encoders); cut at ``max_length`` tokens from the end."""
    full = tokenizer(text)
    enc = Encoded(list(full["input_ids"]), _types(full), "text", len(full["input_ids"]))
    if len(enc.input_ids) > max_length:
        cut = tokenizer(text, truncation=True, max_length=max_length)
        enc.input_ids, enc.token_type_ids, enc.truncated = (
            list(cut["input_ids"]),
            _types(cut),
            "text",
        )
    return enc


def _types(batch: Any) -> list[int] | None:
    types = batch.get("token_type_ids") if hasattr(batch, "get") else None
    return list(types) if types is not None else None


def buckets(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Indices grouped into batches of similar length (less padding), longest first.

    Longest first so that an out-of-memory error, if any, happens on the first batch.
    """
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def collate(encoded: Sequence[Encoded], pad_id: int, device: Any) -> dict[str, Any]:
    """Right-padded tensors (right padding keeps real tokens' positions, hence dropout masks)."""
    import torch

    width = max(len(e.input_ids) for e in encoded)
    ids = torch.full((len(encoded), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(encoded), width), dtype=torch.long)
    use_types = all(e.token_type_ids is not None for e in encoded)
    types = torch.zeros((len(encoded), width), dtype=torch.long) if use_types else None
    for row, e in enumerate(encoded):
        n = len(e.input_ids)
        ids[row, :n] = torch.tensor(e.input_ids, dtype=torch.long)
        mask[row, :n] = 1
        if types is not None:
            types[row, :n] = torch.tensor(e.token_type_ids, dtype=torch.long)
    batch = {"input_ids": ids.to(device), "attention_mask": mask.to(device)}
    if types is not None:
        batch["token_type_ids"] = types.to(device)
    return batch
