"""An attention implementation that adds keyed Monte Carlo dropout to attention probabilities.

Registered with transformers' ``AttentionInterface`` under ``rewardplug_mc_<original>``. Outside
sampling (and in layers below ``mc_layers``) it calls the original implementation unchanged, so
deterministic scores are exactly the model's own. While sampling it computes attention eagerly
(softmax of scaled scores, then dropout with per-row keyed masks, then the weighted sum), because
fused kernels draw dropout masks from the global generator.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rewardplug_neural.masks import dropout_by_key, keep_mask

__all__ = ["eager_attention", "make_attention", "repeated"]

_ATTN_SITE_BASE = 1 << 20
#: score elements per chunk of rows in :func:`eager_attention` (4 MB of float32)
_CHUNK_ELEMENTS = 1 << 20


def _original(name: str) -> Callable[..., Any]:
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

    if name in ALL_ATTENTION_FUNCTIONS._global_mapping:
        # transformers annotates its registry's values as `function`, not as a Callable
        return ALL_ATTENTION_FUNCTIONS._global_mapping[name]  # type: ignore[return-value]
    return eager_attention


def make_attention(original: str) -> Callable[..., Any]:
    """The wrapper attention function for a model whose implementation was ``original``."""
    fallback: list[Callable[..., Any]] = []

    def attention(
        module: Any, query: Any, key: Any, value: Any, attention_mask: Any, **kwargs: Any
    ) -> Any:
        if not fallback:
            fallback.append(_original(original))
        ctrl = getattr(module, "_rp_controller", None)
        depth = getattr(module, "_rp_depth", None)
        st = ctrl.state if ctrl is not None else None
        sampling = (
            ctrl is not None
            and st is not None
            and st.active
            and depth is not None
            and depth >= st.min_depth
            and ctrl.attention_rate > 0.0
        )
        if not sampling:
            return fallback[0](module, query, key, value, attention_mask, **kwargs)
        assert ctrl is not None and st is not None and depth is not None  # implied by sampling
        if kwargs.get("softcap") is not None or kwargs.get("position_bias") is not None:
            # Exotic attention: use the original with its own (global-generator) dropout.
            kwargs["dropout"] = ctrl.attention_rate
            return fallback[0](module, query, key, value, attention_mask, **kwargs)
        return eager_attention(
            module,
            query,
            key,
            value,
            attention_mask,
            scaling=kwargs.get("scaling"),
            is_causal=kwargs.get("is_causal"),
            rate=ctrl.attention_rate,
            keys=st.keys,
            site=_ATTN_SITE_BASE + depth,
            copies=getattr(module, "_rp_copies", 1),
        )

    return attention


def eager_attention(
    module: Any,
    query: Any,
    key: Any,
    value: Any,
    attention_mask: Any,
    scaling: float | None = None,
    is_causal: bool | None = None,
    rate: float = 0.0,
    keys: Any = None,
    site: int = 0,
    copies: int = 1,
    **_: Any,
) -> tuple[Any, None]:
    """Plain attention (bool or additive masks, causal when unmasked, GQA) with keyed dropout.

    ``copies``: the rows may come in runs of that many copies of one input (the K copies that
    enter ``mc_layers``' first sampling layer). When the queries, keys and mask rows really are
    copies, the scores and their softmax are computed once per input and only the dropout and
    the weighted sum per copy: the same numbers, K times less of that work.
    """
    import torch

    groups = getattr(module, "num_key_value_groups", 1) or 1
    if groups > 1:
        key = key.repeat_interleave(groups, dim=1)
        value = value.repeat_interleave(groups, dim=1)
    scale = scaling if scaling is not None else query.shape[-1] ** -0.5
    # scale q (rows x heads x L x d) rather than the scores (rows x heads x L x L): cheaper
    query = query * scale
    key_t = key.transpose(2, 3)
    rows, q_len, k_len = query.shape[0], query.shape[2], key.shape[2]
    dropped = keys is not None and rate > 0.0
    share = (
        copies > 1
        and dropped
        and repeated(query, copies)
        and repeated(key, copies)
        and (
            attention_mask is None
            or attention_mask.shape[0] == 1
            or repeated(attention_mask, copies)
        )
    )
    every = copies if share else 1  # score rows: every copies-th row of a chunk
    # The (rows, heads, L, L) scores, probabilities and mask hashes are the big temporaries: made
    # for a few rows at a time they stay in cache and are reused by the allocator, instead of
    # hundreds of MB written once (page faults, memory bandwidth). Rows are independent and the
    # masks are keyed per row, so chunking changes nothing but the speed.
    step = max(1, _CHUNK_ELEMENTS // max(1, query.shape[1] * q_len * k_len))
    if share:  # whole runs of copies per chunk
        step = max(copies, step - step % copies)
    out = torch.empty(
        (rows, query.shape[1], q_len, value.shape[-1]), dtype=query.dtype, device=query.device
    )
    for start in range(0, rows, step):
        stop = min(rows, start + step)
        scores = torch.matmul(query[start:stop:every], key_t[start:stop:every])
        if attention_mask is not None:
            mask = (
                attention_mask if attention_mask.shape[0] == 1 else attention_mask[start:stop:every]
            )
            if mask.dtype == torch.bool:
                scores.masked_fill_(~mask, torch.finfo(scores.dtype).min)
            else:
                scores.add_(mask[..., :k_len])
        else:
            causal = is_causal if is_causal is not None else getattr(module, "is_causal", False)
            if causal and q_len > 1:
                allowed = torch.ones(q_len, k_len, dtype=torch.bool, device=scores.device).tril(
                    k_len - q_len
                )
                scores.masked_fill_(~allowed, torch.finfo(scores.dtype).min)
        if scores.dtype == torch.float32:  # a dtype argument would copy the scores first
            probs = torch.softmax(scores, dim=-1)
        else:
            probs = torch.softmax(scores, dim=-1, dtype=torch.float32).to(query.dtype)
        del scores
        if share:  # each copy's own mask on the shared probabilities (x 0 or x 1: exact)
            keep = keep_mask(tuple(probs.shape[1:]), rate, keys[start:stop], site, probs.device)
            probs = (keep.unflatten(0, (-1, copies)) * probs.unsqueeze(1)).flatten(0, 1)
        elif dropped:
            probs = dropout_by_key(probs, rate, keys[start:stop], site, rescale=False, inplace=True)
        torch.matmul(probs, value[start:stop], out=out[start:stop])
    if dropped:  # the 1/(1-p) of inverted dropout, applied to the smaller tensor
        out.mul_(1.0 / (1.0 - rate))
    out = out.transpose(1, 2).contiguous()
    return out, None


def repeated(x: Any, copies: int) -> bool:
    """Whether the rows of ``x`` come in runs of ``copies`` identical rows."""
    import torch

    if x.shape[0] % copies:
        return False
    grouped = x.unflatten(0, (-1, copies))
    return torch.equal(grouped, grouped[:, :1].expand_as(grouped))
