"""What the TRL adapter logs through TRL's ``log_metric`` / ``log_extra`` hooks (TRL >= 0.2x).

Next to TRL's own ``rewards/<name>/mean``: each source's mean point estimate and the share of
completions it could not score (``rewards/<name>/<source>/failed``: a source that is down shows
1.0 instead of quietly dropping out), the combined raw score, tiers per group, the share the
stack abstained on, and the samples that lacked a field a source needs
(``rewards/<name>/<source>/missing_<field>``, see :mod:`rewardplug.inputs`); completion-table
columns ``<name>/<source>`` and ``<name>/tier``.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from rewardplug.types import Reward

__all__ = ["log_missing", "log_to_trl"]


def _mean(values: Sequence[float | None]) -> float | None:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return sum(finite) / len(finite) if finite else None


def log_to_trl(
    rewards: Sequence[Reward],
    name: str,
    log_metric: Callable[[str, float], None] | None,
    log_extra: Callable[[str, list[Any]], None] | None,
) -> None:
    """Report per-source means and tie statistics through TRL's logging hooks (when given)."""
    if not rewards:
        return
    sources: dict[str, None] = {}
    for r in rewards:
        sources.update(dict.fromkeys(r.sources))
    per_source = {
        s: [sc.value if (sc := r.sources.get(s)) is not None and sc.ok else None for r in rewards]
        for s in sources
    }
    if log_metric is not None:
        for s, values in per_source.items():
            mean = _mean(values)
            if mean is not None:  # a source that scored nothing has no mean (NaN would poison it)
                log_metric(f"rewards/{name}/{s}/mean", mean)
            # the share this source could not score: 1.0 is a source that is down, not a 0
            log_metric(f"rewards/{name}/{s}/failed", sum(v is None for v in values) / len(values))
        raw = _mean([r.raw for r in rewards])
        if raw is not None:
            log_metric(f"rewards/{name}/raw/mean", raw)
        tiers = {r.group: r.n_tiers for r in rewards if r.n_tiers is not None}
        if tiers:
            log_metric(f"rewards/{name}/n_tiers/mean", sum(tiers.values()) / len(tiers))
        log_metric(
            f"rewards/{name}/abstained", sum(r.reward is None for r in rewards) / len(rewards)
        )
    if log_extra is not None:
        for s, values in per_source.items():
            log_extra(f"{name}/{s}", values)
        log_extra(f"{name}/tier", [r.tier for r in rewards])


def log_missing(
    missing: Counter[tuple[str, str]],
    name: str,
    log_metric: Callable[[str, float], None] | None,
) -> None:
    """Log, per source and field, how many samples of this call lacked a field it needs."""
    if log_metric is None:
        return
    for (source, field), n in sorted(missing.items()):
        log_metric(f"rewards/{name}/{source}/missing_{field}", float(n))
