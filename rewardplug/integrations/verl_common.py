"""What verl's front ends share: the per-process stack cache, sample fields from verl's
``extra_info``, the flat numbers verl gets per reward, and one-time warnings.

Used by :mod:`rewardplug.integrations.verl` (custom reward functions) and
:mod:`rewardplug.integrations.verl_loop` (the reward-loop manager), and the stack cache by the
other front ends (slime, SkyRL, AReaL, NeMo RL); :mod:`rewardplug.integrations.verl` re-exports
every name, so ``rewardplug.integrations.verl.get_stack`` and the others work as before.
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rewardplug import notices
from rewardplug.types import Reward

if TYPE_CHECKING:
    from rewardplug.stack import Stack

__all__ = [
    "STACK_ENV",
    "clear_cache",
    "get_stack",
    "plain",
    "result_fields",
    "sample_fields",
    "stack_lock",
    "warn_once",
    "warned",
]

# the verl adapter's logger, where this code lived: its warnings reach the same handlers
log = logging.getLogger("rewardplug.integrations.verl")

STACK_ENV = "REWARDPLUG_STACK"
_cache: dict[str, Stack] = {}
stack_lock = threading.Lock()  # guards the stack cache (and verl_loop's local assemblers)


def get_stack(path: str | os.PathLike[str] | None = None) -> Stack:
    """The stack at ``path`` (default: ``$REWARDPLUG_STACK``), loaded once per process and path."""
    from rewardplug.stack import load_stack

    if path is None:
        path = os.environ.get(STACK_ENV)
        if not path:
            raise ValueError(
                "no reward stack given: add +custom_reward_function.reward_kwargs.stack=STACK.yaml "
                f"to the verl config, or set {STACK_ENV}"
            )
    key = str(Path(path).resolve())
    with stack_lock:  # verl may call from several threads; load each stack once
        if key not in _cache:
            _cache[key] = load_stack(key)
        return _cache[key]


def clear_cache() -> None:
    """Close and forget every cached stack."""
    with stack_lock:
        for stack in _cache.values():
            stack.close()
        _cache.clear()


def sample_fields(extra_info: Any) -> dict[str, Any]:
    """Sample fields from verl's ``extra_info`` (see module docstring)."""
    if not isinstance(extra_info, dict):
        return {"metadata": {}}
    fields: dict[str, Any] = {}
    metadata: dict[str, Any] = {}
    for key, value in extra_info.items():
        if key in ("prompt", "question") and "prompt" not in fields and value is not None:
            fields["prompt"] = value if isinstance(value, str | list) else str(value)
        elif key == "tests" and value is not None:
            fields["tests"] = _json_object(value) if isinstance(value, str) else value
        elif key == "rubric" and value is not None:
            fields["rubric"] = value
        else:
            metadata[key] = plain(value)
    fields["metadata"] = metadata
    return fields


def _json_object(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"extra_info['tests'] is a string but not JSON ({exc})") from None


def plain(value: Any) -> Any:
    """numpy scalars/arrays (verl's non-tensor batch) as plain Python values."""
    tolist = getattr(value, "tolist", None)
    return tolist() if callable(tolist) else value


#: the topics warn_once has warned about in this process
warned: set[str] = set()


def warn_once(topic: str, message: str) -> None:
    """Warn about ``topic`` once per process (verl calls the reward function per batch)."""
    if topic not in warned:
        warned.add(topic)
        notices.warn(message)  # at verl's call of the reward function
        if log.hasHandlers():  # a configured log gets it too (never twice on stderr)
            log.warning(message, extra={notices.SHOWN: True})


def _number(value: float | None, fill: float) -> float:
    return fill if value is None or not math.isfinite(value) else float(value)


def result_fields(reward: Reward, names: Sequence[str], fill: float) -> dict[str, float]:
    """The flat numbers verl gets for one reward: ``score`` (``fill`` where it abstained),
    ``reward_mask``, tier fields and ``src/<name>`` per source."""
    filled = reward.reward is None or not math.isfinite(reward.reward)
    if filled:
        warn_once(
            "fill",
            f"rewardplug could not score a sample ({reward.reason}); verl needs a number, so its "
            f"score is the fill value {fill} (reward_kwargs.abstain_reward). Each such sample "
            "has reward_mask = 0.0 in reward_extra_info: mask it out of the loss rather than "
            "train on the fill value (docs/integrations.md, verl)",
        )
    out = {
        "score": _number(reward.reward, fill),
        "reward_mask": 0.0 if filled else 1.0,
        "raw": _number(reward.raw, fill),
        "tier": float(reward.tier) if reward.tier is not None else -1.0,
        "n_tiers": float(reward.n_tiers) if reward.n_tiers is not None else 0.0,
        "abstained": 1.0 if reward.reward is None else 0.0,
        "group_size": float(reward.group_size or 0),
        "partial_group": 1.0 if reward.partial else 0.0,
    }
    for name in names:
        s = reward.sources.get(name)
        out[f"src/{name}"] = _number(s.value if s is not None and s.ok else None, fill)
    return out
