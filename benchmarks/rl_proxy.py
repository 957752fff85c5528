"""The proxy reward model of the RL hacking experiment, as a ``python`` source's function.

``benchmarks/rl_hacking.py`` fills :data:`TABLE` with the current batch's proxy values and Monte
Carlo draws before every ``Stack.score`` call; each sample carries its row as the ``key`` column,
so the stack's ``python`` source (``function: "rl_proxy:proxy_reward"``) returns, per sample, a
:class:`~rewardplug.Score` whose ``value`` is the proxy's deterministic score (a forward pass
without dropout) and whose ``draws`` are its MC-dropout-like draws -- what a neural reward model
source returns. A module-level table keeps the values out of the samples so that the samples of
a step can be built once and scored by every arm.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rewardplug.types import Score

#: ``value``: (N,) proxy point scores; ``draws``: (N, K) draws, one row per sample of the batch.
TABLE: dict[str, np.ndarray] = {}


def proxy_reward(key: list[int], **_: Any) -> list[Score | None]:
    """Per sample, the proxy's score at row ``key`` of :data:`TABLE`; None (abstain) for a key
    outside the table, so a stale or short table can never pass for a score."""
    if "value" not in TABLE or "draws" not in TABLE:
        raise RuntimeError("rl_proxy.TABLE is empty: fill 'value' and 'draws' before scoring")
    value, draws = TABLE["value"], TABLE["draws"]
    out: list[Score | None] = []
    for k in key:
        if not (isinstance(k, int | np.integer) and 0 <= k < len(value)):
            out.append(None)
            continue
        # the values are finite by construction, so the validated constructor's checks are skipped
        out.append(
            Score.model_construct(
                value=float(value[k]), draws=draws[k].tolist(), status="ok", detail={}
            )
        )
    return out
