"""Rewards from a batch's combined and discretized scores: one :class:`Reward` per sample, and
the warning for groups that carry no uncertainty (where tie-grouping cannot tie anything)."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING

from rewardplug.types import Reward, Sample, Score, trusted

if TYPE_CHECKING:
    from rewardplug.combine import Combined
    from rewardplug.discretizer import DiscretizeResult

__all__ = ["build_rewards", "warn_if_no_uncertainty"]


def build_rewards(
    batch: Sequence[Sample],
    scores: dict[str, list[Score]],
    combined: Combined,
    result: DiscretizeResult | None,
) -> list[Reward]:
    """Each sample's reward: the discretized one (``result``; None: discretizing is off) or the
    combined raw value; an abstention or error, with the reason, where nothing combined."""
    sizes = Counter(s.group for s in batch)
    # Plain Python numbers once, not numpy scalars per sample; and every field below is
    # computed here with its type known, so the rewards are built without re-validation
    # (validating a Reward also re-ran every nested Score's validator: a third of the time
    # a trivial source took per row).
    raws, stds = combined.raw.tolist(), combined.std.tolist()
    if result is not None:
        tiers, values = result.tier.tolist(), result.reward.tolist()

    rewards = []
    for i, sample in enumerate(batch):
        raw = raws[i]
        if math.isnan(raw):
            status = "error" if combined.all_failed[i] else "abstain"
            reward = raw = std = tier = n_tiers = None
            reason = combined.reasons[i]
        else:
            # (an ok sample's reason says which sources were counted at their floor, if any)
            status, std, reason = "ok", stds[i], combined.reasons[i]
            if result is None:
                reward, tier, n_tiers = raw, None, None
            else:
                reward, tier, n_tiers = values[i], tiers[i], result.n_tiers[sample.group]
        # (the fields in the model's order: output rows list them in this order)
        fields = {
            "id": sample.id,
            "group": sample.group,
            "reward": reward,
            "raw": raw,
            "std": std,
            "tier": tier,
            "n_tiers": n_tiers,
            "status": status,
            "reason": reason,
            "group_size": sizes[sample.group],
            "partial": False,
            "sources": {name: scores[name][i] for name in scores},
        }
        rewards.append(trusted(Reward, fields))
    return rewards


def warn_if_no_uncertainty(batch: Sequence[Sample], combined: Combined) -> bool:
    """Warn (and return True) when every member of a group of several has one draw:
    discretizing does nothing then."""
    import numpy as np

    counts = np.count_nonzero(~np.isnan(combined.draws), axis=1)
    if not (counts == 1).any():  # the usual case (sources with draws): one array check
        return False
    single: dict[str, bool] = {}
    size: Counter[str] = Counter()
    for sample, k in zip(batch, counts, strict=True):
        if k:
            single[sample.group] = single.get(sample.group, True) and k == 1
            size[sample.group] += 1
    if not any(single[g] and size[g] > 1 for g in single):
        return False
    from rewardplug.notices import warn

    warn(
        "discretizing groups whose every member has a single draw: with no uncertainty "
        "distinct scores are never tied, so tie-grouping does nothing. Give one-number "
        "sources their measurement noise (`noise: {std: ...}` in the stack) or draws."
    )
    return True
