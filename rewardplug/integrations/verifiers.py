"""verifiers adapter (the classic ``Rubric``): a group reward function that scores whole groups.

verifiers (PrimeIntellect-ai/verifiers; its classic stack, ``verifiers.legacy`` in 0.3.x and the
top-level API before) scores a rubric's reward functions in ``Rubric.score_group(states)`` with
all rollouts of one example. A function with plural parameters (``prompts``, ``completions``,
``answers``, ``states``, ...) is a *group* function: it is called once with the whole group and
returns one float per rollout. :func:`rubric` builds a ``vf.Rubric`` around such a function::

    import verifiers as vf
    from rewardplug.integrations.verifiers import rubric

    def load_environment(**kwargs):
        return vf.SingleTurnEnv(dataset=..., rubric=rubric("/abs/path/stack.yaml"))

(``group_reward(stack)`` is the function alone, to combine with other reward functions.)

* **Whole groups.** verifiers hands over every rollout of one example in one call (the
  environment runs a group's rollouts, then scores them together, whenever a rubric has a group
  function); the call is discretized as one group. There is no assembly and no partial group.
* **Failures are loud.** verifiers catches every ``Exception`` a reward function raises, logs it
  and scores the whole group ``0.0`` -- it would train on those zeros. So when rewardplug cannot
  score a group (a broken stack, a malformed ``info``), it logs an error with the reason and
  raises :class:`ScoringFailed`, a ``BaseException`` that ``except Exception`` does not catch: the
  rollout group, and the run, fail instead of training on zeros.
* **Abstentions.** verifiers needs a float per rollout, so a rollout the stack abstains on gets
  ``abstain_reward`` (0.0; a warning names it once) and the metric ``<name>_reward_mask`` = 0.0
  (1.0 for a scored rollout), which verifiers stores in ``state["metrics"]`` and reports with
  every rollout (prime-rl logs its mean per step). ``state["rewardplug"]`` holds the details
  (``raw``, ``tier``, ``n_tiers``, ``group_size``, ``abstained``, ``reason``).

Fields: ``prompt`` (messages, as dicts), ``completion`` -> the response (the text of its
assistant messages; a string completion as it is), ``answer`` -> ``reference`` (an empty answer,
verifiers' default, is none), ``info`` entries ``tests`` (an object or a JSON string), ``rubric``
and ``reference`` -> those fields, the rest metadata.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from rewardplug.types import Reward, Sample, content_text, digest

if TYPE_CHECKING:
    from rewardplug.stack import Stack

__all__ = ["STACK_ENV", "ScoringFailed", "group_reward", "rubric", "verifiers_samples"]

log = logging.getLogger(__name__)

STACK_ENV = "REWARDPLUG_STACK"
_FIELDS = ("reference", "tests", "rubric")
_warned: set[str] = set()


class ScoringFailed(BaseException):
    """rewardplug could not score a group.

    A ``BaseException``, not an ``Exception``: verifiers turns any ``Exception`` from a group
    reward function into rewards of 0.0 for the whole group, which a trainer would learn from.
    """


def _stack(stack: str | os.PathLike[str] | Stack | None) -> Stack:
    from rewardplug.stack import Stack

    if isinstance(stack, Stack):
        return stack
    path = stack if stack is not None else os.environ.get(STACK_ENV)
    if not path:
        raise ValueError(f"no reward stack given: pass its path, or set {STACK_ENV}")
    from rewardplug.integrations.verl import get_stack  # the shared per-process stack cache

    return get_stack(path)


def _plain(value: Any) -> Any:
    """A message or content part as plain data (verifiers' messages are pydantic models)."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return _plain(dump(exclude_none=True))
    return value


def _message(message: Any) -> dict[str, Any]:
    m = _plain(message)
    if not isinstance(m, dict):
        return {"role": "user", "content": str(m)}
    return {"role": m.get("role", "user"), "content": m.get("content")}


def _response(completion: Any) -> str:
    """The assistant's part of a completion (a string, or messages of every role): the text of
    its assistant messages, one per line."""
    if isinstance(completion, str) or completion is None:
        return completion or ""
    messages = [_message(m) for m in completion]
    return "\n".join(
        content_text(m["content"]) for m in messages if m["role"] in ("assistant", "text")
    )


def _fields(answer: Any, info: Any, position: int) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    if answer is not None and answer != "":
        fields["reference"] = answer if isinstance(answer, str) else json.dumps(answer, default=str)
    metadata: dict[str, Any] = {}
    for key, value in (info if isinstance(info, Mapping) else {}).items():
        if key in _FIELDS and value is not None and fields.get(key) is None:
            fields[key] = value
        else:
            metadata[key] = value
    if isinstance(fields.get("tests"), str):
        try:
            fields["tests"] = json.loads(fields["tests"])
        except json.JSONDecodeError as exc:
            raise ValueError(f"rollout {position}: info['tests'] is not JSON ({exc})") from None
    fields["metadata"] = metadata
    return fields


def verifiers_samples(
    prompts: Sequence[Any],
    completions: Sequence[Any],
    answers: Sequence[Any] | None = None,
    infos: Sequence[Any] | None = None,
    states: Sequence[Any] | None = None,
) -> list[Sample]:
    """rewardplug samples for one verifiers group (all rollouts of one example): one group."""
    n = len(completions)
    answers = list(answers) if answers is not None else [None] * n
    infos = list(infos) if infos is not None else [None] * n
    states = list(states) if states is not None else [{}] * n
    if not (len(prompts) == len(answers) == len(infos) == len(states) == n):
        raise ValueError(f"verifiers passed {len(prompts)} prompts for {n} completions")
    first = states[0] if states else {}
    example = first.get("example_id") if isinstance(first, Mapping) else None
    group = f"example:{example}" if example is not None else digest(str(_plain(prompts[0])))
    samples = []
    for i in range(n):
        prompt = prompts[i]
        prompt = prompt if isinstance(prompt, str) else [_message(m) for m in prompt or []]
        state = states[i] if isinstance(states[i], Mapping) else {}
        fields = _fields(answers[i], infos[i], i)
        fields["metadata"].update(example_id=example, is_truncated=state.get("is_truncated"))
        samples.append(
            Sample.model_validate(
                {
                    **fields,
                    "id": str(state.get("trajectory_id") or i),
                    "group": group,
                    "prompt": prompt,
                    "response": _response(completions[i]),
                }
            )
        )
    return samples


def _details(reward: Reward) -> dict[str, Any]:
    return {
        "raw": reward.raw,
        "tier": reward.tier,
        "n_tiers": reward.n_tiers,
        "group_size": reward.group_size,
        "abstained": reward.reward is None,
        "reason": reward.reason,
    }


def group_reward(
    stack: str | os.PathLike[str] | Stack | None = None,
    *,
    name: str = "rewardplug",
    abstain_reward: float = 0.0,
) -> Callable[..., Any]:
    """A verifiers group reward function (async) that discretizes each group whole.

    :param stack: a stack or its YAML path (default ``$REWARDPLUG_STACK``), loaded now.
    :param name: the function's ``__name__``: verifiers' metric name for it.
    :param abstain_reward: the reward of a rollout the stack abstains on (see module docstring).
    """
    st = _stack(stack)
    fill = float(abstain_reward)
    if not math.isfinite(fill):
        raise ValueError(f"abstain_reward must be finite, not {abstain_reward}")

    async def reward(
        prompts: Sequence[Any],
        completions: Sequence[Any],
        answers: Sequence[Any] | None = None,
        states: Sequence[Any] | None = None,
        infos: Sequence[Any] | None = None,
        **_: Any,
    ) -> list[float]:
        try:
            samples = verifiers_samples(prompts, completions, answers, infos, states)
            rewards = await st.ascore(samples)
        except Exception as exc:
            reason = f"{type(exc).__name__}: {exc}"
            log.error(
                "rewardplug could not score a verifiers group of %d rollouts (%s); raising "
                "ScoringFailed so that verifiers does not score the group 0.0",
                len(completions),
                reason,
            )
            raise ScoringFailed(reason) from exc
        out = []
        for i, r in enumerate(rewards):
            details = _details(r)
            filled = r.reward is None or not math.isfinite(r.reward)
            details["reward_mask"] = 0.0 if filled else 1.0
            if states is not None and isinstance(states[i], dict):
                states[i]["rewardplug"] = details
            if filled and "fill" not in _warned:
                _warned.add("fill")
                log.warning(
                    "rewardplug could not score a verifiers rollout (%s); verifiers needs a "
                    "number, so its reward is the fill value %s with the metric %s_reward_mask = "
                    "0.0 (docs/integrations.md, verifiers)",
                    r.reason,
                    fill,
                    name,
                )
            out.append(fill if filled else float(r.reward))  # type: ignore[arg-type]
        return out

    reward.__name__ = reward.__qualname__ = name
    return reward


def _mask_metric(name: str) -> Callable[..., Any]:
    """A group function (weight 0: a metric) reporting each rollout's ``reward_mask``, read from
    what :func:`group_reward` wrote into its state just before (same rubric, earlier function)."""

    def mask(states: Sequence[Any], **_: Any) -> list[float]:
        out = []
        for state in states:
            details = state.get("rewardplug") if isinstance(state, Mapping) else None
            if details is None:
                raise ScoringFailed(
                    f"{name}_reward_mask runs after the rewardplug group reward function of the "
                    "same rubric (use rewardplug.integrations.verifiers.rubric)"
                )
            out.append(details["reward_mask"])
        return out

    mask.__name__ = mask.__qualname__ = f"{name}_reward_mask"
    return mask


def rubric(
    stack: str | os.PathLike[str] | Stack | None = None,
    *,
    name: str = "rewardplug",
    abstain_reward: float = 0.0,
    weight: float = 1.0,
    **kwargs: Any,
) -> Any:
    """A ``vf.Rubric`` with the rewardplug group reward function (weight ``weight``) and its
    ``<name>_reward_mask`` metric (weight 0). ``kwargs`` go to ``vf.Rubric`` (e.g. ``parser``)."""
    import verifiers as vf

    if not hasattr(vf, "Rubric"):
        raise ImportError(
            f"verifiers {getattr(vf, '__version__', '?')} has no classic Rubric (verifiers >= 0.4 "
            "ships only verifiers.v1, whose rewards are per episode): use verifiers < 0.4"
        )
    funcs = [group_reward(stack, name=name, abstain_reward=abstain_reward), _mask_metric(name)]
    return vf.Rubric(funcs=funcs, weights=[weight, 0.0], **kwargs)
