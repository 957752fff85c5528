"""SkyRL adapter: a skyrl-gym environment (groups of one) and a generator wrapper that discretizes
whole groups.

SkyRL (NovaSky-AI/SkyRL) rewards come from ``skyrl_gym`` environments: its generator creates one
environment per trajectory and takes the reward its ``step()`` returns -- one trajectory at a
time, so a group of one. The whole group is only in sight after generation: the generator's
``GeneratorOutput`` holds every trajectory of the batch, and each trajectory's ``TrajectoryID``
(``instance_id``: the prompt's uid, the same for its ``n_samples_per_prompt`` samples) says which
group it belongs to.

* :class:`RewardplugEnv` (``register(id="rewardplug", entry_point=
  "rewardplug.integrations.skyrl:RewardplugEnv")``, ``environment.env_class=rewardplug``) is a
  single-turn environment: ``step(action)`` scores the response on its own (its combined raw
  score, as a group of one) and keeps its sources' scores in ``get_metrics()``.
* :class:`GroupedGenerator` wraps SkyRL's generator (``BasePPOExp.get_generator``): after each
  ``generate`` it discretizes every group of trajectories of this environment whole --
  :func:`regroup`, from the sources' scores the environments kept, no second scoring -- and
  replaces their rewards, in training and in evaluation (both call the generator).

The stack: the environment config's ``stack`` or ``REWARDPLUG_STACK``. Fields: the prompt
(messages), the response (end markers such as ``<|im_end|>`` cut from its end); ``extras
["reward_spec"]["ground_truth"]`` (or ``extras["reference"]``) is the reference, ``extras
["tests"]`` / ``["rubric"]`` (or inside ``extra_info``) those fields, the rest of ``extra_info``
metadata.

SkyRL needs a number per trajectory: a trajectory the stack abstains on gets ``abstain_reward``
(0.0; a warning names it once) and, after :func:`regroup`, a zeroed loss mask (SkyRL's own
per-token mask: it contributes no loss; the fill value still counts in its group's advantage
baseline). ``rewardplug_reward_mask`` is an environment metric (averaged per step by SkyRL).
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from rewardplug.integrations.conventions import DEFAULT_STRIP_SUFFIXES
from rewardplug.integrations.openrlhf import strip_end_markers
from rewardplug.types import Reward, Sample, Score

if TYPE_CHECKING:
    from rewardplug.stack import Stack

# RewardplugEnv (a skyrl_gym BaseTextEnv) is built on first access: see __getattr__
__all__ = ["STACK_ENV", "GroupedGenerator", "regroup", "skyrl_sample"]

log = logging.getLogger(__name__)

STACK_ENV = "REWARDPLUG_STACK"
#: the key of the per-trajectory record in ``env.get_metrics()`` (not a number: SkyRL's metric
#: aggregation leaves it out)
RECORD = "rewardplug_record"
_warned: set[str] = set()


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
            f"no reward stack given: set {STACK_ENV}=/abs/path/stack.yaml in the environment of "
            "SkyRL's generator (or give the environment config a `stack` entry)"
        )
    from rewardplug.integrations.verl import get_stack  # the shared per-process stack cache

    return get_stack(path)


def skyrl_sample(prompt: Any, response: str, extras: Mapping[str, Any] | None) -> Sample:
    """One rewardplug sample for a SkyRL trajectory (``extras``: the dataset row's env extras)."""
    extras = dict(extras or {})
    info = extras.get("extra_info")
    fields: dict[str, Any] = {}
    metadata: dict[str, Any] = dict(info) if isinstance(info, Mapping) else {}
    spec = extras.get("reward_spec")
    truth = spec.get("ground_truth") if isinstance(spec, Mapping) else None
    truth = truth if truth is not None else extras.get("reference", metadata.pop("reference", None))
    if truth is not None:
        fields["reference"] = truth if isinstance(truth, str) else json.dumps(truth, default=str)
    for key in ("tests", "rubric"):
        value = extras.get(key, metadata.pop(key, None))
        if key == "tests" and isinstance(value, str):
            value = json.loads(value)
        if value is not None:
            fields[key] = value
    return Sample.model_validate(
        {
            **fields,
            "metadata": metadata,
            "prompt": prompt if isinstance(prompt, str | list) else str(prompt),
            "response": strip_end_markers(response, DEFAULT_STRIP_SUFFIXES),
        }
    )


def _plain_score(score: Score) -> dict[str, Any]:
    """A source's score as JSON data that ``Score.model_validate`` reads back (no computed
    fields): SkyRL may write environment metrics to JSONL."""
    return score.model_dump(mode="json", exclude=set(Score.model_computed_fields))


def _abstained(reward: Reward) -> bool:
    return reward.reward is None or not math.isfinite(reward.reward)


def _value(reward: Reward, fill: float) -> float:
    if not _abstained(reward):
        return float(reward.reward)  # type: ignore[arg-type]
    _warn_once(
        "fill",
        f"rewardplug could not score a SkyRL trajectory ({reward.reason}); SkyRL needs a number, "
        f"so its reward is the fill value {fill} (with GroupedGenerator its loss mask is zeroed "
        "too; docs/integrations.md, SkyRL)",
    )
    return fill


def _env_class() -> type:
    """``RewardplugEnv``: a skyrl_gym ``BaseTextEnv`` (built on first use, so that importing
    this module never imports skyrl_gym)."""
    from skyrl_gym.envs.base_text_env import BaseTextEnv, BaseTextEnvStepOutput

    # skyrl_gym is not installed where mypy runs (make frameworks): the base class is Any
    class RewardplugEnv(BaseTextEnv):  # type: ignore[misc]
        """A single-turn skyrl-gym environment whose reward is the stack's.

        ``env_config`` entries: ``stack`` (default ``$REWARDPLUG_STACK``), ``abstain_reward``
        (0.0). ``step`` scores the response alone (a group of one);
        :class:`GroupedGenerator` then discretizes the trajectories of a prompt together.
        """

        def __init__(self, env_config: Any = None, extras: dict[str, Any] | None = None):
            super().__init__()
            config = env_config if env_config is not None else {}
            get = config.get if hasattr(config, "get") else (lambda k, d=None: d)
            self.stack = _stack(get("stack", None))
            self.abstain_reward = float(get("abstain_reward", 0.0))
            self.extras = dict(extras or {})
            self.prompt: Any = ""
            self.record: dict[str, Any] | None = None
            self.mask = 1.0

        def init(self, prompt: Any) -> tuple[Any, dict[str, Any]]:
            self.prompt = prompt
            return prompt, {}

        def step(self, action: str) -> Any:
            sample = skyrl_sample(self.prompt, action, self.extras)
            scores = self.stack.score_sources([sample])
            (reward,) = self.stack.finish([sample], scores)
            self.record = {
                "sample": sample.model_dump(mode="json"),
                "scores": {name: _plain_score(s[0]) for name, s in scores.items()},
                "abstain_reward": self.abstain_reward,
            }
            self.mask = 0.0 if _abstained(reward) else 1.0
            return BaseTextEnvStepOutput(
                observations=[],
                reward=_value(reward, self.abstain_reward),
                done=True,
                metadata={"rewardplug": {"raw": reward.raw, "reward_mask": self.mask}},
            )

        def get_metrics(self) -> dict[str, Any]:
            if self.record is None:
                return {}
            return {"rewardplug_reward_mask": self.mask, RECORD: self.record}

    RewardplugEnv.__module__ = __name__
    return RewardplugEnv


def _instance_ids(input_batch: Mapping[str, Any], output: Mapping[str, Any]) -> list[str]:
    """The group of each row of a ``GeneratorOutput``: its trajectory's ``instance_id``."""
    ids = output.get("trajectory_ids") or input_batch.get("trajectory_ids")
    n = len(output["response_ids"])
    if ids is None or len(ids) != n:
        raise ValueError(
            f"SkyRL's generator output has {n} rows but {0 if ids is None else len(ids)} "
            "trajectory ids: rewardplug cannot tell which rows form a group"
        )
    return [str(getattr(t, "instance_id", t)) for t in ids]


def _set_reward(old: Any, value: float) -> Any:
    """``value`` in the shape SkyRL used: a float, or token-level rewards (a list) with the value
    where the environment's reward was (the last non-zero entry, else the last token)."""
    if not isinstance(old, list):
        return value
    out = [0.0] * len(old)
    if out:
        at = max((i for i, r in enumerate(old) if r), default=len(old) - 1)
        out[at] = value
    return out


def regroup(
    output: dict[str, Any],
    group_ids: Sequence[str],
    stack: str | os.PathLike[str] | Stack | None = None,
) -> dict[str, Any]:
    """Discretize the :class:`RewardplugEnv` trajectories of a ``GeneratorOutput`` per group.

    ``group_ids``: one per row (the ``instance_id`` of its trajectory). Rows whose environment
    kept no rewardplug record (other environments) are left as they are. The rows of a group are
    combined and discretized together from the source scores their environments computed, and
    their ``rewards`` replaced (same shape); an abstained row gets the fill value and a zeroed
    ``loss_masks`` entry. Returns ``output``, changed in place.
    """
    st = _stack(stack)
    metrics = output.get("env_metrics") or []
    groups: dict[str, list[int]] = {}
    for i, (m, gid) in enumerate(zip(metrics, group_ids, strict=True)):
        if isinstance(m, Mapping) and m.get(RECORD) is not None:
            groups.setdefault(gid, []).append(i)
    for gid, rows in groups.items():
        records = [metrics[i][RECORD] for i in rows]
        samples = [Sample.model_validate({**r["sample"], "group": f"uid:{gid}"}) for r in records]
        names = list(records[0]["scores"])
        scores = {n: [Score.model_validate(r["scores"][n]) for r in records] for n in names}
        for i, r, reward in zip(rows, records, st.finish(samples, scores), strict=True):
            output["rewards"][i] = _set_reward(
                output["rewards"][i], _value(reward, float(r["abstain_reward"]))
            )
            if _abstained(reward) and output.get("loss_masks") is not None:
                output["loss_masks"][i] = [0] * len(output["loss_masks"][i])
    return output


class GroupedGenerator:
    """SkyRL's generator, with the :class:`RewardplugEnv` rewards of each group discretized
    together after every ``generate`` (:func:`regroup`). Everything else is the wrapped
    generator's (attributes are forwarded)."""

    def __init__(self, generator: Any, stack: str | os.PathLike[str] | Stack | None = None):
        self.generator = generator
        self.stack = _stack(stack)

    async def generate(self, input_batch: Any) -> Any:
        output = await self.generator.generate(input_batch)
        regroup(output, _instance_ids(input_batch, output), self.stack)
        config = getattr(self.generator, "generator_cfg", None)
        if getattr(config, "zero_reward_on_non_stop", False) and output.get("stop_reasons"):
            # SkyRL zeroed these before: keep them zero (regroup wrote the group's rewards)
            for i, reason in enumerate(output["stop_reasons"]):
                if reason != "stop":
                    output["rewards"][i] = _set_reward(output["rewards"][i], 0.0)
        return output

    def __getattr__(self, name: str) -> Any:
        return getattr(self.generator, name)


_classes: dict[str, type] = {}


def __getattr__(name: str) -> Any:
    if name == "RewardplugEnv":
        if name not in _classes:
            _classes[name] = _env_class()
        return _classes[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
