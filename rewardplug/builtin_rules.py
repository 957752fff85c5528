"""The core ``rules`` plugin: registers the built-in transforms and combine rules.

Written exactly as a third-party plugin is (the same hooks, the same ``register`` calls), and as
cheap to import: ``rewardplug --help`` loads it, so the rule modules (pydantic models) are
imported inside the hooks, which run only when a stack first needs a registry.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rewardplug.hookspecs import hookimpl

if TYPE_CHECKING:
    from rewardplug.hookspecs import RegisterCombiner, RegisterTransform


@hookimpl
def register_transforms(register: RegisterTransform) -> None:
    """Register ``par``, ``log_sigmoid``, ``clip``, ``scale`` and ``overlong``."""
    from rewardplug import transform_kinds as t

    register("par", t.apply_par, t.ParSpec)
    register("log_sigmoid", t.apply_log_sigmoid, t.LogSigmoidSpec)
    register("clip", t.apply_clip, t.ClipSpec)
    register("scale", t.apply_scale, t.ScaleSpec)
    register("overlong", t.apply_overlong, t.OverlongSpec)


@hookimpl
def register_combiners(register: RegisterCombiner) -> None:
    """Register ``weighted_sum``, ``min`` and ``mean_minus_var``."""
    from rewardplug import combine_rules as c

    register("weighted_sum", c.weighted_sum, c.WeightedSumConfig)
    register("min", c.minimum, c.MinConfig)
    register("mean_minus_var", c.mean_minus_var, c.MeanMinusVarConfig)
