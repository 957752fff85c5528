"""slime adapter: ``--custom-rm-path`` reward functions that score whole groups.

slime (THUDM/slime) loads the function named by ``--custom-rm-path`` and awaits it in its rollout
event loop::

    --custom-rm-path rewardplug.integrations.slime.group_rm --group-rm   # training
    --custom-rm-path rewardplug.integrations.slime.rm                    # evaluation-only runs

with the stack YAML in the ``REWARDPLUG_STACK`` environment variable of the rollout process (the
``env_vars`` of ``ray job submit --runtime-env-json``).

* **With** ``--group-rm`` slime generates a prompt's ``--n-samples-per-prompt`` responses, then
  awaits ``group_rm(args, samples)`` once with the whole group (``generate_and_rm_group`` ->
  ``rm_hub.batched_async_rm``) and sets ``sample.reward`` from the list returned. The group is
  discretized as it is handed over: no assembly, no waiting, never a partial group.
* **Without** it slime awaits the function once per response (``rm_hub.async_rm``), so a
  response is its own group: ``group_rm`` then answers each sample at once with its combined raw
  score (tie-grouping does nothing; it logs that once). slime asserts that ``--group-rm`` is off
  for its evaluation rollout (``eval_rollout``), so evaluation always takes this per-sample path:
  ``rm(args, sample)`` is the per-sample function (also usable as an evaluation dataset's
  ``custom_rm_path``). A custom generate function that returns several samples for one rollout
  (``list[Sample]``, a fan-out) gets them scored through ``group_rm`` as a list with
  ``--group-rm`` off: they are siblings, not a group, and each is scored on its own.

slime's ``Sample`` -> rewardplug's: ``prompt`` (text or chat messages) and ``response`` (end
markers such as ``<|im_end|>`` cut from its end); ``label`` is the reference answer, or -- a
mapping, or a string holding a JSON object with a sample field -- carries sample fields
(``reference``, ``tests``, ``rubric``, ``metadata``, any other key as metadata); ``metadata``
entries ``tests``, ``rubric`` and ``reference`` become those fields when the label has none
(``tests`` may be a JSON string), the rest metadata, with ``status`` and ``group_index``; ``index``
is the sample id.

slime needs a number for every sample (``Sample.get_reward_value`` feeds a tensor), so a sample the
stack abstains on gets ``REWARDPLUG_ABSTAIN_REWARD`` (0.0; a warning names it once) **and**
``sample.remove_sample = True``, slime's own mask: its loss mask is zeroed in training. slime
still counts the fill value in the group's mean and std (``remove_sample`` masks the loss, not
the normalization): set the fill near the stack's typical reward to keep it from moving the
others' advantages much. Every scored sample's ``metadata["rewardplug"]`` holds ``raw``, ``tier``,
``n_tiers``, ``group_size``, ``partial_group``, ``abstained``, ``reward_mask`` and ``reason``. With
``--reward-key K`` (or ``--eval-reward-key``) slime reads ``reward[K]``: the functions then return
``{K: reward, "raw": ..., "reward_mask": ..., "abstained": ...}`` instead of a float.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from rewardplug.integrations.conventions import DEFAULT_STRIP_SUFFIXES
from rewardplug.integrations.openrlhf import strip_end_markers
from rewardplug.types import Reward, Sample, digest

if TYPE_CHECKING:
    from rewardplug.stack import Stack

__all__ = ["ABSTAIN_ENV", "STACK_ENV", "group_rm", "rm", "slime_samples"]

log = logging.getLogger(__name__)

STACK_ENV = "REWARDPLUG_STACK"
ABSTAIN_ENV = "REWARDPLUG_ABSTAIN_REWARD"
#: sample fields a label object or slime's ``metadata`` may carry
_FIELDS = ("reference", "tests", "rubric")
_warned: set[str] = set()


def _warn_once(topic: str, message: str) -> None:
    if topic not in _warned:
        _warned.add(topic)
        log.warning(message)


async def _stack() -> Stack:
    path = os.environ.get(STACK_ENV)
    if not path:
        raise ValueError(
            f"no reward stack given: set {STACK_ENV}=/abs/path/stack.yaml in the environment of "
            "slime's rollout process (ray job submit --runtime-env-json "
            f'\'{{"env_vars": {{"{STACK_ENV}": "..."}}}}\')'
        )
    from rewardplug.integrations.verl import get_stack  # the shared per-process stack cache

    # loading may take a while (models): off slime's rollout event loop
    return await asyncio.to_thread(get_stack, path)


def _abstain_reward() -> float:
    text = os.environ.get(ABSTAIN_ENV, "0.0")
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{ABSTAIN_ENV}={text!r} is not a number") from None
    if not math.isfinite(value):
        raise ValueError(f"{ABSTAIN_ENV}={text!r} must be finite")
    return value


def _label_fields(label: Any) -> dict[str, Any]:
    """Sample fields carried by slime's ``label`` (see module docstring)."""
    if isinstance(label, str) and label.lstrip().startswith("{"):
        try:
            parsed = json.loads(label)
        except json.JSONDecodeError:
            parsed = None
        if isinstance(parsed, dict) and any(k in parsed for k in (*_FIELDS, "metadata")):
            label = parsed
    if isinstance(label, Mapping):
        return {k: v for k, v in label.items() if k not in ("id", "group", "prompt", "response")}
    if label is None:
        return {}
    if isinstance(label, str):
        return {"reference": label}
    if isinstance(label, int | float) and not isinstance(label, bool):
        return {"reference": str(label)}
    return {"reference": json.dumps(label, default=str)}


