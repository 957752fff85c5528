"""The built-in transforms: one function and one config model each.

Registered through ``register_transforms`` by the core ``rules`` plugin
(:mod:`rewardplug.builtin_rules`), exactly as a third-party transform is:

* ``par`` -- preference as reward, ``sigmoid((r - r_ref) / tau)``, where ``r_ref`` is the same
  source's score of the sample's ``reference`` response (Fu et al., 2025, "Reward Shaping to
  Mitigate Reward Hacking in RLHF"): bounded, centred on the reference, saturating above it;
* ``log_sigmoid`` -- ``log sigmoid((r - r_ref) / tau)`` of the same centred value;
* ``clip`` -- ``min(max(r, min), max)``;
* ``scale`` -- ``a * r + b``;
* ``overlong`` -- DAPO's soft overlong punishment (Yu et al., 2025): ``r + penalty * p(n)``
  with ``n`` the response's token count, ``p = 0`` up to ``max_tokens - cache_tokens``, falling
  linearly to ``-1`` at ``max_tokens`` and ``-1`` beyond.

The plain array functions (:func:`par`, :func:`clip`, ...) are kept apart from the transform
functions (:func:`apply_par`, ...) that the chain calls with a config and a context.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, PrivateAttr, model_validator

from rewardplug.rules import TransformConfig, TransformContext

if TYPE_CHECKING:  # numpy is imported where a transform runs: a stack loads without it
    import numpy as np

__all__ = [
    "KINDS",
    "ClipSpec",
    "LogSigmoidSpec",
    "OverlongSpec",
    "ParSpec",
    "ScaleSpec",
    "clip",
    "load_tokenizer",
    "log_sigmoid",
    "overlong_penalty",
    "par",
    "scale",
]

#: the built-in transforms' names
KINDS = ("par", "log_sigmoid", "clip", "scale", "overlong")

# -- the functions ---------------------------------------------------------------------------


def par(x: np.ndarray, ref: float, tau: float) -> np.ndarray:
    """``sigmoid((x - ref) / tau)``, computed without overflow for any finite input."""
    import numpy as np

    z = (np.asarray(x, dtype=np.float64) - ref) / tau
    # 0.5 * (1 + tanh(z / 2)) is the logistic function and never overflows
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def log_sigmoid(x: np.ndarray, ref: float, tau: float) -> np.ndarray:
    """``log sigmoid((x - ref) / tau) = -log(1 + exp(-z))``, stable for large ``|z|``."""
    import numpy as np

    z = (np.asarray(x, dtype=np.float64) - ref) / tau
    return -np.logaddexp(0.0, -z)


def clip(x: np.ndarray, lo: float | None, hi: float | None) -> np.ndarray:
    """``x`` limited to ``[lo, hi]`` (an open side when None)."""
    import numpy as np

    return np.clip(
        np.asarray(x, dtype=np.float64),
        -np.inf if lo is None else lo,
        np.inf if hi is None else hi,
    )


def scale(x: np.ndarray, a: float, b: float) -> np.ndarray:
    """``a * x + b``."""
    import numpy as np

    return a * np.asarray(x, dtype=np.float64) + b


def overlong_penalty(n_tokens: int, max_tokens: int, cache_tokens: int) -> float:
    """DAPO's soft overlong punishment of a response of ``n_tokens`` tokens, in ``[-1, 0]``."""
    limit = max_tokens - cache_tokens
    if n_tokens <= limit:
        return 0.0
    if n_tokens <= max_tokens:
        return (limit - n_tokens) / cache_tokens
    return -1.0


# -- the config models -----------------------------------------------------------------------


class ParSpec(TransformConfig):
    """``{kind: par, tau: 1.0}``: ``sigmoid((r - r_ref) / tau)``; needs the sample's ``reference``."""

    needs_reference = True

    kind: Literal["par"]
    tau: float = Field(1.0, gt=0, allow_inf_nan=False, description="temperature, on r's scale")


class LogSigmoidSpec(TransformConfig):
    """``{kind: log_sigmoid, tau: 1.0}``: ``log sigmoid((r - r_ref) / tau)``; needs ``reference``."""

    needs_reference = True

    kind: Literal["log_sigmoid"]
    tau: float = Field(1.0, gt=0, allow_inf_nan=False, description="temperature, on r's scale")


