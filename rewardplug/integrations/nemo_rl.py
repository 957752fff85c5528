"""NeMo RL adapter: an environment whose synchronous ``step`` discretizes each group of the batch
whole.

NeMo RL (NVIDIA-NeMo/RL) rewards a rollout through an environment: a Ray actor whose
``step(message_log_batch, metadata)`` returns an ``EnvironmentReturn`` (observations, metadata,
next stop strings, a ``rewards`` tensor, a ``terminateds`` tensor, answers). Its synchronous
rollout (``run_multi_turn_rollout`` -> ``calculate_rewards``) calls ``step`` once per turn with
every active sample of the environment's task: GRPO's batch is ``repeat_interleave``-d, so on a
single-turn task all ``num_generations_per_prompt`` responses to each prompt arrive in one call.

:class:`GroupedEnvironment` (the Ray actor :data:`RewardplugEnvironment`, registered with NeMo RL's
``register_env``) is a single-turn environment whose ``step`` scores the whole batch with the
stack and discretizes each group together:

* **Group key**: the ``rewardplug_group`` entry of the sample's metadata (``extra_env_info``:
  put the prompt's dataset index there), else the prompt -- the messages before the first
  assistant message, which is how NeMo RL's own GRPO baseline groups samples (by prompt tokens).
  A prompt asked twice in one batch is one group, as it is one baseline group in NeMo RL.
* **Group size**: ``group_size`` in the environment's config (``grpo.num_generations_per_prompt``)
  is only checked: a group of another size is discretized as it is and marked ``partial_group``
  in its metadata (a warning names it once). NeMo RL's asynchronous rollout calls ``step`` one
  sample at a time: each response is then its own group (tie-grouping does nothing; logged once).
* **Abstentions.** ``EnvironmentReturn`` has no per-sample mask and NeMo RL drops the metadata of
  a finished sample, so an abstention cannot be masked on this path (NeMo Gym's ``mask_sample``
  can: :mod:`rewardplug.integrations.nemo_gym`). By default (``abstain_reward: null``) a sample
  the stack abstains on gets the mean reward of its group's scored members: NeMo RL's per-prompt
  baseline then gives it an advantage of exactly 0 -- no policy gradient, the nearest to a mask
  this path allows -- and leaves its group's mean unchanged. A number instead is a fixed fill; a
  group in which nothing scored gets ``0.0``. The first fill is logged.

The stack: ``stack`` in the environment's config, else ``REWARDPLUG_STACK`` (in the Ray workers'
environment). Fields: the reference is the metadata's ``reference`` (else ``ground_truth``,
``answer``, ``expected_answer``, ``solution``), ``tests`` and ``rubric`` those fields, the rest
metadata; the response is the text of the assistant messages after the prompt.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from rewardplug.types import Reward, Sample, content_text, digest

if TYPE_CHECKING:
    from rewardplug.stack import Stack

# RewardplugEnvironment (the Ray actor class) is built on first access: see __getattr__
__all__ = ["GROUP_KEY", "STACK_ENV", "GroupedEnvironment", "nemo_rl_sample"]

log = logging.getLogger(__name__)

STACK_ENV = "REWARDPLUG_STACK"
#: the metadata (``extra_env_info``) entry naming a sample's group
GROUP_KEY = "rewardplug_group"
_REFERENCE_KEYS = ("reference", "ground_truth", "answer", "expected_answer", "solution")
_warned: set[str] = set()


def _warn_once(topic: str, message: str, *args: Any) -> None:
    if topic not in _warned:
        _warned.add(topic)
        log.warning(message, *args)


class _EnvironmentReturn(NamedTuple):
    """NeMo RL's ``EnvironmentReturn`` fields, in its order (used when NeMo RL is not importable:
    ``calculate_rewards`` unpacks the six fields by position)."""

    observations: list[dict[str, str]]
    metadata: list[Any]
    next_stop_strings: list[Any]
    rewards: Any
    terminateds: Any
    answers: list[str | None] | None


def _environment_return(**fields: Any) -> Any:
    try:
        from nemo_rl.environments.interfaces import EnvironmentReturn
    except ImportError:
        return _EnvironmentReturn(**fields)
    return EnvironmentReturn(**fields)


def nemo_rl_sample(message_log: Sequence[Mapping[str, Any]], metadata: Any) -> Sample:
    """One rewardplug sample for one NeMo RL message log (``role`` / ``content`` messages) and its
    metadata (``extra_env_info``)."""
    messages = [{"role": m.get("role", "user"), "content": m.get("content")} for m in message_log]
    first = next((i for i, m in enumerate(messages) if m["role"] == "assistant"), len(messages))
    prompt = [{"role": m["role"], "content": content_text(m["content"])} for m in messages[:first]]
    response = "".join(
        content_text(m["content"]) for m in messages[first:] if m["role"] == "assistant"
    )
    info = metadata if isinstance(metadata, Mapping) else {}
    fields: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for key, value in info.items():
        if key in _REFERENCE_KEYS and "reference" not in fields and value is not None:
            fields["reference"] = value if isinstance(value, str) else str(value)
        elif key in ("tests", "rubric") and value is not None:
            fields[key] = value
        elif key != GROUP_KEY:
            extra[key] = value
    group = info.get(GROUP_KEY)
    return Sample.model_validate(
        {
            **fields,
            "metadata": extra,
            "group": f"group:{group}" if group is not None else f"prompt:{digest(prompt)}",
            "prompt": prompt,
            "response": response,
        }
    )


def _abstained(reward: Reward) -> bool:
    return reward.reward is None or not math.isfinite(reward.reward)


class GroupedEnvironment:
    """NeMo RL environment (the body of the :data:`RewardplugEnvironment` actor).

    ``cfg`` (the environment's block of NeMo RL's ``env:`` config): ``stack`` (default
    ``$REWARDPLUG_STACK``), ``group_size`` (checked, not required), ``abstain_reward`` (``None``:
    the group's mean; see the module docstring).
    """

    def __init__(self, cfg: Mapping[str, Any] | None = None):
        cfg = dict(cfg or {})
        path = cfg.get("stack") or os.environ.get(STACK_ENV)
        if not path:
            raise ValueError(
                f"no reward stack given: set `stack: /abs/path/stack.yaml` in this environment's "
                f"block of NeMo RL's env config, or {STACK_ENV} in the Ray workers' environment"
            )
        from rewardplug.integrations.verl import get_stack  # the shared per-process stack cache

        self.stack: Stack = get_stack(path)
        self.group_size = cfg.get("group_size")
        fill = cfg.get("abstain_reward")
        if fill is not None and not math.isfinite(float(fill)):
            raise ValueError(f"abstain_reward must be finite or null, not {fill}")
        self.abstain_reward = None if fill is None else float(fill)

    def step(self, message_log_batch: Sequence[Any], metadata: Sequence[Any]) -> Any:
        """Score the batch, each group discretized whole; every episode ends (single turn)."""
        import torch

        samples = [nemo_rl_sample(m, i) for m, i in zip(message_log_batch, metadata, strict=True)]
        if len(samples) == 1 and (self.group_size or 1) > 1:
            _warn_once(
                "alone",
                "NeMo RL called the rewardplug environment with one sample (its asynchronous "
                "rollout does): each response is its own group, so tie-grouping does nothing. "
                "Use the synchronous rollout, or NeMo Gym with rewardplug's resources server",
            )
        rewards = self.stack.score(samples)
        values = self._values(samples, rewards)
        n = len(samples)
        out_metadata = []
        for info, r in zip(metadata, rewards, strict=True):
            details = {
                "raw": r.raw,
                "tier": r.tier,
                "n_tiers": r.n_tiers,
                "group_size": r.group_size,
                "partial_group": self.group_size is not None and r.group_size != self.group_size,
                "abstained": _abstained(r),
                "reason": r.reason,
            }
            out_metadata.append(
                {**(info if isinstance(info, Mapping) else {}), "rewardplug": details}
            )
        return _environment_return(
            observations=[{"role": "environment", "content": ""} for _ in range(n)],
            metadata=out_metadata,
            next_stop_strings=[None] * n,
            rewards=torch.tensor(values, dtype=torch.float32),
            terminateds=torch.ones(n, dtype=torch.bool),
            answers=[None] * n,
        )

    def _values(self, samples: list[Sample], rewards: list[Reward]) -> list[float]:
        """The reward per sample, abstentions filled (module docstring)."""
        members: dict[str, list[int]] = {}
        for i, s in enumerate(samples):
            members.setdefault(s.group, []).append(i)
        values = [0.0] * len(samples)
        for group, rows in members.items():
            if self.group_size is not None and len(rows) != self.group_size:
                _warn_once(
                    "size",
                    "a NeMo RL batch held %d samples of group %r, not group_size=%s: it is "
                    "discretized as it is (partial_group in its metadata)",
                    len(rows),
                    group,
                    self.group_size,
                )
            scored = [float(rewards[i].reward) for i in rows if not _abstained(rewards[i])]  # type: ignore[arg-type]
            mean = sum(scored) / len(scored) if scored else 0.0
            fill = mean if self.abstain_reward is None else self.abstain_reward
            for i in rows:
                if _abstained(rewards[i]):
                    _warn_once(
                        "fill",
                        "rewardplug could not score a NeMo RL sample (%s); NeMo RL's environment "
                        "path has no mask, so its reward is %s (docs/integrations.md, NeMo RL)",
                        rewards[i].reason,
                        "its group's mean" if self.abstain_reward is None else fill,
                    )
                    values[i] = fill
                else:
                    values[i] = float(rewards[i].reward)  # type: ignore[arg-type]
        return values

    def global_post_process_and_metrics(self, batch: Any) -> tuple[Any, dict[str, Any]]:
        """NeMo RL's post-rollout hook: the batch unchanged, no metrics of our own."""
        return batch, {}

    def shutdown(self) -> None:
        """Nothing to release (the stack is shared per process)."""


_actor: Any = None


def __getattr__(name: str) -> Any:
    global _actor
    if name == "RewardplugEnvironment":
        if _actor is None:
            import ray

            # NeMo RL's create_env calls `.options(runtime_env=...).remote(env_config)` on it
            _actor = ray.remote(GroupedEnvironment)
        return _actor
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
