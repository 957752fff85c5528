"""Named rules that plugins register: score transforms and combine rules.

A transform or a combine rule is one function plus its pydantic config model, registered under a
name through a hook (``register_transforms`` / ``register_combiners``, see
:mod:`rewardplug.hookspecs`). A stack names it (``transform: [{kind: clip, max: 1}]``,
``combine: mean_minus_var``) and :func:`validate_rule` turns that into an instance of the
registered config model, with errors that name the bad key, suggest the closest name and list
the allowed keys. The built-ins (:mod:`rewardplug.transform_kinds`,
:mod:`rewardplug.combine_rules`) are registered through the same hooks by the core ``rules``
plugin (:mod:`rewardplug.builtin_rules`).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar, cast

from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic_core import PydanticCustomError

if TYPE_CHECKING:  # numpy is imported where a rule runs: a stack loads without it
    import numpy as np

    from rewardplug.registry import Registry
    from rewardplug.types import Sample

__all__ = [
    "CombineConfig",
    "CombineFn",
    "Rule",
    "RuleConfig",
    "TransformConfig",
    "TransformContext",
    "TransformFn",
    "short_form",
    "validate_rule",
]


class RuleConfig(BaseModel):
    """A rule's settings: ``kind`` (its registered name) plus the fields a subclass declares.

    Frozen and strict about keys: a typo in a stack fails when it loads, naming the key.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: str


class TransformConfig(RuleConfig):
    """Base of a transform's config model (``{kind: name, ...}`` in a ``transform:`` list)."""

    #: True when the transform centres on the sample's ``reference`` response: the chain then
    #: scores the reference with the same source and passes its value as ``context.reference``
    needs_reference: ClassVar[bool] = False

    def prepare(self) -> None:
        """Load what the transform needs (a tokenizer, a table) when the stack loads, so a bad
        setting fails there; raise ``ValueError`` saying what to do. Default: nothing."""


class CombineConfig(RuleConfig):
    """Base of a combine rule's config model (``combine: name`` or ``{kind: name, ...}``)."""


@dataclass
class TransformContext:
    """What a transform function knows about the values it transforms.

    The chain runs a sample's reference response through the same transforms as the response
    (so a centred transform later in the chain centres on the reference's score at that point):
    ``text`` is the response these values score, ``is_reference`` says which one it is.
    """

    sample: Sample
    text: str
    #: the reference's score at this point of the chain (None unless a transform of the chain
    #: ``needs_reference``)
    reference: float | None = None
    is_reference: bool = False
    #: what the transform reports for this sample; kept in ``Score.detail["transform"]``
    detail: dict[str, Any] = field(default_factory=dict)


T = TypeVar("T", bound=TransformConfig, contravariant=True)
C = TypeVar("C", bound=CombineConfig, contravariant=True)
R = TypeVar("R", bound=RuleConfig)

#: ``function(values, config, context) -> values``: ``values`` is 1-D float64, the point
#: estimate followed by the draws; the result has the same shape
TransformFn = Callable[["np.ndarray", T, TransformContext], "np.ndarray"]
#: ``function(values, weights, present, config) -> combined``: ``values`` (S, N, K) float64, NaN
#: where a source did not score a sample; ``weights`` (S,) the weighted sources' weights;
#: ``present`` (S, N, 1) bool; the result is (N, K)
CombineFn = Callable[["np.ndarray", "np.ndarray", "np.ndarray", C], "np.ndarray"]


@dataclass(frozen=True)
class Rule:
    """One registered transform or combine rule: its function and its config model."""

    function: Callable[..., Any]
    config: type[RuleConfig]


def rule_maker(base: type[RuleConfig], what: str) -> Callable[..., Rule]:
    """``make(function, config) -> Rule``, checking what a plugin registers (a ``TypeError``
    becomes that plugin's load error in ``rewardplug plugins``)."""

    def make(function: Any, config: Any) -> Rule:
        if not callable(function):
            raise TypeError(f"a {what} needs a function, got {type(function).__name__}")
        if not (isinstance(config, type) and issubclass(config, base)):
            raise TypeError(
                f"a {what}'s config must subclass {base.__module__}.{base.__qualname__}, "
                f"got {config!r}"
            )
        return Rule(function, config)

    return make


def short_form(value: Any) -> Any:
    """``name`` -> ``{kind: name}``; ``{name: {options}}`` -> ``{kind: name, **options}``;
    anything else unchanged (left for validation to reject with its path)."""
    if isinstance(value, str):
        return {"kind": value}
    if isinstance(value, Mapping) and "kind" not in value and len(value) == 1:
        ((kind, options),) = value.items()
        if isinstance(kind, str) and (options is None or isinstance(options, Mapping)):
            return {"kind": kind, **dict(options or {})}
    return value


def validate_rule(registry: Registry, base: type[R], value: Any) -> R:
    """``value`` (a name, ``{kind: name, ...}`` or ``{name: {...}}``) as an instance of the
    config model registered under its name.

    Raises pydantic errors located inside ``value`` (pydantic prefixes the caller's path): an
    unknown name lists the known ones and the closest; an unknown key the allowed ones.
    """
    if isinstance(value, base):
        return value
    value = short_form(value)
    what = registry.what
    if not isinstance(value, Mapping):
        raise PydanticCustomError(
            "rule_type",
            "a {what} is a name or a mapping with `kind:` (e.g. {example}), got {got}",
            {"what": what, "example": _EXAMPLES.get(what, "{kind: name}"), "got": repr(value)},
        )
    kind = value.get("kind")
    if not isinstance(kind, str):
        raise PydanticCustomError(
            "rule_kind",
            "a {what} needs `kind:` naming it (known: {known}), got {got}",
            {"what": what, "known": ", ".join(registry.names()), "got": repr(kind)},
        )
    try:
        rule: Rule = registry.get(kind)
    except LookupError as exc:
        raise PydanticCustomError("unknown_name", "{message}", {"message": str(exc)}) from None
    try:
        return cast(R, rule.config.model_validate(dict(value)))
    except ValidationError as exc:
        raise ValidationError.from_exception_data(
            exc.title, [_hinted(err, rule.config) for err in exc.errors()]
        ) from None


_EXAMPLES = {"transform": "{kind: clip, max: 1}", "combine rule": "{kind: mean_minus_var}"}


def _hinted(err: Any, model: type[BaseModel]) -> Any:
    """A config model's error; an unknown key gets the closest allowed one and the list."""
    if err["type"] != "extra_forbidden" or len(err["loc"]) != 1:
        return err
    allowed = [f.alias or n for n, f in model.model_fields.items()]
    close = difflib.get_close_matches(str(err["loc"][0]), allowed, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    message = f"Extra inputs are not permitted{hint}; allowed keys: {', '.join(allowed)}"
    return {
        "type": PydanticCustomError("unknown_key", "{message}", {"message": message}),
        "loc": err["loc"],
        "input": err["input"],
    }
