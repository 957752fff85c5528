"""What the MC-dropout sources share: their config fields, the lazily loaded model bundle, and a
base class holding the loading and forward-pass scaffolding (``neural_rm``,
``embedding_similarity``)."""

from __future__ import annotations

import threading
from abc import abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from rewardplug import RewardSource, SourceConfig
from rewardplug_neural.encode import Encoded, collate
from rewardplug_neural.loading import check_device, check_model

if TYPE_CHECKING:
    from rewardplug_neural.engine import MCResult

__all__ = ["Loaded", "MCConfig", "MCSource"]


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
    """Rows per stochastic forward pass (default: batch_size x mc_samples on an accelerator, all K
    copies of a batch in one forward; batch_size on CPU); halved automatically on a CUDA
    out-of-memory error."""
    max_length: int = Field(512, ge=8)
    """Tokens per input; longer inputs are truncated and the truncation reported in ``detail``."""
    seed: int = 0
    """Seed of the dropout masks. A sample's draws depend only on the seed, its content and the
    draw index, not on the rest of its batch."""

    #: whether ``model`` must be a sequence-classification model (each source's Config sets it)
    classifier: ClassVar[bool] = False

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

    @model_validator(mode="after")
    def _model_usable(self) -> MCConfig:
        check_model(
            self.model,
            classifier=self.classifier,
            needs_dropout=self.mc_samples > 1 and self.dropout_rate is None,
        )
        return self


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


class MCSource(RewardSource):
    """Base of the MC-dropout sources: loads the model once per process, runs the engine.

    Subclasses implement :meth:`_build` (load their model and call :meth:`_assemble`) and
    ``score``; the loaded bundle is process-local (``transient``), so sources stay picklable.
    """

    Config: ClassVar[type[MCConfig]] = MCConfig
    transient = ("_loaded",)
    requires: ClassVar[dict[str, str]] = {
        "torch": "rewardplug[neural]",
        "transformers": "rewardplug[neural]",
    }
    config: MCConfig

    def __init__(self, config: Any = None, **options: Any):
        super().__init__(config, **options)
        self._loaded: Loaded | None = None

    def load(self) -> Loaded:
        """Load the model, tokenizer and MC-dropout machinery (once per process)."""
        if self._loaded is None:
            self._loaded = self._build()
        return self._loaded

    @abstractmethod
    def _build(self) -> Loaded:
        """Load this source's model and tokenizer and return :meth:`_assemble`'s bundle."""

    def _assemble(
        self,
        model: Any,
        tokenizer: Any,
        readout: Callable[[Any, dict[str, Any]], Any],
        **extra: Any,
    ) -> Loaded:
        """Prepare ``model``'s dropout sites and wrap it in an engine with ``readout``."""
        from rewardplug_neural.dropout import prepare
        from rewardplug_neural.engine import MCEngine

        ctrl = prepare(model, self.config.dropout_rate)
        engine = MCEngine(model, ctrl, readout)
        return Loaded(model, tokenizer, ctrl, engine, model.device, extra)

    def _forward(self, loaded: Loaded, encoded: Sequence[Encoded], keys: list[int]) -> MCResult:
        """Deterministic and MC readouts of one batch of encoded inputs (one mask key each)."""
        cfg = self.config
        batch = collate(encoded, loaded.tokenizer.pad_token_id, loaded.device)
        result: MCResult = loaded.engine.run(
            batch, keys, cfg.mc_samples, cfg.seed, cfg.mc_layers, self._rows_per_forward(loaded)
        )
        return result

    def _rows_per_forward(self, loaded: Loaded) -> int:
        cfg = self.config
        if cfg.mc_batch_rows:
            return cfg.mc_batch_rows
        if str(loaded.device).startswith("cpu"):
            # On CPU a forward of batch_size rows already fills the cores; K times as many rows
            # only makes temporaries that fall out of cache (measured: full MC 1.6x slower with
            # all K copies of a batch of 32 in one forward than with 32 rows per forward).
            return cfg.batch_size
        return cfg.batch_size * cfg.mc_samples

    def _mc_detail(self) -> dict[str, Any]:
        """The MC settings every score's ``detail`` reports."""
        return {"mc_samples": self.config.mc_samples, "mc_layers": self.config.mc_layers}

    def close(self) -> None:
        self._loaded = None