def _sample(sample: Any, position: int, group: str | None) -> Sample:
    """One rewardplug sample for one slime ``Sample`` (``group`` None: its own group)."""
    fields = _label_fields(getattr(sample, "label", None))
    metadata = dict(fields.pop("metadata", None) or {})
    for key, value in (getattr(sample, "metadata", None) or {}).items():
        if key in _FIELDS and fields.get(key) is None and value is not None:
            fields[key] = value
        else:
            metadata.setdefault(key, value)
    if isinstance(fields.get("tests"), str):
        try:
            fields["tests"] = json.loads(fields["tests"])
        except json.JSONDecodeError as exc:
            raise ValueError(f"slime sample {position}: 'tests' is not JSON ({exc})") from None
    status = getattr(sample, "status", None)
    metadata["status"] = getattr(status, "value", status)
    metadata["group_index"] = getattr(sample, "group_index", None)
    index = getattr(sample, "index", None)
    prompt = getattr(sample, "prompt", "") or ""
    response = strip_end_markers(getattr(sample, "response", "") or "", DEFAULT_STRIP_SUFFIXES)
    sid = str(index) if index is not None else f"#{position}"
    return Sample.model_validate(
        {
            **fields,
            "metadata": metadata,
            "id": sid,
            "group": group if group is not None else f"sample:{sid}",
            "prompt": prompt,
            "response": response,
        }
    )


def slime_samples(samples: Sequence[Any], *, whole_group: bool = True) -> list[Sample]:
    """rewardplug samples for slime samples: one group (``whole_group``) or each its own."""
    group = None
    if whole_group:
        first = samples[0] if samples else None
        index = getattr(first, "group_index", None)
        group = f"group:{index}" if index is not None else digest(getattr(first, "prompt", ""))
    return [_sample(s, i, group) for i, s in enumerate(samples)]


def _details(reward: Reward) -> dict[str, Any]:
    filled = reward.reward is None or not math.isfinite(reward.reward)
    return {
        "raw": reward.raw,
        "tier": reward.tier,
        "n_tiers": reward.n_tiers,
        "group_size": reward.group_size,
        "partial_group": reward.partial,
        "abstained": reward.reward is None,
        "reward_mask": 0.0 if filled else 1.0,
        "reason": reward.reason,
    }


def _answer(args: Any, sample: Any, reward: Reward, fill: float) -> float | dict[str, Any]:
    """What slime gets for one sample; marks the slime sample (metadata, ``remove_sample``)."""
    details = _details(reward)
    value = float(reward.reward) if reward.reward is not None and details["reward_mask"] else fill
    if not details["reward_mask"]:
        _warn_once(
            "fill",
            f"rewardplug could not score a slime sample ({reward.reason}); slime needs a number, "
            f"so its reward is the fill value {fill} ({ABSTAIN_ENV}) and it is marked "
            "remove_sample=True (its loss is masked; docs/integrations.md, slime)",
        )
        sample.remove_sample = True
    # a new dict: never write into one that several samples might share
    sample.metadata = {**(getattr(sample, "metadata", None) or {}), "rewardplug": details}
    named = (getattr(args, "reward_key", None), getattr(args, "eval_reward_key", None))
    keys = {str(k) for k in named if k is not None}
    if not keys:
        return value
    out: dict[str, Any] = {k: value for k in keys}
    out.update(
        raw=details["raw"] if details["raw"] is not None else fill,
        reward_mask=details["reward_mask"],
        abstained=1.0 if details["abstained"] else 0.0,
    )
    return out


async def _score(args: Any, samples: Sequence[Any], whole_group: bool) -> list[Any]:
    stack = await _stack()
    fill = _abstain_reward()
    built = slime_samples(samples, whole_group=whole_group)
    rewards = await stack.ascore(built)
    return [_answer(args, s, r, fill) for s, r in zip(samples, rewards, strict=True)]


async def group_rm(args: Any, samples: Any, **_: Any) -> list[Any] | Any:
    """slime ``--custom-rm-path`` function: one reward per sample of ``samples``.

    With ``--group-rm`` (``args.group_rm``) ``samples`` is one whole group, discretized together.
    Called with one ``Sample`` (slime without ``--group-rm``, and evaluation), it scores that
    sample on its own and returns one reward, like :func:`rm`. A list without ``--group-rm`` is a
    custom generate function's fan-out of one rollout: each sample is scored on its own.
    """
    if not isinstance(samples, list | tuple):
        _warn_once(
            "per-sample",
            "slime calls rewardplug.integrations.slime.group_rm one sample at a time (no "
            "--group-rm): each response is its own group, so tie-grouping does nothing. Add "
            "--group-rm for training (evaluation is always per sample in slime)",
        )
        return (await _score(args, [samples], whole_group=False))[0]
    if not samples:
        return []
    if any(isinstance(s, list | tuple) for s in samples):
        raise TypeError(
            "slime passed a group of lists: with --group-rm, a custom generate function returns "
            "several samples per rollout (list[Sample]), which slime's generate_and_rm_group cannot "
            "reward as a group; drop --group-rm for such a rollout (its siblings are then scored "
            "each on its own) or return one Sample per rollout"
        )
    whole = bool(getattr(args, "group_rm", True))
    if whole:
        expected = getattr(args, "n_samples_per_prompt", None)
        if isinstance(expected, int) and expected != len(samples):
            _warn_once(
                "size",
                f"slime handed rewardplug a group of {len(samples)} samples with "
                f"--n-samples-per-prompt {expected}; each group is discretized as it is handed over",
            )
    return await _score(args, samples, whole_group=whole)


async def rm(args: Any, sample: Any, **_: Any) -> Any:
    """slime per-sample ``--custom-rm-path`` function (no ``--group-rm``; evaluation): the
    sample's reward on its own -- its combined raw score, as a group of one."""
    return (await _score(args, [sample], whole_group=False))[0]
