"""The data model every part of rewardplug speaks: ``Sample`` in, ``Score`` per source, ``Reward`` out.

* ``Sample`` is one (prompt, response) pair plus whatever the dataset carries. Fields that are not
  part of the model are kept in ``metadata`` so dataset columns (``gold``, ``answer``, ...) flow
  through to sources and back out into output rows.
* ``Score`` is what a reward source says about one sample: a point estimate and ``draws``, K
  stochastic evaluations that express its uncertainty. A source that cannot score a sample says so
  with ``status="abstain"`` and a reason; it never returns a silent 0.
* ``Reward`` is the final, combined and discretized reward for one sample.
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, computed_field, model_validator

_M = TypeVar("_M", bound=BaseModel)

__all__ = [
    "Message",
    "Reward",
    "Sample",
    "Score",
    "Status",
    "content_text",
    "digest",
    "prompt_text",
    "sample_from",
    "trusted",
]

Status = Literal["ok", "abstain", "error"]
Message = dict[str, Any]

_SAMPLE_FIELDS = ("id", "group", "prompt", "response", "reference", "tests", "rubric", "metadata")
_FIELD_SET = frozenset(_SAMPLE_FIELDS)


def digest(value: Any, size: int = 16) -> str:
    """A short, stable hash of a JSON-serializable value (independent of process and platform)."""
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=size // 2).hexdigest()


def prompt_text(prompt: str | list[Message]) -> str:
    """Render a prompt (plain text or a chat-message list) as plain text, e.g. for judges or logs."""
    if isinstance(prompt, str):
        return prompt
    return "\n\n".join(f"{m.get('role', 'user')}: {content_text(m.get('content'))}" for m in prompt)


def content_text(content: Any) -> str:
    """Text of a chat message's ``content``: a string, or the text parts of a multi-part list."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") if isinstance(p, dict) else str(p) for p in content)
    return str(content)


# the names these helpers had while private (code written before they were shared keeps working)
_digest = digest
_content_text = content_text


class Sample(BaseModel):
    """One response to score, with its prompt and whatever the dataset carries.

    ``group`` names the set of responses that are compared with each other (e.g. the G
    generations for one prompt in GRPO); it defaults to a hash of ``prompt``. ``id`` defaults to
    a hash of the prompt and response. Unknown fields are moved into ``metadata``.
    """

    model_config = ConfigDict(extra="forbid", frozen=False)

    id: str = ""
    group: str = ""
    prompt: str | list[Message] = ""
    response: str
    reference: str | None = None
    tests: dict[str, Any] | None = None
    rubric: str | dict[str, Any] | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _normalize(cls, data: Any) -> Any:
        # One pass over the raw input (a validator call per field costs more than the checks):
        # unknown fields go into metadata; numeric ids become text (dataset ids are often
        # integers, and they are labels); a chat-format response becomes its text (TRL passes
        # conversational completions as [{"role": "assistant", "content": ...}]).
        if not isinstance(data, dict):
            return data
        if not _FIELD_SET.issuperset(data):
            known = {k: v for k, v in data.items() if k in _SAMPLE_FIELDS}
            metadata = known.get("metadata") or {}
            if not isinstance(metadata, dict):  # a ValidationError naming it, not a TypeError
                raise ValueError(f"metadata must be an object, got {type(metadata).__name__}")
            metadata = dict(metadata)
            metadata.update({k: v for k, v in data.items() if k not in _SAMPLE_FIELDS})
            data = {**known, "metadata": metadata}
        for key in ("id", "group"):
            value = data.get(key)
            if isinstance(value, int | float) and not isinstance(value, bool):
                data = {**data, key: str(value)}
        response = data.get("response")
        if isinstance(response, list):
            text = "".join(
                content_text(m.get("content")) if isinstance(m, dict) else str(m) for m in response
            )
            data = {**data, "response": text}
        elif isinstance(response, dict) and "content" in response:
            data = {**data, "response": content_text(response["content"])}
        return data

    @model_validator(mode="after")
    def _default_ids(self) -> Sample:
        if not self.group:
            self.group = _default_group(self.prompt)
        if not self.id:
            self.id = _default_id(self.prompt, self.response)
        return self

    @property
    def prompt_text(self) -> str:
        """The prompt as plain text (chat messages rendered as ``role: content`` blocks)."""
        return prompt_text(self.prompt)

    def field(self, name: str, default: Any = None) -> Any:
        """A sample field or, failing that, a ``metadata`` entry (dataset column) called ``name``."""
        if name in _SAMPLE_FIELDS:
            return getattr(self, name)
        return self.metadata.get(name, default)


