"""A transform and a combine rule: each is one function plus its pydantic config model.

``threshold`` turns a score into pass/fail draw by draw (so a source's uncertainty becomes the
share of draws that pass); ``softmin`` is a smooth worst case over the sources:
``-tau * log(sum_s w_s exp(-x_s / tau))`` with the weights normalized -- the minimum as
``tau -> 0``, the weighted mean as ``tau`` grows.
"""

from __future__ import annotations

import numpy as np
from pydantic import Field

from rewardplug import CombineConfig, TransformConfig, TransformContext


class Threshold(TransformConfig):
    """``{kind: threshold, at: 0.5}``: ``above`` where the score is at least ``at``, else ``below``."""

    at: float = Field(0.5, allow_inf_nan=False)
    below: float = 0.0
    above: float = 1.0


def threshold(values: np.ndarray, config: Threshold, context: TransformContext) -> np.ndarray:
    """The point estimate and every draw, passed or failed on their own."""
    return np.where(values >= config.at, config.above, config.below)


class Softmin(CombineConfig):
    """``combine: {kind: softmin, tau: 0.1}``."""

    tau: float = Field(
        0.1, gt=0, allow_inf_nan=False, description="smoothness, on the score's scale"
    )


def softmin(
    values: np.ndarray, weights: np.ndarray, present: np.ndarray, config: Softmin
) -> np.ndarray:
    """The smooth minimum of the present sources, draw by draw (a stable log-sum-exp)."""
    w = weights[:, None, None] * present
    w = w / w.sum(axis=0)
    z = np.where(present, -values / config.tau, -np.inf)
    top = z.max(axis=0)
    return -config.tau * (top + np.log((w * np.exp(z - top)).sum(axis=0)))
