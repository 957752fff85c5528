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

from rewardplug_neural.masks import dropout_by_key

__all__ = ["make_attention"]

_ATTN_SITE_BASE = 1 << 20


def _original(name: str) -> Callable[..., Any]:
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

    if name in ALL_ATTENTION_FUNCTIONS._global_mapping:
        return ALL_ATTENTION_FUNCTIONS._global_mapping[name]
    return eager_attention


def make_attention(original: str) -> Callable[..., Any]:
    """The wrapper attention function for a model whose implementation was ``original``."""
    fallback: list[Callable[..., Any]] = []

    def attention(
        module: Any, query: Any, key: Any, value: Any, attention_mask: Any, **kwargs: Any
    ):
        if not fallback:
            fallback.append(_original(original))
        ctrl = getattr(module, "_rp_controller", None)
        depth = getattr(module, "_rp_depth", None)
        st = ctrl.state if ctrl is not None else None
        sampling = (
            st is not None
            and st.active
            and depth is not None
            and depth >= st.min_depth
            and ctrl.attention_rate > 0.0
        )
        if not sampling:
            return fallback[0](module, query, key, value, attention_mask, **kwargs)
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
    **_: Any,
) -> tuple[Any, None]:
    """Plain attention (bool or additive masks, causal when unmasked, GQA) with keyed dropout."""
    import torch

    groups = getattr(module, "num_key_value_groups", 1) or 1
    if groups > 1:
        key = key.repeat_interleave(groups, dim=1)
        value = value.repeat_interleave(groups, dim=1)
    scale = scaling if scaling is not None else query.shape[-1] ** -0.5
    # scale q (rows x heads x L x d) rather than the scores (rows x heads x L x L): cheaper
    scores = torch.matmul(query * scale, key.transpose(2, 3))
    q_len, k_len = query.shape[2], key.shape[2]
    if attention_mask is not None:
        if attention_mask.dtype == torch.bool:
            scores = scores.masked_fill(~attention_mask, torch.finfo(scores.dtype).min)
        else:
            scores = scores + attention_mask[..., :k_len]
    else:
        causal = is_causal if is_causal is not None else getattr(module, "is_causal", False)
        if causal and q_len > 1:
            allowed = torch.ones(q_len, k_len, dtype=torch.bool, device=scores.device).tril(
                k_len - q_len
            )
            scores = scores.masked_fill(~allowed, torch.finfo(scores.dtype).min)
    probs = torch.softmax(scores, dim=-1, dtype=torch.float32).to(query.dtype)
    dropped = keys is not None and rate > 0.0
    if dropped:
        probs = dropout_by_key(probs, rate, keys, site, rescale=False, inplace=True)
    out = torch.matmul(probs, value)
    if dropped:  # the 1/(1-p) of inverted dropout, applied to the smaller tensor
        out.mul_(1.0 / (1.0 - rate))
    out = out.transpose(1, 2).contiguous()
    return out, None