# The keys of a plain text row: with only these, each a str (reference also None), validation
# has nothing to convert or reject.
_PLAIN_KEYS = frozenset(("id", "group", "prompt", "response", "reference"))


def sample_from(data: Any) -> Sample:
    """``Sample.model_validate(data)``, faster for the usual row: for a dict of plain text fields
    pydantic's validation would change nothing, so the sample is built directly (the same
    fields, defaults, default ids and set fields; tested against ``model_validate``). Any other
    input goes through ``model_validate`` and its errors."""
    if type(data) is dict and _PLAIN_KEYS.issuperset(data):
        response = data.get("response")
        prompt = data.get("prompt", "")
        sid, group = data.get("id", ""), data.get("group", "")
        reference = data.get("reference")
        if (
            type(response) is str
            and type(prompt) is str
            and type(sid) is str
            and type(group) is str
            and (reference is None or type(reference) is str)
        ):
            fields_set = set(data)
            if not group:
                group = _default_group(prompt)
                fields_set.add("group")
            if not sid:
                sid = _default_id(prompt, response)
                fields_set.add("id")
            fields: dict[str, Any] = {
                "id": sid,
                "group": group,
                "prompt": prompt,
                "response": response,
                "reference": reference,
                "tests": None,
                "rubric": None,
                "metadata": {},
            }
            return trusted(Sample, fields, fields_set)
    return Sample.model_validate(data)


def _mean(draws: list[float]) -> float:
    """The mean of finite draws; finite whenever the draws are (no overflow of their sum)."""
    n = len(draws)
    mean = sum(draws) / n
    if not math.isfinite(mean):  # the sum overflowed: average the draws scaled down instead
        scale = max(abs(d) for d in draws)
        mean = scale * (math.fsum(d / scale for d in draws) / n)
    return mean


def _std(draws: list[float]) -> float:
    """Sample standard deviation of draws (0 for a single draw); inf only when it really is
    beyond the float range, never from an overflow on the way."""
    n = len(draws)
    if n < 2:
        return 0.0
    mean = _mean(draws)
    std = math.sqrt(sum((d - mean) * (d - mean) for d in draws) / (n - 1))
    if not math.isfinite(std):  # differences or squares overflowed: scale the draws down
        scale = max(abs(d) for d in draws)
        m = mean / scale
        std = scale * math.sqrt(
            math.fsum((d / scale - m) * (d / scale - m) for d in draws) / (n - 1)
        )
    return std


def _default_group(prompt: str | list[Message]) -> str:
    """A sample's group when none is given: a hash of its prompt."""
    return digest(prompt)


def _default_id(prompt: str | list[Message], response: str) -> str:
    """A sample's id when none is given: a hash of its prompt and response."""
    return digest([prompt, response])


def trusted(cls: type[_M], fields: dict[str, Any], fields_set: set[str] | None = None) -> _M:
    """An instance of model ``cls`` from ``fields`` that are already valid, without validation.

    For the hot paths that build scores and rewards from numbers they computed themselves (a
    trivial source's floats, a stack's combined rewards): pydantic's own ``model_construct`` costs
    more per call than validating would. ``fields`` must name every field with a valid value (the
    caller's contract; tests compare such instances with validated ones field by field).
    ``fields_set``: the fields counted as given (default: all of them).
    """
    obj = cls.__new__(cls)
    _set = object.__setattr__
    _set(obj, "__dict__", fields)
    _set(obj, "__pydantic_fields_set__", set(fields) if fields_set is None else fields_set)
    _set(obj, "__pydantic_extra__", None)
    _set(obj, "__pydantic_private__", None)
    return obj


