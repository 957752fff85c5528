"""OpenRLHF's remote reward protocol: request parsing and response building (no web framework).

OpenRLHF (``--reward.remote_url http://host:port/get_reward`` in 0.11) POSTs a JSON body

    {"query": [prompt + response, ...], "prompts": [prompt, ...], "labels": [label, ...]}

and reads ``rewards`` (one float per query; used for advantages), ``scores`` (one float per query;
used for dynamic filtering) and ``extra_logs`` (a mapping of name -> one float per query, logged by
the trainer) from the answer. This module turns such a body into :class:`~rewardplug.Sample` objects
and rewards back into that answer; :mod:`rewardplug.server` serves it over HTTP.

* The response is recovered by stripping the prompt prefix from the query. When the decoded query
  does not start with the prompt (tokenizers may normalise whitespace or add special tokens), the
  text after the prompt's first occurrence is used; when the prompt does not occur at all, the
  whole query is the response and ``extra_logs["prompt_not_found"]`` says so for that sample.
* OpenRLHF decodes prompt + response with ``skip_special_tokens=False``, so a response ends with
  the chat template's end-of-turn text (``def add(a, b): ...<|im_end|>``), which a code source
  would run as code. Those end markers (:data:`DEFAULT_STRIP_SUFFIXES`, configurable) are cut from
  the *end* of the response, repeatedly and with the whitespace around them, before scoring.
* Without ``--group-size``, responses to one prompt *in one request* form a group, and groups never
  span requests. That is only right when a client sends a prompt's samples together, and current
  OpenRLHF does not: since 0.9.1 its agent executor posts **one sample per request**, so every
  group has one member and tie-grouping does nothing (the server warns). With ``rewardplug serve
  --group-size N`` the server assembles groups *across* requests (:mod:`rewardplug.groups`): the
  group key is a label's ``group`` (or ``uid``) where present, else the prompt, and each request is
  answered when its group is complete or its deadline passes.
* A label is a reference answer (string), or a JSON object (or a string holding one) whose keys
  are sample fields: ``reference``, ``tests``, ``rubric``, ``metadata`` or any dataset column.
  Three keys steer the grouping instead: ``group``/``uid`` (the group key), ``group_size`` (this
  sample's group size) and ``split`` (``"test"``, ``"eval"``, ``"val"``, ``"validation"`` or
  ``"dev"`` mark an evaluation sample: it is grouped apart from training samples, see
  :class:`ParsedRequest`).
* The body and the label strings that hold JSON are parsed within limits
  (:mod:`rewardplug.integrations.safe_json`: nesting depth, digits per number, values per request;
  no ``NaN``/``Infinity``): a label string past a limit is a :class:`ProtocolError` naming it.
* The trainer needs a number for every query, so a sample the stack abstains on gets
  ``abstain_reward`` (0.0 by default), ``extra_logs["abstained"] = 1.0`` and
  ``extra_logs["reward_mask"] = 0.0`` (1.0 for a real reward); ``reasons`` (an extra top-level key
  OpenRLHF ignores) says why.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rewardplug.integrations.conventions import (
    DEFAULT_STRIP_SUFFIXES,
    EVAL_SPLITS,
    is_eval_split,
)
from rewardplug.integrations.safe_json import JSONLimitError, JSONReader, MalformedJSON
from rewardplug.types import Reward, Sample, digest

__all__ = [
    "DEFAULT_STRIP_SUFFIXES",
    "EVAL_SPLITS",
    "ParsedRequest",
    "ProtocolError",
    "build_response",
    "parse_request",
    "read_request",
    "split_query",
    "strip_end_markers",
]

_LABEL_FIELDS = ("reference", "tests", "rubric", "metadata")
#: label keys that steer grouping (a JSON label holding only these is still an object)
_CONTROL_KEYS = ("group", "uid", "group_size", "split")


class ProtocolError(ValueError):
    """A request that does not follow the protocol; the message says what to fix."""


@dataclass
class ParsedRequest:
    """One request body as samples, plus what the labels say about grouping.

    Evaluation samples (``split`` in :data:`EVAL_SPLITS`) get group keys of their own (prefixed
    ``eval:``), so an evaluation response never joins a training group of the same prompt.
    """

    samples: list[Sample]
    #: per sample: whether its prompt was found in its query
    found: list[bool]
    #: per sample: the group size its label asks for (``group_size``), None when it says nothing
    group_sizes: list[int | None]
    #: per sample: whether its label marks it as an evaluation sample
    evaluation: list[bool]
    #: per sample: whether an end marker was cut from its response
    stripped: list[bool]


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


def strip_end_markers(text: str, suffixes: Sequence[str] = DEFAULT_STRIP_SUFFIXES) -> str:
    """``text`` without the end markers ``suffixes`` at its end (repeatedly, with the whitespace
    around them); unchanged -- trailing whitespace included -- when it ends with none of them.

    ``"def f(): ...\n<|im_end|>\n<|endoftext|>"`` -> ``"def f(): ..."``; a marker in the middle of
    the text stays."""
    if not suffixes:
        return text
    end = None
    trimmed = text.rstrip()
    while True:
        for suffix in suffixes:
            if suffix and trimmed.endswith(suffix):
                trimmed = trimmed[: -len(suffix)].rstrip()
                end = len(trimmed)
                break
        else:
            break
    return text if end is None else text[:end]


def _short(value: Any) -> str:
    """``repr(value)``, cut to 60 characters (a hostile value can be megabytes long)."""
    try:
        text = repr(value)
    except ValueError:  # it holds an int past Python's int-to-str limit
        return f"a {type(value).__name__} holding an integer too large to print"
    return text if len(text) <= 60 else f"{text[:40]}...({len(text)} characters)"


def _label_object(label: Any, index: int, reader: JSONReader) -> dict[str, Any] | None:
    """The label as an object: a JSON object, or a string holding one with a sample field or a
    grouping key; None for a plain reference answer. A string past the JSON limits (``reader``)
    is a :class:`ProtocolError`; one that is not JSON at all is a plain reference answer."""
    if isinstance(label, dict):
        return label
    if isinstance(label, str) and label.lstrip().startswith("{"):
        try:
            parsed = reader.loads(label)
        except MalformedJSON:
            return None
        except JSONLimitError as exc:
            raise ProtocolError(f"labels[{index}] holds JSON past a limit: {exc}") from None
        if isinstance(parsed, dict) and any(k in parsed for k in (*_LABEL_FIELDS, *_CONTROL_KEYS)):
            return parsed
    return None


def _label_fields(label: Any, obj: dict[str, Any] | None, index: int) -> dict[str, Any]:
    """Sample fields carried by one label (see module docstring)."""
    if obj is not None:
        return {k: v for k, v in obj.items() if k not in ("id", "group", "prompt", "response")}
    if label is None:
        return {}
    if isinstance(label, str):
        return {"reference": label}
    if isinstance(label, int | float) and not isinstance(label, bool):
        return {"reference": str(label)}
    raise ProtocolError(
        f"labels[{index}] is a {type(label).__name__}; a label is a string (the reference answer) "
        "or an object with sample fields such as reference, tests, rubric"
    )


def parse_request(
    body: Any,
    tag: str = "r",
    *,
    across_requests: bool = False,
    strip_suffixes: Sequence[str] = DEFAULT_STRIP_SUFFIXES,
) -> tuple[list[Sample], list[bool]]:
    """Samples for one request body, and per sample whether its prompt was found in its query.

    ``tag`` scopes the groups to this request (the server passes a request counter). With
    ``across_requests`` groups are not scoped: a sample's group is its label's ``group``/``uid``
    or its prompt, and its id is a hash of its content (not of its position), so a group's rewards
    do not depend on how its members were split into requests. ``strip_suffixes``: end markers
    cut from the end of each response (:func:`strip_end_markers`; ``()`` keeps it as it is).
    Raises :class:`ProtocolError` on a malformed body. :func:`read_request` says more.
    """
    parsed = read_request(body, tag, across_requests=across_requests, strip_suffixes=strip_suffixes)
    return parsed.samples, parsed.found


def read_request(
    body: Any,
    tag: str = "r",
    *,
    across_requests: bool = False,
    strip_suffixes: Sequence[str] = DEFAULT_STRIP_SUFFIXES,
    reader: JSONReader | None = None,
) -> ParsedRequest:
    """:func:`parse_request`, with what the labels say about grouping (:class:`ParsedRequest`).

    ``reader`` parses the label strings that hold JSON; pass the one that parsed the body, so
    that its value limit counts the whole request."""
    reader = reader if reader is not None else JSONReader()
    if not isinstance(body, dict):
        raise ProtocolError(
            f"the body must be a JSON object with 'query', 'prompts' and 'labels', "
            f"not a JSON {type(body).__name__}"
        )
    unknown = sorted(set(body) - {"query", "prompts", "labels"})
    if unknown:
        raise ProtocolError(f"unknown keys {unknown}; allowed keys: query, prompts, labels")
    queries = _string_list(body, "query")
    if queries is None:
        raise ProtocolError("'query' is missing: send a list of strings")
    n = len(queries)
    prompts = _string_list(body, "prompts")
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
    out = ParsedRequest([], [], [], [], [])
    for i, (query, prompt, label) in enumerate(zip(queries, prompts, labels, strict=True)):
        response, ok = split_query(query, prompt)
        cut = strip_end_markers(response, strip_suffixes)
        obj = _label_object(label, i, reader)
        evaluation = _label_split(obj, i)
        size = _label_group_size(obj, i)
        key = _label_group(obj, i) if across_requests else None
        try:
            fields = _label_fields(label, obj, i)
            if across_requests:
                key = key or digest(prompt)
                ids = {
                    "id": digest([prompt, cut, label]),
                    "group": f"eval:{key}" if evaluation else key,
                }
            else:
                ids = {"id": f"{tag}:{i}", "group": f"{tag}:{digest(prompt)}"}
            sample = Sample.model_validate({**fields, **ids, "prompt": prompt, "response": cut})
        except ProtocolError:
            raise
        except ValueError as exc:  # pydantic's, or an int past Python's int-to-str limit
            raise ProtocolError(f"labels[{i}]: {exc}") from None
        out.samples.append(sample)
        out.found.append(ok)
        out.group_sizes.append(size)
        out.evaluation.append(evaluation)
        out.stripped.append(len(cut) != len(response))
    return out


def _label_group(obj: dict[str, Any] | None, index: int) -> str | None:
    """A group key carried by a label object (``group`` or ``uid``), if any."""
    if obj is None:
        return None
    for name in ("group", "uid"):
        key = obj.get(name)
        if key is None:
            continue
        if isinstance(key, bool) or not isinstance(key, str | int) or key == "":
            raise ProtocolError(
                f"labels[{index}].{name} is {_short(key)}; a group key is a non-empty string or "
                "an integer"
            )
        return f"{name}:{key}"
    return None


def _label_group_size(obj: dict[str, Any] | None, index: int) -> int | None:
    size = None if obj is None else obj.get("group_size")
    if size is None:
        return None
    digits = size.strip() if isinstance(size, str) else ""
    if digits.isascii() and digits.isdigit() and len(digits) <= 18:  # "8" but not "²" or 10**5000
        size = int(digits)
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ProtocolError(
            f"labels[{index}].group_size is {_short(size)}; it must be an integer >= 1 (the "
            "number of responses generated for this prompt)"
        )
    return size


def _label_split(obj: dict[str, Any] | None, index: int) -> bool:
    """Whether a label object marks an evaluation sample (``split`` in :data:`EVAL_SPLITS`)."""
    split = None if obj is None else obj.get("split")
    if split is None:
        return False
    if not isinstance(split, str):
        raise ProtocolError(
            f"labels[{index}].split is {_short(split)}; it must be a string such as "
            '"train" or "test"'
        )
    return is_eval_split(split)


def _string_list(body: dict[str, Any], key: str) -> list[str] | None:
    """``body[key]`` checked to be a list of strings; None when it is missing."""
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, list):
        raise ProtocolError(f"'{key}' must be a list of strings, not a JSON {type(value).__name__}")
    for i, v in enumerate(value):
        if not isinstance(v, str):
            raise ProtocolError(f"'{key}[{i}]' is a {type(v).__name__}; expected a string")
    return value


def _missing(value: float | None) -> bool:
    return value is None or not math.isfinite(value)


def _number(value: float | None, fill: float) -> float:
    return fill if value is None or not math.isfinite(value) else float(value)


def build_response(
    rewards: Sequence[Reward],
    found: Sequence[bool],
    abstain_reward: float = 0.0,
) -> dict[str, Any]:
    """The protocol answer for one request's rewards (every list has one entry per query).

    ``extra_logs`` holds, per sample: ``raw`` (combined score before discretizing), ``tier``,
    ``n_tiers``, ``abstained`` (1.0 / 0.0), ``reward_mask`` (0.0 when ``rewards`` holds the fill
    value ``abstain_reward`` instead of a reward, 1.0 otherwise), ``prompt_not_found`` (1.0 / 0.0),
    ``group_size`` (members discretized together), ``partial_group`` (1.0 when its deadline passed
    first) and one ``source/<name>`` entry per source (its point estimate). Missing numbers are
    ``abstain_reward``.
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
        "reward_mask": [0.0 if _missing(r.reward) else 1.0 for r in rewards],
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
