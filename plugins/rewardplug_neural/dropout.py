"""Monte Carlo dropout control: which dropout sites exist, when they fire, and at what rate.

:func:`prepare` rewires a loaded Hugging Face model once:

* every ``nn.Dropout`` becomes an :class:`MCDropout` site that is the identity unless the
  controller is *sampling*; the model itself stays in eval mode throughout, so normalization
  layers, caches and everything else keep their inference behaviour;
* attention-probability dropout, which transformers applies functionally inside the attention
  function (``dropout=0.0 if not self.training``), is routed through a registered attention
  implementation that delegates to the original one (sdpa, eager, ...) unless sampling;
* with ``dropout_rate`` set, every site gets that rate, and layers or heads without any dropout
  module (Llama/Qwen-style reward models) get dropout injected on their sublayer outputs (the
  attention and MLP outputs, before the residual add: BERT's "hidden dropout" position) and on the
  classification head's input.

Masks come from :mod:`rewardplug_neural.masks` (keyed per row), so draws do not depend on the batch.
Each site has a depth (transformer layer index; -1 for embeddings, ``n_layers`` for the head),
which is how ``mc_layers: N`` restricts sampling to the top N layers and the head.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from rewardplug_neural.masks import dropout_by_key

__all__ = ["MCController", "prepare"]

_ATTN_RATE_KEYS = (
    "attention_probs_dropout_prob",
    "attention_dropout",
    "attn_pdrop",
    "attn_dropout",
)
_REGISTER_LOCK = threading.Lock()


@dataclass
class _State:
    active: bool = False
    keys: Any = None  # int64 tensor, one mask key per row
    min_depth: int = -1


@dataclass
class MCController:
    """The MC-dropout switchboard of one prepared model (see the module docstring)."""

    model: Any
    layers_parent: Any
    layers_attr: str
    n_layers: int
    sites: list[dict[str, Any]] = field(default_factory=list)
    site_modules: list[Any] = field(default_factory=list)
    attention_rate: float = 0.0
    attention_routed: bool = False
    state: _State = field(default_factory=_State)

    @property
    def layers(self) -> Any:
        """The model's stack of transformer layers (an ``nn.ModuleList``)."""
        return getattr(self.layers_parent, self.layers_attr)

    def max_rate(self, min_depth: int = -1) -> float:
        """The largest dropout rate among sites that sampling from ``min_depth`` would use."""
        rates = [s["rate"] for s in self.sites if s["depth"] >= min_depth]
        if self.attention_routed:
            rates.append(self.attention_rate)
        return max(rates, default=0.0)

    def summary(self) -> dict[str, Any]:
        """Counts and rates of the dropout sites, for logs and ``Score.detail``."""
        kinds: dict[str, list[float]] = {}
        for s in self.sites:
            kinds.setdefault(s["kind"], []).append(s["rate"])
        out = {k: {"sites": len(v), "rates": sorted(set(v))} for k, v in kinds.items()}
        if self.attention_routed:
            out["attention_probs"] = {"sites": self.n_layers, "rates": [self.attention_rate]}
        return out

    @contextlib.contextmanager
    def sampling(self, keys: Any, min_depth: int = -1) -> Iterator[None]:
        """Dropout on (sites at depth >= ``min_depth``) with one mask key per batch row.

        On exit, even after an exception, sampling is switched off and the model is back in
        eval mode.
        """
        if self.state.active:
            raise RuntimeError("MC dropout sampling is already active on this model")
        self.state = _State(True, keys, min_depth)
        try:
            yield
        finally:
            self.state = _State()
            self.model.eval()


@functools.cache
def _mc_dropout_class() -> type:
    import torch

    class MCDropout(torch.nn.Module):
        """A dropout site: identity unless its controller samples at this site's depth."""

        _rp_controller: MCController  # set with object.__setattr__: not a submodule

        def __init__(self, controller: MCController, site: int, depth: int, p: float, kind: str):
            super().__init__()
            self.site, self.depth, self.p, self.kind = site, depth, float(p), kind
            object.__setattr__(self, "_rp_controller", controller)  # not a submodule

        def forward(self, x: Any) -> Any:
            st = self._rp_controller.state
            if not st.active or self.depth < st.min_depth or self.p <= 0.0:
                return x
            return dropout_by_key(x, self.p, st.keys, self.site)

        def extra_repr(self) -> str:
            return f"p={self.p}, depth={self.depth}, kind={self.kind}"

    return MCDropout


def _is_dropout(module: Any) -> bool:
    import torch

    if isinstance(module, torch.nn.Dropout):
        return True
    # e.g. DeBERTa's StableDropout in older transformers
    return type(module).__name__.endswith("Dropout") and hasattr(module, "drop_prob")


def _find_layers(base: Any) -> tuple[Any, str, Any]:
    """The largest ``nn.ModuleList`` of same-class blocks: the transformer layer stack."""
    import torch

    best: tuple[int, str] | None = None
    for name, module in base.named_modules():
        uniform = isinstance(module, torch.nn.ModuleList) and len({type(m) for m in module}) == 1
        if uniform:
            size = sum(p.numel() for p in module.parameters())
            if best is None or size > best[0]:
                best = (size, name)
    if best is None or not best[1]:
        raise ValueError(f"cannot find the transformer layers of {type(base).__name__}")
    parent_name, _, attr = best[1].rpartition(".")
    parent = base.get_submodule(parent_name) if parent_name else base
    return parent, attr, getattr(parent, attr)