class ClipSpec(TransformConfig):
    """``{kind: clip, min: 0, max: 1}``: limit the score to ``[min, max]`` (either may be left out)."""

    kind: Literal["clip"]
    min: float | None = Field(None, allow_inf_nan=False)
    max: float | None = Field(None, allow_inf_nan=False)

    @model_validator(mode="after")
    def _bounds(self) -> ClipSpec:
        if self.min is None and self.max is None:
            raise ValueError("clip needs `min`, `max` or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"clip min ({self.min}) is above max ({self.max})")
        return self


class ScaleSpec(TransformConfig):
    """``{kind: scale, a: 1.0, b: 0.0}``: ``a * r + b``."""

    kind: Literal["scale"]
    a: float = Field(1.0, allow_inf_nan=False)
    b: float = Field(0.0, allow_inf_nan=False)


class OverlongSpec(TransformConfig):
    """``{kind: overlong, max_tokens, cache_tokens, tokenizer, penalty}``: DAPO's soft overlong
    punishment added to the score (see :func:`overlong_penalty`)."""

    kind: Literal["overlong"]
    max_tokens: int = Field(gt=0, description="L_max: the longest response allowed")
    cache_tokens: int = Field(gt=0, description="L_cache: the soft band before max_tokens")
    #: ``whitespace`` counts words; anything else is a tokenizer folder (or hub name) loaded with
    #: transformers' ``AutoTokenizer.from_pretrained`` when the stack loads
    tokenizer: str = Field("whitespace", min_length=1)
    penalty: float = Field(1.0, ge=0, allow_inf_nan=False, description="the punishment at L_max")
    # the loaded tokenizer: not a setting, and not pickled (a copy loads its own on first use)
    _tokenizer: Any = PrivateAttr(None)

    @model_validator(mode="after")
    def _band(self) -> OverlongSpec:
        if self.cache_tokens > self.max_tokens:
            raise ValueError(
                f"overlong cache_tokens ({self.cache_tokens}) must not exceed "
                f"max_tokens ({self.max_tokens})"
            )
        return self

    def prepare(self) -> None:
        """Load the tokenizer now, so an unknown one fails when the stack loads."""
        if self.tokenizer != "whitespace":
            self.count_tokens("")

    def count_tokens(self, text: str) -> int:
        """Tokens in ``text``: words for ``whitespace``, else the tokenizer's ids (no specials)."""
        if self.tokenizer == "whitespace":
            return len(text.split())
        if self._tokenizer is None:
            self._tokenizer = load_tokenizer(self.tokenizer)
        return len(self._tokenizer(text, add_special_tokens=False)["input_ids"])

    def __getstate__(self) -> dict[Any, Any]:
        state = super().__getstate__()
        state["__pydantic_private__"] = {
            **(state.get("__pydantic_private__") or {}),
            "_tokenizer": None,
        }
        return state


def load_tokenizer(name: str) -> Any:
    """A transformers tokenizer, or a ``ValueError`` that names it and says what to do."""
    try:
        from transformers import AutoTokenizer
    except ImportError:
        raise ValueError(
            f"overlong tokenizer {name!r} needs transformers (pip install 'rewardplug[neural]'), "
            "or use tokenizer: whitespace"
        ) from None
    try:
        import transformers

        verbosity = transformers.logging.get_verbosity()
        transformers.logging.set_verbosity(logging.ERROR)
        try:
            return AutoTokenizer.from_pretrained(name)
        finally:
            transformers.logging.set_verbosity(verbosity)
    except Exception as exc:  # OSError, ValueError, HF hub errors: all mean "cannot load it"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(
            f"overlong: cannot load tokenizer {name!r} ({first}); give a local tokenizer folder "
            "or use tokenizer: whitespace"
        ) from None


# -- the transform functions (what the chain calls) -------------------------------------------


def apply_par(values: np.ndarray, config: ParSpec, context: TransformContext) -> np.ndarray:
    """``par`` on a response's (or its reference's) values, centred on the reference."""
    return par(values, context.reference or 0.0, config.tau)


def apply_log_sigmoid(
    values: np.ndarray, config: LogSigmoidSpec, context: TransformContext
) -> np.ndarray:
    """``log_sigmoid`` on the values, centred on the reference."""
    return log_sigmoid(values, context.reference or 0.0, config.tau)


def apply_clip(values: np.ndarray, config: ClipSpec, context: TransformContext) -> np.ndarray:
    """``clip`` of the values."""
    return clip(values, config.min, config.max)


def apply_scale(values: np.ndarray, config: ScaleSpec, context: TransformContext) -> np.ndarray:
    """``scale`` of the values."""
    return scale(values, config.a, config.b)


def apply_overlong(
    values: np.ndarray, config: OverlongSpec, context: TransformContext
) -> np.ndarray:
    """The overlong punishment of the text these values score (the response or its reference);
    the response's token count and shift are reported in the step's detail."""
    n = config.count_tokens(context.text)
    shift = config.penalty * overlong_penalty(n, config.max_tokens, config.cache_tokens)
    context.detail.update(tokens=n, penalty=shift)
    return values + shift
