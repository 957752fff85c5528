"""The ``transformers`` backend: a local chat model generating in-process (CPU or GPU).

``n`` draws come from one ``generate`` call (``num_return_sequences``); logprobs come from the
raw logits of each generated position. A final ``assistant`` message in ``messages`` is a prefill
that the model continues (its text is not repeated in the completion).
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from rewardplug_judge.backends.base import ChatRequest, Choice, Client, RawReply
from rewardplug_judge.backends.types import BackendConfig, TokenLogprob
from rewardplug_judge.retry import RequestRejected

__all__ = ["TransformersClient"]

# One model generates at a time; concurrent draws wait here rather than thrash the CPU.
_GENERATE_LOCK = threading.Lock()


class TransformersClient(Client):
    """Generates with a model loaded by :func:`rewardplug_judge.local_model.load_model`."""

    supports_n = True

    def __init__(self, config: BackendConfig):
        self.config = config

    async def request(self, request: ChatRequest) -> RawReply:
        return await asyncio.to_thread(self._generate, request)

    def _generate(self, request: ChatRequest) -> RawReply:
        import torch

        from rewardplug_judge.local_model import load_model

        if request.response_format is not None:
            raise RequestRejected("the transformers backend has no structured output")
        messages, n, temperature = request.messages, request.n, request.temperature
        max_tokens, top_logprobs = request.max_tokens, request.top_logprobs
        model, tok = load_model(self.config.model, self.config.gguf_file, self.config.device)
        enc = encode(tok, messages).to(model.device)
        prompt_len = int(enc["input_ids"].shape[1])
        limit = int(getattr(model.config, "max_position_embeddings", 0) or 0)
        if limit and prompt_len + max_tokens > limit:
            raise RequestRejected(
                f"prompt of {prompt_len} tokens + max_tokens {max_tokens} exceeds the model's "
                f"context of {limit} tokens"
            )
        sample = temperature > 0
        kwargs: dict[str, Any] = {
            "max_new_tokens": max_tokens,
            "do_sample": sample,
            "num_return_sequences": n if sample else 1,
            "return_dict_in_generate": True,
            "output_logits": bool(top_logprobs),
            "pad_token_id": tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id,
        }
        if sample:
            # Plain temperature sampling: the model's generation_config may set top_p/top_k.
            kwargs.update(temperature=temperature, top_p=1.0, top_k=0)
        else:
            kwargs.update(temperature=None, top_p=None, top_k=None)
        with _GENERATE_LOCK, torch.no_grad():
            torch.manual_seed(request.seed)
            out = None
            if sample and n > 1 and prompt_len > 1:
                out = _generate_shared_prefix(model, enc, n, kwargs)
            if out is None:
                out = model.generate(**enc, **kwargs)
        rows = out.sequences.shape[0]
        eos = {tok.eos_token_id, tok.pad_token_id} - {None}
        choices, generated = [], 0
        for i in range(n):
            row = i % rows  # greedy decoding returns one row for all n draws
            ids = out.sequences[row, prompt_len:].tolist()
            length = next((j for j, t in enumerate(ids) if t in eos), len(ids))
            finish = "stop" if length < len(ids) else "length"
            generated += length
            tokens = None
            if top_logprobs:
                tokens = []
                for step in range(length):
                    logp = torch.log_softmax(out.logits[step][row].float(), dim=-1)
                    values, idx = torch.topk(logp, top_logprobs)
                    top = {tok.decode([int(t)]): float(v) for v, t in zip(values, idx, strict=True)}
                    chosen = ids[step]
                    text = tok.decode([chosen])
                    tokens.append(
                        TokenLogprob(text, float(logp[chosen]), {**top, text: float(logp[chosen])})
                    )
            text = tok.decode(ids[:length], skip_special_tokens=True)
            choices.append(Choice(text, finish, tokens))
        return RawReply(choices, prompt_tokens=prompt_len, completion_tokens=generated)


def encode(tok: Any, messages: list[dict[str, Any]]) -> Any:
    """The chat prompt's token ids (a final ``assistant`` message is continued, not closed).

    A message's text never becomes a control token: every special token of the tokenizer
    (``<|im_start|>``, ``<|eot_id|>``, ``</s>``, ...) written inside a message is broken with a
    zero-width space first, so a response cannot open a turn of its own in the judge's chat
    (issue 26). Only the chat template itself emits control tokens.
    """
    prefill = bool(messages) and messages[-1].get("role") == "assistant"
    specials = sorted(_special_tokens(tok), key=len, reverse=True)
    safe = [{**m, "content": _break(str(m.get("content") or ""), specials)} for m in messages]
    return tok.apply_chat_template(
        safe,
        add_generation_prompt=not prefill,
        continue_final_message=prefill,
        return_tensors="pt",
        return_dict=True,
    )


def _special_tokens(tok: Any) -> set[str]:
    found = {t for t in getattr(tok, "all_special_tokens", []) or [] if len(t) > 1}
    for added in (getattr(tok, "added_tokens_decoder", None) or {}).values():
        if getattr(added, "special", False) and len(str(added)) > 1:
            found.add(str(getattr(added, "content", added)))
    return found


def _break(text: str, specials: list[str]) -> str:
    for token in specials:
        if token in text:
            text = text.replace(token, token[0] + "\u200b" + token[1:])
    return text


def _generate_shared_prefix(model: Any, enc: Any, n: int, kwargs: dict[str, Any]) -> Any:
    """``n`` sampled continuations that share one forward pass over the prompt.

    ``num_return_sequences`` would run the (long) judge prompt n times; here the prompt's KV
    cache is computed once and repeated n times, so only the few generated tokens cost n-fold.
    Returns None when the model's cache cannot be repeated (then the plain path is used).
    """
    import torch

    ids = enc["input_ids"]
    prefix = model(input_ids=ids[:, :-1], use_cache=True)
    cache = prefix.past_key_values
    repeat = getattr(cache, "batch_repeat_interleave", None)
    if repeat is None:
        return None
    repeat(n)
    expanded = ids.repeat(n, 1)
    mask = torch.ones_like(expanded)
    return model.generate(
        input_ids=expanded,
        attention_mask=mask,
        past_key_values=cache,
        **{**kwargs, "num_return_sequences": 1},
    )