def _site_kind(depth: int, n_layers: int, owner_class: str, leaf: str) -> str:
    """A label for a dropout site (for summaries): embedding, attention, hidden or head."""
    if depth < 0:
        return "embedding"
    if depth >= n_layers:
        return "head"
    if "attn" in leaf or "attention" in leaf:
        return "attention"
    if owner_class.endswith("Attention") and "resid" not in leaf:
        return "attention"  # e.g. BERT's attention-probability dropout (rate holder)
    return "hidden"


def _config_attention_rate(config: Any) -> float:
    for key in _ATTN_RATE_KEYS:
        value = getattr(config, key, None)
        if isinstance(value, int | float):
            return float(value)
    return 0.0


def prepare(model: Any, dropout_rate: float | None) -> MCController:
    """Rewire ``model`` (in place) for MC dropout and return its controller.

    ``dropout_rate`` None keeps the model's own rates; a number sets every site to it and injects
    sites where the architecture has none.
    """
    model.eval()
    base = model.base_model
    parent, attr, layers = _find_layers(base)
    ctrl = MCController(model, parent, attr, len(layers))
    cls = _mc_dropout_class()
    depth_of: dict[int, int] = {}
    for i, layer in enumerate(layers):
        for m in layer.modules():
            depth_of[id(m)] = i
            m._rp_depth = i  # read by the attention function
            object.__setattr__(m, "_rp_controller", ctrl)
    base_ids = {id(m) for m in base.modules()}

    def depth(m: Any) -> int:
        if id(m) in depth_of:
            return depth_of[id(m)]
        return -1 if id(m) in base_ids else ctrl.n_layers

    # 1. Replace existing dropout modules by sites.
    targets = [(n, m) for n, m in model.named_modules() if n and _is_dropout(m)]
    for name, old in targets:
        p = getattr(old, "p", getattr(old, "drop_prob", 0.0))
        rate = float(p if dropout_rate is None else dropout_rate)
        d = depth(old)
        owner_name, _, leaf = name.rpartition(".")
        owner = model.get_submodule(owner_name) if owner_name else model
        kind = _site_kind(d, ctrl.n_layers, type(owner).__name__, leaf)
        site = cls(ctrl, len(ctrl.sites), d, rate, kind)
        setattr(owner, leaf, site)
        ctrl.site_modules.append(site)
        ctrl.sites.append({"name": name, "kind": kind, "depth": d, "rate": rate})

    # 2. Inject where the architecture has no dropout at all (only when a rate is given).
    if dropout_rate is not None and dropout_rate > 0:
        _inject(model, ctrl, cls, layers, base, float(dropout_rate))

    # 3. Route functional attention-probability dropout through us.
    ctrl.attention_rate = float(
        _config_attention_rate(model.config) if dropout_rate is None else dropout_rate
    )
    ctrl.attention_routed = _route_attention(model)
    return ctrl


def _inject(model: Any, ctrl: MCController, cls: type, layers: Any, base: Any, rate: float) -> None:
    def add_site(name: str, d: int, kind: str) -> Any:
        site = cls(ctrl, len(ctrl.sites), d, rate, kind)
        ctrl.sites.append({"name": name, "kind": kind, "depth": d, "rate": rate, "injected": True})
        ctrl.site_modules.append(site)
        return site

    for i, layer in enumerate(layers):
        if any(isinstance(m, cls) for m in layer.modules()):
            continue
        for child_name, child in layer.named_children():
            if "norm" in type(child).__name__.lower() or not any(True for _ in child.parameters()):
                continue
            site = add_site(f"{ctrl.layers_attr}.{i}.{child_name}:output", i, "hidden")
            child.register_forward_hook(_output_hook(site))
    head = [(n, c) for n, c in model.named_children() if c is not base]
    if head and not any(isinstance(m, cls) for _, c in head for m in c.modules()):
        for name, child in head:
            if any(True for _ in child.parameters()):
                site = add_site(f"{name}:input", ctrl.n_layers, "head")
                child.register_forward_pre_hook(_input_hook(site))


def _output_hook(site: Any) -> Any:
    def hook(module: Any, args: Any, output: Any) -> Any:
        if isinstance(output, tuple):
            return (site(output[0]), *output[1:])
        return site(output)

    return hook


def _input_hook(site: Any) -> Any:
    def hook(module: Any, args: Any) -> Any:
        return (site(args[0]), *args[1:]) if args else None

    return hook


def _route_attention(model: Any) -> bool:
    """Switch the model to a wrapper attention implementation; False if it cannot be switched."""
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS

    original = getattr(model.config, "_attn_implementation", None) or "eager"
    name = f"rewardplug_mc_{original}"
    with _REGISTER_LOCK:
        if name not in AttentionInterface._global_mapping:
            from rewardplug_neural.attention import make_attention

            AttentionInterface.register(name, make_attention(original))
            mask_fn = ALL_MASK_ATTENTION_FUNCTIONS._global_mapping.get(original)
            if mask_fn is None:
                mask_fn = ALL_MASK_ATTENTION_FUNCTIONS._global_mapping["eager"]
            # transformers annotates its registry's values as `function`, not as a Callable
            ALL_MASK_ATTENTION_FUNCTIONS.register(name, mask_fn)  # type: ignore[arg-type]
    try:
        model.set_attn_implementation(name)
    except Exception:
        return False
    return getattr(model.config, "_attn_implementation", None) == name