class Score(BaseModel):
    """One source's verdict on one sample.

    ``draws`` holds K >= 1 stochastic evaluations (K = 1 means "no uncertainty"); ``value`` is the
    point estimate (the mean of the draws unless the source knows better, e.g. a deterministic
    forward pass). A non-finite value or draw turns the score into an abstention with the reason,
    so NaN never reaches a reward.
    """

    model_config = ConfigDict(extra="forbid")

    value: float | None = None
    draws: list[float] = Field(default_factory=list)
    status: Status = "ok"
    detail: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _consistent(self) -> Score:
        if self.status != "ok":
            if not self.detail.get("reason"):
                self.detail["reason"] = f"source reported status {self.status!r} without a reason"
            return self
        numbers = ([] if self.value is None else [self.value]) + list(self.draws)
        if not numbers:
            self.status = "abstain"
            self.detail["reason"] = "source returned neither a value nor draws"
            return self
        bad = next((x for x in numbers if not math.isfinite(x)), None)
        if bad is not None:
            self.status = "abstain"
            self.detail["reason"] = f"source returned a non-finite score ({bad})"
            return self
        if not self.draws:
            self.draws = [float(self.value)]  # type: ignore[arg-type]
        if self.value is None:
            self.value = _mean(self.draws)
        if not (math.isfinite(self.value) and math.isfinite(_std(self.draws))):
            self.status = "abstain"
            self.detail["reason"] = (
                "source returned draws too large to average (their mean or spread overflows)"
            )
        return self

    @computed_field  # type: ignore[prop-decorator]
    @property
    def std(self) -> float | None:
        """Standard deviation of the draws (sample std; 0 for K = 1; None when not ok)."""
        return _std(self.draws) if self.status == "ok" else None

    @property
    def ok(self) -> bool:
        """True when the source produced a usable score."""
        return self.status == "ok"

    @property
    def reason(self) -> str | None:
        """Why the source abstained or failed (``detail["reason"]``)."""
        return self.detail.get("reason")

    @classmethod
    def of(
        cls, value: float | None = None, draws: list[float] | None = None, **detail: Any
    ) -> Score:
        """An ok score from a value and/or draws, with optional ``detail`` entries."""
        return cls(value=value, draws=list(draws or []), detail=detail)

    @classmethod
    def abstain(cls, reason: str, **detail: Any) -> Score:
        """The source cannot score this sample (missing reference, no tests, ...): say why."""
        return cls(status="abstain", detail={"reason": reason, **detail})

    @classmethod
    def error(cls, reason: str, **detail: Any) -> Score:
        """Scoring failed unexpectedly (an exception, a broken backend): say what happened."""
        return cls(status="error", detail={"reason": reason, **detail})


class Reward(BaseModel):
    """The final reward for one sample, after combining sources and discretizing its group.

    ``raw`` is the combined point estimate before discretizing, ``reward`` the tie-grouped value
    that goes to the RL algorithm, ``tier`` its tier in the group (0 = best) out of ``n_tiers``.
    ``reward`` is None when the sample abstains; ``reason`` then says why. ``group_size`` is the
    number of samples its group had when it was discretized, and ``partial`` says whether that was
    fewer than expected (see :mod:`rewardplug.groups`).
    """

    model_config = ConfigDict(extra="forbid")

    id: str
    group: str
    reward: float | None
    raw: float | None
    std: float | None
    tier: int | None
    n_tiers: int | None
    status: Status
    reason: str | None = None
    #: how many samples of its group were discretized together (abstentions included)
    group_size: int | None = None
    #: True when the group was discretized before all of its expected members arrived
    #: (a group assembler's deadline passed); ``group_size`` says how many there were
    partial: bool = False
    sources: dict[str, Score] = Field(default_factory=dict)

    def row_fields(self) -> dict[str, Any]:
        """The reward's fields as a JSON-ready dict (what ``rewardplug score`` adds to each row)."""
        return self.model_dump(mode="json")
