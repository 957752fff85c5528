"""NeMo Gym's ``/verify`` wire format, as rewardplug reads and answers it.

A ``/verify`` request is the task row (``responses_create_params``, the task's own fields, the
collector's ``_ng_*`` keys) with the model's ``response`` (a Responses API object); the answer is
the request echoed with ``reward`` and NeMo Gym's typed-failure fields (``mask_sample``,
``failure_kind``, ``failure_reason``). This module turns a request into a rewardplug sample and its
group key, and a reward into answer fields; :mod:`rewardplug.integrations.nemo_gym` serves them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from rewardplug.types import Reward, Sample, content_text, digest

__all__ = [
    "ABSTAINED",
    "COHORT_INCOMPLETE",
    "GROUP_SIZE_FIELD",
    "ROLLOUT_INDEX_KEY",
    "VERIFIER_ERROR",
    "failed_fields",
    "group_key",
    "gym_sample",
    "plain",
    "prompt_messages",
    "response_text",
    "verify_fields",
]

GROUP_ID_KEY = "_ng_group_id"
GROUP_ATTEMPT_KEY = "_ng_group_attempt"
TASK_INDEX_KEY = "_ng_task_index"
ROLLOUT_INDEX_KEY = "_ng_rollout_index"
#: a task-row field that overrides the server's group size for that task
GROUP_SIZE_FIELD = "rewardplug_group_size"
#: ``failure_kind`` values: NeMo Gym's shared vocabulary, and a namespaced one of ours
ABSTAINED = "rewardplug:abstained"
VERIFIER_ERROR = "verifier_error"
COHORT_INCOMPLETE = "cohort_incomplete"
_REFERENCE_KEYS = ("reference", "expected_answer", "answer", "ground_truth", "solution")
#: request keys that are not task fields
_NOT_TASK = frozenset({"responses_create_params", "response", "agent_ref", "task_source"})


def plain(value: Any) -> Any:
    """``value`` as JSON data (a pydantic model of NeMo Gym's dumped; anything else as it is)."""
    dump = getattr(value, "model_dump", None)
    return dump(mode="json") if callable(dump) else value


def prompt_messages(params: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The chat messages of a Responses API request (``responses_create_params``): its
    ``instructions`` as a system message, then its ``input`` (a string or message items)."""
    messages: list[dict[str, Any]] = []
    if params.get("instructions"):
        messages.append({"role": "system", "content": str(params["instructions"])})
    items = params.get("input") or []
    if isinstance(items, str):
        return [*messages, {"role": "user", "content": items}]
    for item in items:
        item = plain(item)
        if not isinstance(item, Mapping) or item.get("type", "message") != "message":
            continue  # tool calls and their outputs are not prompt text
        content = item.get("content")
        messages.append({"role": item.get("role", "user"), "content": content_text(content)})
    return messages


def response_text(response: Any) -> str:
    """The text of a Responses API response: its assistant messages' ``output_text`` parts
    (reasoning and tool-call items left out), one message per line."""
    out = []
    for item in plain(response).get("output") or []:
        if isinstance(item, Mapping) and item.get("type") == "message":
            parts = item.get("content") or []
            text = parts if isinstance(parts, str) else content_text(parts)
            out.append(text)
    return "\n".join(out)


def group_key(body: Mapping[str, Any]) -> str:
    """The group a ``/verify`` request belongs to (module docstring)."""
    if body.get(GROUP_ID_KEY) is not None:
        return f"group:{body[GROUP_ID_KEY]}:{int(body.get(GROUP_ATTEMPT_KEY) or 0)}"
    params = plain(body.get("responses_create_params") or {})
    prompt = digest([params.get("instructions"), plain(params.get("input"))])
    task = body.get(TASK_INDEX_KEY)
    return f"task:{task}:{prompt}" if task is not None else f"prompt:{prompt}"


def gym_sample(body: Mapping[str, Any], key: str | None = None) -> Sample:
    """One rewardplug sample for a ``/verify`` request (a dict, as NeMo Gym posts it).

    The prompt is ``responses_create_params`` as chat messages, the response the text of the
    model's assistant messages; the task's ``reference`` (else ``expected_answer``, ``answer``,
    ``ground_truth``, ``solution``), ``tests`` and ``rubric`` -- top-level or inside a
    ``verifier_metadata`` object -- are those fields; every other task field is metadata. Its id
    is a digest of the rollout index and the response, its group ``key``."""
    fields: dict[str, Any] = {}
    metadata: dict[str, Any] = {}
    nested = body.get("verifier_metadata")
    candidates = [*body.items(), *(nested.items() if isinstance(nested, Mapping) else ())]
    for name, value in candidates:
        if name in _NOT_TASK or name == "verifier_metadata":
            continue
        if name in _REFERENCE_KEYS and "reference" not in fields and value is not None:
            fields["reference"] = value if isinstance(value, str) else str(value)
        elif name in ("tests", "rubric") and value is not None and name not in fields:
            fields[name] = value
        else:
            metadata.setdefault(name, value)
    response = plain(body.get("response") or {})
    return Sample.model_validate(
        {
            **fields,
            "metadata": metadata,
            "id": digest({"rollout": body.get(ROLLOUT_INDEX_KEY), "response": response}),
            "group": key if key is not None else group_key(body),
            "prompt": prompt_messages(plain(body.get("responses_create_params") or {})),
            "response": response_text(response),
        }
    )


def _abstained(reward: Reward) -> bool:
    return reward.reward is None or not math.isfinite(reward.reward)


def verify_fields(
    reward: Reward, *, expected: int, fill: float, instance_config: Any = None
) -> dict[str, Any]:
    """The ``/verify`` answer's fields for one reward (added to the echoed request)."""
    abstained = _abstained(reward)
    out: dict[str, Any] = {
        "reward": fill if abstained else float(reward.reward),  # type: ignore[arg-type]
        "mask_sample": abstained,
        "rewardplug": {
            "raw": reward.raw,
            "tier": reward.tier,
            "n_tiers": reward.n_tiers,
            "group_size": reward.group_size,
            "partial_group": reward.partial,
            "abstained": abstained,
            "reason": reward.reason,
        },
    }
    if abstained:
        out["failure_kind"] = VERIFIER_ERROR if reward.status == "error" else ABSTAINED
        out["failure_reason"] = (reward.reason or "the stack could not score this rollout")[:2000]
        # NeMo RL reads the nested flag (its rollouts' _extract_mask_sample_flags)
        base = instance_config if isinstance(instance_config, Mapping) else {}
        out["instance_config"] = {**base, "mask_sample": True}
    elif reward.partial:
        out["failure_kind"] = COHORT_INCOMPLETE
        out["failure_reason"] = (
            f"the group had {reward.group_size} of {expected} rollouts at its deadline and was "
            "discretized with those (the reward is valid among them)"
        )
    return out


def failed_fields(exc: BaseException, fill: float, instance_config: Any) -> dict[str, Any]:
    """A typed failure answer for a rollout whose group could not be scored at all."""
    base = instance_config if isinstance(instance_config, Mapping) else {}
    return {
        "reward": fill,
        "mask_sample": True,
        "failure_kind": VERIFIER_ERROR,
        "failure_reason": f"rewardplug could not score the group: {type(exc).__name__}: {exc}"[
            :2000
        ],
        "instance_config": {**base, "mask_sample": True},
        "rewardplug": {"abstained": True, "reason": str(exc)},
    }
