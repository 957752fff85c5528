"""The built-in combine rules: one function and one config model each.

Registered through ``register_combiners`` by the core ``rules`` plugin
(:mod:`rewardplug.builtin_rules`), exactly as a third-party rule is. Every rule gets the sources'
aligned ``values`` (S, N, K) -- NaN where a source did not score the sample -- their ``weights``
(S,) and ``present`` (S, N, 1), and returns (N, K):

* ``weighted_sum``: ``sum_s w_s x_s``, rescaled so that an absent source's weight goes to the
  others (under ``on_abstain: renormalize``; otherwise every source is present);
* ``min``: the worst source per draw (the worst-case ensemble objective; weights only select
  which sources take part);
* ``mean_minus_var``: weighted mean minus ``lambda`` times the weighted variance across sources
  (the uncertainty-weighted ensemble objective of Coste et al., 2023).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import ConfigDict, Field

from rewardplug.rules import CombineConfig

if TYPE_CHECKING:  # numpy is imported where a rule runs: a stack loads without it
    import numpy as np

__all__ = [
    "MeanMinusVarConfig",
    "MinConfig",
    "WeightedSumConfig",
    "mean_minus_var",
    "minimum",
    "weighted_sum",
]


class WeightedSumConfig(CombineConfig):
    """``combine: weighted_sum`` (no settings)."""

    kind: Literal["weighted_sum"] = "weighted_sum"


class MinConfig(CombineConfig):
    """``combine: min`` (no settings)."""

    kind: Literal["min"] = "min"


class MeanMinusVarConfig(CombineConfig):
    """``combine: {kind: mean_minus_var, lambda: 1.0}`` (or ``combine: mean_minus_var`` with the
    stack's top-level ``lambda:``)."""

    model_config = ConfigDict(populate_by_name=True)

    kind: Literal["mean_minus_var"] = "mean_minus_var"
    lambda_: float = Field(
        1.0, alias="lambda", ge=0, allow_inf_nan=False, description="penalty on the variance"
    )


def weighted_sum(
    values: np.ndarray, weights: np.ndarray, present: np.ndarray, config: WeightedSumConfig
) -> np.ndarray:
    """``sum_s w_s x_s * (sum of all weights / sum of the present ones)``."""
    import numpy as np

    w = weights[:, None, None] * present
    total = sum(weights.tolist())  # summed as the stack's weights are, left to right
    out: np.ndarray = (w * np.where(present, values, 0.0)).sum(axis=0) * (total / w.sum(axis=0))
    return out


def minimum(
    values: np.ndarray, weights: np.ndarray, present: np.ndarray, config: MinConfig
) -> np.ndarray:
    """The lowest present source, draw by draw."""
    import numpy as np

    out: np.ndarray = np.where(present, values, np.inf).min(axis=0)
    return out


def mean_minus_var(
    values: np.ndarray, weights: np.ndarray, present: np.ndarray, config: MeanMinusVarConfig
) -> np.ndarray:
    """Weighted mean minus ``lambda`` times the weighted variance across the present sources."""
    import numpy as np

    w = weights[:, None, None] * present
    xz = np.where(present, values, 0.0)
    wsum = w.sum(axis=0)
    mean = (w * xz).sum(axis=0) / wsum
    var = (w * (xz - mean) ** 2).sum(axis=0) / wsum
    out: np.ndarray = mean - config.lambda_ * var
    return out
