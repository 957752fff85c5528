"""verl adapter: the reward loop's ``RewardManager`` (verl >= 0.9) and custom reward functions.

**verl >= 0.9 (reward loop).** verl scores one sample per ``run_single`` call, on one of
``reward.num_workers`` reward-loop workers (Ray actors; each sample goes to a random one), while
rollouts are still being generated. :class:`RewardManager` makes every sample wait for its group
-- the ``rollout.n`` responses that share a ``uid`` -- so the group is discretized whole::

    reward.reward_manager.source=importlib
    reward.reward_manager.name=RewardManager
    reward.reward_manager.module.path=$(python -c "import rewardplug.integrations.verl as m; print(m.__file__)")
    +reward.custom_reward_function.reward_kwargs.stack=/abs/path/stack.yaml

The group size is ``actor_rollout_ref.rollout.n``. With Ray running (always, in verl) the groups
are assembled by one named Ray actor shared by all workers (:mod:`rewardplug.groups_ray`), which
also holds the stack; ``reward_kwargs.assembler=local`` assembles in each worker instead (only
right with ``reward.num_workers=1``). Further ``reward_kwargs``: ``group_timeout`` (seconds a
group waits for its members, default 60; then it is discretized as a partial group),
``group_size`` (override ``rollout.n``), ``abstain_reward`` (default 0.0), ``assembler_num_cpus``.

**Older verl (custom reward function).** Point ``custom_reward_function.path`` at this file:

* ``compute_score_batch`` (``reward_manager=batch``) scores a whole batch; responses to the same
  prompt form a group and are tie-grouped. verl does not pass the prompt itself, so groups are
  found from ``extra_info``: samples with the same ``extra_info["uid"]``, ``["group"]``,
  ``["index"]``, ``["prompt"]`` or ``["question"]`` (the first present), wherever they are in the
  batch, else the same ``(data_source, ground_truth)``; or, with ``group_size=N``, every N
  consecutive samples -- unsafe when verl's ``balance_batch`` (on by default) has reordered the
  batch by length, so a warning says so.
* ``compute_score`` (the per-sample ``naive`` manager) scores one response alone: its own group,
  so its reward is the combined raw score and tie-grouping does nothing (a warning says so).

``ground_truth`` becomes ``Sample.reference``; ``extra_info`` entries ``prompt``/``question``,
``tests`` (a mapping or a JSON string) and ``rubric`` become sample fields, the rest metadata.
Every result carries ``score`` (``reward_score`` in the reward loop) and, for verl's
``reward_extra_info`` logs, ``raw``, ``tier``, ``n_tiers``, ``abstained``, ``group_size``,
``partial_group`` and one ``src/<name>`` per source -- the same keys for every sample, as verl
requires. verl needs a number for every sample, so one the stack abstains on scores
``abstain_reward`` with ``abstained = 1.0``: filter on it (it reaches the batch's
``reward_extra_info``) rather than train on the fill value.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from rewardplug.inputs import missing_flags, required_fields

# kept importable from here (verl_common holds them) for other front ends and docs
from rewardplug.integrations.verl_common import STACK_ENV as STACK_ENV
from rewardplug.integrations.verl_common import (
    clear_cache,
    get_stack,
    plain,
    result_fields,
    sample_fields,
    warn_once,
)
from rewardplug.integrations.verl_common import stack_lock as stack_lock
from rewardplug.types import Sample, digest

if TYPE_CHECKING:
    from rewardplug.integrations.verl_loop import RewardLoopManager as RewardManager

__all__ = [
    "RewardManager",
    "clear_cache",
    "compute_score",
    "compute_score_batch",
    "get_stack",
    "verl_samples",
]

log = logging.getLogger(__name__)


_GROUP_KEYS = ("uid", "group", "index", "prompt", "question")


def _group_key(data_source: Any, ground_truth: Any, extra_info: Any) -> str:
    if isinstance(extra_info, dict):
        for key in _GROUP_KEYS:
            if extra_info.get(key) is not None:
                return digest([key, plain(extra_info[key])])
    return digest(["gt", str(data_source), plain(ground_truth)])


def verl_samples(
    data_sources: Sequence[Any],
    solution_strs: Sequence[str],
    ground_truths: Sequence[Any],
    extra_infos: Sequence[Any] | None = None,
    group_size: int | None = None,
) -> list[Sample]:
    """Samples for a verl batch; groups as described in the module docstring."""
    n = len(solution_strs)
    extras = list(extra_infos) if extra_infos is not None else [None] * n
    if not (len(data_sources) == len(ground_truths) == len(extras) == n):
        raise ValueError(
            f"verl passed {len(data_sources)} data sources, {n} solutions, {len(ground_truths)} "
            f"ground truths and {len(extras)} extra_infos; they must match"
        )
    if group_size is not None and (group_size < 1 or n % group_size):
        raise ValueError(f"group_size={group_size} does not divide the batch of {n} samples")
    if group_size is not None:
        warn_once(
            "group_size",
            "compute_score_batch(group_size=N) groups every N consecutive samples, which is wrong "
            "after verl's balance_batch (on by default) has reordered the batch by length; put "
            "uid or index in extra_info instead, or use rewardplug's RewardManager (verl >= 0.9)",
        )
    samples = []
    for i in range(n):
        ds, gt, extra = data_sources[i], plain(ground_truths[i]), extras[i]
        # by key, not by position: balance_batch reorders the batch before the reward
        group = f"{i // group_size}" if group_size else _group_key(ds, gt, extra)
        fields = sample_fields(extra)
        fields["metadata"]["data_source"] = plain(ds)
        reference = None if gt is None else (gt if isinstance(gt, str) else json.dumps(gt))
        samples.append(
            Sample.model_validate(
                {
                    **fields,
                    "id": str(i),
                    "group": group,
                    "response": solution_strs[i],
                    "reference": reference,
                }
            )
        )
    return samples


def compute_score_batch(
    data_sources: Sequence[Any],
    solution_strs: Sequence[str],
    ground_truths: Sequence[Any],
    extra_infos: Sequence[Any] | None = None,
    *,
    stack: str | None = None,
    group_size: int | None = None,
    abstain_reward: float = 0.0,
    **_: Any,
) -> list[dict[str, float]]:
    """verl batch reward function (``reward_manager.name=batch``): one dict per sample.

    :param stack: path of the stack YAML (from ``reward_kwargs``; default ``$REWARDPLUG_STACK``).
    :param group_size: samples per group (verl's ``rollout.n``) when ``extra_info`` has no key.
    :param abstain_reward: the score of a sample the stack abstains on.
    """
    st = get_stack(stack)
    samples = verl_samples(data_sources, solution_strs, ground_truths, extra_infos, group_size)
    rewards = st.score(samples)
    names = list(st.sources)
    required = required_fields(st)
    return [
        {**result_fields(r, names, float(abstain_reward)), **missing_flags(required, s)}
        for r, s in zip(rewards, samples, strict=True)
    ]


def compute_score(
    data_source: Any,
    solution_str: str,
    ground_truth: Any,
    extra_info: Any = None,
    *,
    stack: str | None = None,
    abstain_reward: float = 0.0,
    **_: Any,
) -> dict[str, float]:
    """verl per-sample reward function (the default ``naive`` reward manager).

    One response is its own group, so ``score`` is the stack's combined raw score; use
    :class:`RewardManager` (verl >= 0.9) or :func:`compute_score_batch` for tie-grouped rewards.
    """
    warn_once(
        "per-sample",
        "rewardplug compute_score scores each response alone, so tie-grouping does nothing; use "
        "rewardplug.integrations.verl.RewardManager (verl >= 0.9) or compute_score_batch",
    )
    return compute_score_batch(
        [data_source],
        [solution_str],
        [ground_truth],
        [extra_info],
        stack=stack,
        abstain_reward=abstain_reward,
    )[0]


def __getattr__(name: str) -> Any:
    # RewardManager (verl >= 0.9's reward loop) is built on first access, so that importing this
    # module for compute_score never imports verl itself (see rewardplug.integrations.verl_loop)
    if name == "RewardManager":
        from rewardplug.integrations.verl_loop import reward_manager_class

        return reward_manager_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
