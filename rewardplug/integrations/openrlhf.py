"""OpenRLHF's remote reward protocol: request parsing and response building (no web framework).

OpenRLHF (``--remote_rm_url http://host:port/get_reward``) POSTs a JSON body

    {"query": [prompt + response, ...], "prompts": [prompt, ...], "labels": [label, ...]}

and reads ``rewards`` (one float per query; used for advantages), ``scores`` (one float per query;
used for dynamic filtering) and ``extra_logs`` (a mapping of name -> one float per query, logged by
the trainer) from the answer. This module turns such a body into :class:`~rewardplug.Sample` objects
and rewards back into that answer; :mod:`rewardplug.server` serves it over HTTP.

* The response is recovered by stripping the prompt prefix from the query. When the decoded query
  does not start with the prompt (tokenizers may normalise whitespace or add special tokens), the
  text after the prompt's first occurrence is used; when the prompt does not occur at all, the
  whole query is the response and ``extra_logs["prompt_not_found"]`` says so for that sample.
* Without ``--group-size``, responses to one prompt *in one request* form a group, and groups never
  span requests. That is only right when a client sends a prompt's samples together, and current
  OpenRLHF does not: since 0.9.1 its agent executor posts **one sample per request**, so every
  group has one member and tie-grouping does nothing (the server warns). With ``rewardplug serve
  --group-size N`` the server assembles groups *across* requests (:mod:`rewardplug.groups`): the
  group key is a label's ``group`` (or ``uid``) where present, else the prompt, and each request is
  answered when its group is complete or its deadline passes.
* A label is a reference answer (string), or a JSON object (or a string holding one) whose keys
  are sample fields: ``reference``, ``tests``, ``rubric``, ``metadata`` or any dataset column.
* The trainer needs a number for every query, so a sample the stack abstains on gets
  ``abstain_reward`` (0.0 by default) and ``extra_logs["abstained"] = 1.0``; ``reasons`` (an extra
  top-level key OpenRLHF ignores) says why.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

from rewardplug.types import Reward, Sample, _digest

__all__ = ["ProtocolError", "build_response", "parse_request", "split_query"]

_LABEL_FIELDS = ("reference", "tests", "rubric", "metadata")


class ProtocolError(ValueError):
    """A request that does not follow the protocol; the message says what to fix."""


def split_query(query: str, prompt: str) -> tuple[str, bool]:
    """The response inside ``query`` (prompt + response) and whether the prompt was found."""
    if not prompt:
        return query, True
    if query.startswith(prompt):
        return query[len(prompt) :], True
    at = query.find(prompt)
    if at >= 0:
        return query[at + len(prompt) :], True
    return query, False


def _label_fields(label: Any, index: int) -> dict[str, Any]:
    """Sample fields carried by one label (see module docstring)."""
    if label is None:
        return {}
    if isinstance(label, str):
        stripped = label.strip()
        if stripped.startswith("{"):
            try:
                parsed = json.loads(stripped)
            except json.JSONDecodeError:
                parsed = None
            if isinstance(parsed, dict) and any(k in parsed for k in _LABEL_FIELDS):
                label = parsed
        if isinstance(label, str):
            return {"reference": label}
    if isinstance(label, dict):
        return {k: v for k, v in label.items() if k not in ("id", "group", "prompt", "response")}
    if isinstance(label, int | float) and not isinstance(label, bool):
        return {"reference": str(label)}
    raise ProtocolError(
        f"labels[{index}] is a {type(label).__name__}; a label is a string (the reference answer) "
        "or an object with sample fields such as reference, tests, rubric"
    )


def parse_request(
    body: Any, tag: str = "r", *, across_requests: bool = False
) -> tuple[list[Sample], list[bool]]:
    """Samples for one request body, and per sample whether its prompt was found in its query.

    ``tag`` scopes the groups to this request (the server passes a request counter). With
    ``across_requests`` groups are not scoped: a sample's group is its label's ``group``/``uid``
    or its prompt, and its id is a hash of its content (not of its position), so a group's rewards
    do not depend on how its members were split into requests.
    Raises :class:`ProtocolError` on a malformed body.
    """
    if not isinstance(body, dict):
        raise ProtocolError(
            f"the body must be a JSON object with 'query', 'prompts' and 'labels', "
            f"not a JSON {type(body).__name__}"
        )
    unknown = sorted(set(body) - {"query", "prompts", "labels"})
    if unknown:
        raise ProtocolError(f"unknown keys {unknown}; allowed keys: query, prompts, labels")
    queries = _string_list(body, "query", required=True)
    n = len(queries)
    prompts = _string_list(body, "prompts", required=False)
    if prompts is None:
        raise ProtocolError(
            "'prompts' is missing: send the prompt of each query so the response can be "
            "recovered and responses to one prompt can be compared with each other"
        )
    if len(prompts) != n:
        raise ProtocolError(
            f"'prompts' has {len(prompts)} items but 'query' has {n}; they must match"
        )
    labels = body.get("labels")
    if labels is None:
        labels = [None] * n
    elif not isinstance(labels, list):
        raise ProtocolError(f"'labels' must be a list, not a JSON {type(labels).__name__}")
    elif len(labels) != n:
        raise ProtocolError(
            f"'labels' has {len(labels)} items but 'query' has {n}; they must match"
        )
    samples, found = [], []
    for i, (query, prompt, label) in enumerate(zip(queries, prompts, labels, strict=True)):
        response, ok = split_query(query, prompt)
        fields = _label_fields(label, i)
        if across_requests:
            key = _label_group(label, i)
            ids = {"id": _digest([prompt, response, label]), "group": key or _digest(prompt)}
        else:
            ids = {"id": f"{tag}:{i}", "group": f"{tag}:{_digest(prompt)}"}
        try:
            sample = Sample.model_validate(
                {**fields, **ids, "prompt": prompt, "response": response}
            )
        except ValueError as exc:
            raise ProtocolError(f"labels[{i}]: {exc}") from None
        samples.append(sample)
        found.append(ok)
    return samples, found


def _label_group(label: Any, index: int) -> str | None:
    """A group key carried by a label object (``group`` or ``uid``), if any."""
    if isinstance(label, str) and label.strip().startswith("{"):
        try:
            label = json.loads(label)
        except json.JSONDecodeError:
            return None
    if not isinstance(label, dict):
        return None
    for name in ("group", "uid"):
        key = label.get(name)
        if key is None:
            continue
        if isinstance(key, bool) or not isinstance(key, str | int) or key == "":
            raise ProtocolError(
                f"labels[{index}].{name} is {key!r}; a group key is a non-empty string or an integer"
            )
        return f"{name}:{key}"
    return None


def _string_list(body: dict[str, Any], key: str, required: bool) -> list[str] | None:
    value = body.get(key)
    if value is None:
        if required:
            raise ProtocolError(f"'{key}' is missing: send a list of strings")
        return None
    if not isinstance(value, list):
        raise ProtocolError(f"'{key}' must be a list of strings, not a JSON {type(value).__name__}")
    bad = next((i for i, v in enumerate(value) if not isinstance(v, str)), None)
    if bad is not None:
        raise ProtocolError(f"'{key}[{bad}]' is a {type(value[bad]).__name__}; expected a string")
    return value


def _number(value: float | None, fill: float) -> float:
    return fill if value is None or not math.isfinite(value) else float(value)


def build_response(
    rewards: Sequence[Reward],
    found: Sequence[bool],
    abstain_reward: float = 0.0,
) -> dict[str, Any]:
    """The protocol answer for one request's rewards (every list has one entry per query).

    ``extra_logs`` holds, per sample: ``raw`` (combined score before discretizing), ``tier``,
    ``n_tiers``, ``abstained`` (1.0 / 0.0), ``prompt_not_found`` (1.0 / 0.0), ``group_size``
    (members discretized together), ``partial_group`` (1.0 when its deadline passed first) and one
    ``source/<name>`` entry per source (its point estimate). Missing numbers are ``abstain_reward``.
    """
    fill = float(abstain_reward)
    names: dict[str, None] = {}
    for r in rewards:
        names.update(dict.fromkeys(r.sources))
    logs: dict[str, list[float]] = {
        "raw": [_number(r.raw, fill) for r in rewards],
        "tier": [float(r.tier) if r.tier is not None else -1.0 for r in rewards],
        "n_tiers": [float(r.n_tiers) if r.n_tiers is not None else 0.0 for r in rewards],
        "abstained": [1.0 if r.reward is None else 0.0 for r in rewards],
        "prompt_not_found": [0.0 if ok else 1.0 for ok in found],
        "group_size": [float(r.group_size or 0) for r in rewards],
        "partial_group": [1.0 if r.partial else 0.0 for r in rewards],
    }
    for name in names:
        logs[f"source/{name}"] = [
            _number(s.value if (s := r.sources.get(name)) is not None and s.ok else None, fill)
            for r in rewards
        ]
    return {
        "rewards": [_number(r.reward, fill) for r in rewards],
        "scores": [_number(r.raw, fill) for r in rewards],
        "extra_logs": logs,
        "reasons": [r.reason for r in rewards],
    }
