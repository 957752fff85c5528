"""AReaL adapter: a drop-in ``RLVRWorkflow`` that discretizes each group whole, and a per-sample
``reward_fn``.

AReaL (inclusionAI/AReaL) runs a ``RolloutWorkflow`` per dataset item. With ``group_size`` G > 1
(the trainer passes ``gconfig.n_samples`` in training, ``eval_gconfig.n_samples`` in evaluation)
it wraps the workflow in ``GroupedRolloutWorkflow``, which runs the item's G episodes concurrently
in one process and one event loop. Its stock ``RLVRWorkflow`` computes each episode's reward on
its own, calling ``reward_fn`` in a process pool (``AsyncRewardWrapper``).

* :class:`RLVRWorkflow` (``workflow="rewardplug.integrations.areal.RLVRWorkflow"``, the same
  ``workflow_kwargs`` as AReaL's without ``reward_fn``) is AReaL's ``RLVRWorkflow`` with the
  reward computed by the stack on **whole groups**: each episode submits its sample to a group
  assembler (:mod:`rewardplug.groups`) of its event loop, keyed by the rollout task AReaL
  assigned to the item (``workflow_context``'s ``task_id``: one per group), and gets its reward
  when the G episodes of its group are all there. G is ``group_size`` (default: the workflow's
  ``gconfig.n_samples``, which is the trainer's G when the workflow's ``gconfig`` is the phase's).
* :func:`reward_fn` (``reward_fn="rewardplug.integrations.areal.reward_fn"`` in AReaL's own
  ``RLVRWorkflow``) scores one sample at a time in AReaL's process pool: groups of one, so
  tie-grouping does nothing.

The stack: ``stack=`` (workflow) or ``REWARDPLUG_STACK``. Fields: the item's ``messages`` (else
the decoded prompt) and the decoded completion (end markers such as ``<|im_end|>`` cut from its
end); the item's ``reference``, else ``answer``, ``solution`` or ``ground_truth``, is the
reference; ``tests`` (an object or a JSON string) and ``rubric`` are those fields; everything
else is metadata.

AReaL needs a number per episode. A sample the stack abstains on gets ``abstain_reward`` (0.0; a
warning names it once): the workflow also zeroes that episode's ``loss_mask`` (AReaL's own
per-token mask: it contributes no loss; its fill value still counts in its group's reward
normalization) and reports ``rewardplug_reward_mask`` to AReaL's stats tracker; the per-sample
``reward_fn`` has no mask to set.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import math
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from rewardplug.integrations.conventions import DEFAULT_STRIP_SUFFIXES
from rewardplug.integrations.openrlhf import strip_end_markers
from rewardplug.types import Reward, Sample

if TYPE_CHECKING:
    from rewardplug.groups import GroupAssembler
    from rewardplug.stack import Stack

# RLVRWorkflow (AReaL's, with the group reward) is built on first access: see __getattr__
__all__ = ["STACK_ENV", "areal_sample", "reward_fn"]

log = logging.getLogger(__name__)

STACK_ENV = "REWARDPLUG_STACK"
_REFERENCE_KEYS = ("reference", "answer", "solution", "ground_truth")
_warned: set[str] = set()
#: the reward of the episode running in this task (read back after AReaL's arun_episode)
_last_reward: contextvars.ContextVar[Reward | None] = contextvars.ContextVar(
    "rewardplug_areal_reward", default=None
)


def _warn_once(topic: str, message: str) -> None:
    if topic not in _warned:
        _warned.add(topic)
        log.warning(message)


def _stack(stack: str | os.PathLike[str] | Stack | None) -> Stack:
    from rewardplug.stack import Stack

    if isinstance(stack, Stack):
        return stack
    path = stack if stack is not None else os.environ.get(STACK_ENV)
    if not path:
        raise ValueError(
            f"no reward stack given: pass stack=/abs/path/stack.yaml in workflow_kwargs, or set "
            f"{STACK_ENV} in the environment of AReaL's rollout workers"
        )
    from rewardplug.integrations.verl import get_stack  # the shared per-process stack cache

    return get_stack(path)


def areal_sample(
    prompt: Any,
    completion: str,
    data: Mapping[str, Any],
    *,
    group: str | None = None,
) -> Sample:
    """One rewardplug sample for an AReaL episode (``data``: the dataset item); its id is a hash
    of its prompt and response, its group ``group`` (default: its own)."""
    fields: dict[str, Any] = {}
    metadata: dict[str, Any] = {}
    for key, value in data.items():
        if key == "messages":
            continue
        if key in _REFERENCE_KEYS and "reference" not in fields and value is not None:
            fields["reference"] = (
                value if isinstance(value, str) else json.dumps(value, default=str)
            )
        elif key in ("tests", "rubric") and value is not None:
            fields[key] = json.loads(value) if key == "tests" and isinstance(value, str) else value
        else:
            metadata[key] = value
    messages = data.get("messages")
    sample = Sample.model_validate(
        {
            **fields,
            "metadata": metadata,
            "prompt": messages if isinstance(messages, list) else prompt,
            "response": strip_end_markers(completion, DEFAULT_STRIP_SUFFIXES),
        }
    )
    sample.group = group if group is not None else f"sample:{sample.id}"
    return sample


def _abstained(reward: Reward) -> bool:
    return reward.reward is None or not math.isfinite(reward.reward)


def _filled(reward: Reward, fill: float) -> float:
    if not _abstained(reward):
        return float(reward.reward)  # type: ignore[arg-type]
    _warn_once(
        "fill",
        f"rewardplug could not score an AReaL episode ({reward.reason}); AReaL needs a number, "
        f"so its reward is the fill value {fill} (the rewardplug workflow also zeroes its "
        "loss_mask; docs/integrations.md, AReaL)",
    )
    return fill


def reward_fn(
    prompt: str,
    completions: str,
    prompt_ids: Any = None,
    completion_ids: Any = None,
    **data: Any,
) -> float:
    """AReaL per-sample reward function (``RLVRWorkflow(reward_fn=...)``, in its process pool).

    Each sample is its own group: its reward is the stack's combined raw score. The stack is
    ``$REWARDPLUG_STACK``, loaded once per pool process; the fill value ``$REWARDPLUG_ABSTAIN_REWARD``
    (0.0)."""
    _warn_once(
        "per-sample",
        "rewardplug.integrations.areal.reward_fn scores each AReaL sample alone, so "
        "tie-grouping does nothing; use workflow='rewardplug.integrations.areal.RLVRWorkflow'",
    )
    fill = float(os.environ.get("REWARDPLUG_ABSTAIN_REWARD", "0.0"))
    (reward,) = _stack(None).score([areal_sample(prompt, completions, data)])
    return _filled(reward, fill)


_workflow_class: type | None = None


def _build_workflow_class() -> type:
    """AReaL's ``RLVRWorkflow`` with rewardplug's group reward (built on first use, so that
    importing this module never imports AReaL)."""
    from areal import workflow_context
    from areal.utils import stats_tracker
    from areal.utils.perf_tracer import trace_session
    from areal.workflow.rlvr import RLVRWorkflow as ArealRLVRWorkflow

    from rewardplug.groups import GroupAssembler

    # AReaL is not installed where mypy runs (make frameworks): the base class is Any
    class RLVRWorkflow(ArealRLVRWorkflow):  # type: ignore[misc]
        """AReaL's ``RLVRWorkflow`` whose rewards are the stack's, discretized per group.

        :param stack: a stack or its YAML path (default ``$REWARDPLUG_STACK``).
        :param group_size: G, the episodes AReaL runs per item (default ``gconfig.n_samples``;
            in evaluation pass the trainer's ``eval_gconfig.n_samples`` unless the workflow's
            ``gconfig`` is ``eval_gconfig``).
        :param group_timeout: seconds a group waits for its members after the first arrived
            before it is discretized as a partial group (an episode that failed never comes).
        :param abstain_reward: the reward of a sample the stack abstains on.
        Everything else is AReaL's ``RLVRWorkflow`` (``gconfig``, ``tokenizer``, ...).
        """

        def __init__(
            self,
            gconfig: Any,
            tokenizer: Any,
            *args: Any,
            stack: str | os.PathLike[str] | Stack | None = None,
            group_size: int | None = None,
            group_timeout: float = 600.0,
            abstain_reward: float = 0.0,
            reward_fn: Any = None,
            **kwargs: Any,
        ):
            if reward_fn is not None:
                raise ValueError(
                    "rewardplug's RLVRWorkflow scores with the stack (stack=... or "
                    f"{STACK_ENV}); leave reward_fn out of workflow_kwargs"
                )
            # AReaL's reward function is never called: _compute_rewards is replaced
            super().__init__(_unused_reward_fn, gconfig, tokenizer, *args, **kwargs)
            self.stack = _stack(stack)
            self.group_size = int(group_size or getattr(self.gconfig, "n_samples", 1) or 1)
            self.group_timeout = group_timeout
            self.abstain_reward = float(abstain_reward)
            self._assemblers: dict[asyncio.AbstractEventLoop, GroupAssembler] = {}

        def _assembler(self) -> GroupAssembler:
            loop = asyncio.get_running_loop()
            assembler = self._assemblers.get(loop)
            if assembler is None:
                for old in [lp for lp in self._assemblers if lp.is_closed()]:
                    del self._assemblers[old]
                assembler = GroupAssembler(
                    self.stack, self.group_size, timeout_s=self.group_timeout
                )
                self._assemblers[loop] = assembler
            return assembler

        @trace_session("reward")  # type: ignore[untyped-decorator]  # AReaL: not installed for mypy
        async def _compute_rewards(
            self, resp: Any, prompt_str: str, task_data: dict[str, Any]
        ) -> float:
            ctx = workflow_context.get()
            task = ctx.task_id if ctx.task_id is not None else f"data{id(task_data)}"
            key = f"{'eval' if ctx.is_eval else 'train'}:{task}"
            completion = self.tokenizer.decode(resp.output_tokens)
            sample = areal_sample(prompt_str, completion, task_data, group=key)
            reward = await self._assembler().submit(sample, key)
            _last_reward.set(reward)
            mask = 0.0 if _abstained(reward) else 1.0
            stats_tracker.get(workflow_context.stat_scope()).scalar(rewardplug_reward_mask=mask)
            return _filled(reward, self.abstain_reward)

        async def arun_episode(self, engine: Any, data: dict[str, Any]) -> Any:
            _last_reward.set(None)
            result = await super().arun_episode(engine, data)
            reward = _last_reward.get()
            if result is not None and reward is not None and _abstained(reward):
                result["loss_mask"] = result["loss_mask"] * 0  # abstained: no loss
            return result

    RLVRWorkflow.__module__ = __name__
    return RLVRWorkflow


def _unused_reward_fn(*_: Any, **__: Any) -> float:
    raise RuntimeError("rewardplug's RLVRWorkflow scores with its stack, never with reward_fn")


def __getattr__(name: str) -> Any:
    global _workflow_class
    if name == "RLVRWorkflow":
        if _workflow_class is None:
            _workflow_class = _build_workflow_class()
        return _workflow_class
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
