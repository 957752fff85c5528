"""Configuration shared by the MC-dropout sources, and the lazily loaded model bundle."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import Field, field_validator

from rewardplug.source import SourceConfig
from rewardplug_neural.loading import check_device

__all__ = ["Loaded", "MCConfig"]


class MCConfig(SourceConfig):
    """Fields every Monte Carlo dropout source takes (``neural_rm``, ``embedding_similarity``)."""

    model: str
    """Local folder or Hugging Face hub id of the model."""
    mc_samples: int = Field(8, ge=1, le=4096)
    """K: stochastic forward passes per sample (``draws``); 1 disables MC dropout."""
    dropout_rate: float | None = Field(None, ge=0.0, lt=1.0)
    """None keeps the model's own dropout rates; a number sets every attention, hidden and
    classifier dropout site to it, injecting sites into models that have none (Llama-style)."""
    mc_layers: Literal["all"] | int = "all"
    """``all``: dropout in every layer. N: only the top N layers and the head are stochastic; the
    lower layers run once and their hidden states are reused for all K draws (an approximation)."""
    device: str = "auto"
    """``auto`` (CUDA if available, else CPU), ``cpu``, ``cuda``, ``cuda:N`` or ``mps``."""
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    """Weights and activations dtype."""
    batch_size: int = Field(16, ge=1)
    """Inputs per deterministic forward pass (batches are formed by similar length)."""
    mc_batch_rows: int | None = Field(None, ge=1)
    """Rows per stochastic forward pass (default batch_size x mc_samples: all K copies of a batch
    in one forward); halved automatically on a CUDA out-of-memory error."""
    max_length: int = Field(512, ge=8)
    """Tokens per input; longer inputs are truncated and the truncation reported in ``detail``."""
    seed: int = 0
    """Seed of the dropout masks. A sample's draws depend only on the seed, its content and the
    draw index, not on the rest of its batch."""

    @field_validator("mc_layers")
    @classmethod
    def _positive_layers(cls, value: Any) -> Any:
        if isinstance(value, int) and value < 1:
            raise ValueError("mc_layers must be 'all' or a positive number of top layers")
        return value

    @field_validator("device")
    @classmethod
    def _device_exists(cls, value: str) -> str:
        return check_device(value)


@dataclass
class Loaded:
    """A loaded model with its tokenizer, MC controller and engine (process-local, not pickled)."""

    model: Any
    tokenizer: Any
    controller: Any
    engine: Any
    device: Any
    extra: dict[str, Any] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
