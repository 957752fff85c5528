"""Reward-stack configuration: the YAML/dict schema, validated with pydantic before any scoring.

A stack names its sources, how their draws are combined and how the combined score is
discretized. Every error is reported with the path to the bad key (``sources[1].with.timeout_s``),
its line in the YAML file when there is one, and the allowed values or keys.
"""

from __future__ import annotations

import difflib
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializeAsAny,
    ValidationError,
    WrapValidator,
    field_validator,
    model_validator,
)

from rewardplug.rules import CombineConfig, TransformConfig, short_form, validate_rule
from rewardplug.transforms import normalize_transforms

__all__ = [
    "CombineMethod",
    "DiscretizeConfig",
    "NoiseSpec",
    "SourceSpec",
    "StackConfig",
    "StackError",
    "line_of",
    "read_stack_file",
    "safe_load_named",
]

#: the built-in combine rules (plugins add more: ``register_combiners``)
CombineMethod = Literal["weighted_sum", "min", "mean_minus_var"]


def _transform(value: Any, handler: Any) -> TransformConfig:
    """A ``transform:`` entry as the config model registered under its kind."""
    from rewardplug import plugins

    return validate_rule(plugins.transforms(), TransformConfig, value)


def _combine_rule(value: Any, handler: Any) -> CombineConfig:
    """``combine:`` as the config model of the combine rule it names."""
    from rewardplug import plugins

    return validate_rule(plugins.combiners(), CombineConfig, value)


#: a ``transform:`` entry, validated by the transform registry (SerializeAsAny: dumped with the
#: registered model's own fields, not only ``kind``)
Transform = SerializeAsAny[Annotated[TransformConfig, WrapValidator(_transform)]]
Combine = SerializeAsAny[Annotated[CombineConfig, WrapValidator(_combine_rule)]]


class NoiseSpec(BaseModel):
    """``noise:`` of a source: a known measurement noise for a source that gives one number.

    Each ok score with a single draw gets ``draws`` draws ``value + std * z`` instead, ``z``
    standard normal, seeded by the sample alone (so rewards stay batch-independent).
    """

    model_config = ConfigDict(extra="forbid")

    std: float = Field(gt=0, allow_inf_nan=False, description="standard deviation of the noise")
    draws: int = Field(32, ge=2, le=4096, description="draws per sample")


class SourceSpec(BaseModel):
    """One entry of ``sources:``."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: str = Field(min_length=1, description="label of this source in outputs and logs")
    use: str = Field(min_length=1, description='registered source name, or "package.module:Class"')
    weight: float = Field(1.0, ge=0, allow_inf_nan=False, description="weight when combining")
    with_: dict[str, Any] = Field(default_factory=dict, alias="with", description="source config")
    noise: NoiseSpec | None = Field(None, description="known noise for one-draw scores")
    #: applied in order, draw by draw, after ``noise`` (see :mod:`rewardplug.transforms`)
    transform: list[Transform] = Field(default_factory=list, description="score transforms")
    #: the lowest score this source gives (after its transforms): its value where it abstains
    #: under ``on_abstain: floor``
    floor: float | None = Field(None, allow_inf_nan=False, description="lowest score")

    @field_validator("transform", mode="before")
    @classmethod
    def _short_transforms(cls, value: Any) -> Any:
        return normalize_transforms(value)


class DiscretizeConfig(BaseModel):
    """The ``discretize:`` section (see :func:`rewardplug.discretize`)."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    confidence: float = Field(0.9, ge=0.5, le=1.0)
    assign: Literal["mean", "rank", "binary"] = "mean"
    method: Literal["exact", "gaussian"] = "exact"
    margin: float = Field(0.0, ge=0, allow_inf_nan=False)
    #: ``different``: apart only when confidently different; ``equivalent``: together only when
    #: confidently within ``margin`` (the paper's clustering; needs margin > 0)
    rule: Literal["different", "equivalent"] = "different"

    @model_validator(mode="after")
    def _equivalent_needs_a_margin(self) -> DiscretizeConfig:
        if self.rule == "equivalent" and self.margin <= 0:
            raise ValueError(
                "rule: equivalent merges responses confidently within `margin` of each other; "
                "set margin > 0 (on the reward's scale), or use rule: different"
            )
        return self


class StackConfig(BaseModel):
    """A whole reward stack.

    ``on_abstain`` decides what happens to a sample when some of its sources abstain or fail.
    Abstaining must never pay (a policy under RL would learn to make a source abstain), so:
    ``abstain`` (default) makes the sample abstain as soon as any weighted source does (the
    trainer masks it); ``floor`` counts an abstaining source at its ``floor:`` (its lowest score),
    so the sample gets what it would with that source at its worst; ``renormalize`` (opt-in,
    exploitable) drops those sources and rescales the remaining weights to the full total, so a
    sample abstains only when no weighted source scored it.
    """

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    sources: list[SourceSpec] = Field(min_length=1)
    #: a registered combine rule: its name, ``{kind: name, ...settings}`` or ``{name: {...}}``
    combine: Combine = Field("weighted_sum", validate_default=True)
    #: ``lambda`` of a rule given by name that takes one (``combine: mean_minus_var``; None:
    #: the rule's default)
    lambda_: float | None = Field(None, alias="lambda", ge=0, allow_inf_nan=False)
    on_abstain: Literal["abstain", "floor", "renormalize"] = "abstain"
    draws: int | None = Field(None, ge=1, le=4096, description="common K (default: largest K)")
    seed: int = 0
    #: a source failing on at least ``source_failure_share`` of a batch is reported
    #: (``warn``, once per source) or fails the batch (``fail``); see :mod:`rewardplug.health`
    on_source_failure: Literal["warn", "fail"] = "warn"
    source_failure_share: float = Field(1.0, gt=0, le=1)
    #: how sources' draws are matched when combined: ``shuffled`` (at random, for independent
    #: sources) or ``paired`` (draw j with draw j, for sources whose draws are correlated)
    pairing: Literal["shuffled", "paired"] = "shuffled"
    discretize: DiscretizeConfig = Field(default_factory=DiscretizeConfig)

    @model_validator(mode="before")
    @classmethod
    def _lambda_into_the_rule(cls, data: Any) -> Any:
        """The top-level ``lambda:`` (the form stacks used before rules had settings) goes into
        a rule that takes a ``lambda`` and was not given one in ``combine:`` itself."""
        if not (isinstance(data, Mapping) and data.get("lambda") is not None):
            return data
        combine = short_form(data.get("combine", "weighted_sum"))
        if not (isinstance(combine, Mapping) and isinstance(combine.get("kind"), str)):
            return data
        from rewardplug import plugins

        try:
            rule = plugins.combiners().get(combine["kind"])
        except LookupError:
            return data  # reported by the field's own validation
        takes = any(f.alias == "lambda" for f in rule.config.model_fields.values())
        if not takes:
            return data
        if "lambda" in combine and combine["lambda"] != data["lambda"]:
            raise ValueError(
                f"`lambda` is given twice ({data['lambda']} at the top level, "
                f"{combine['lambda']} in `combine:`); keep one"
            )
        return {**data, "combine": {**combine, "lambda": data["lambda"]}}

    @model_validator(mode="after")
    def _floors_for_floor(self) -> StackConfig:
        if self.on_abstain == "floor":
            missing = [s.name for s in self.sources if s.weight > 0 and s.floor is None]
            if missing:
                raise ValueError(
                    f"on_abstain: floor counts an abstaining source at its floor; give "
                    f"{', '.join(repr(m) for m in missing)} a `floor:` (its lowest score, e.g. "
                    "0.0 for a pass rate), or use on_abstain: abstain"
                )
        return self

    @field_validator("sources")
    @classmethod
    def _unique_names(cls, sources: list[SourceSpec]) -> list[SourceSpec]:
        seen: set[str] = set()
        for spec in sources:
            if spec.name in seen:
                raise ValueError(f"source name {spec.name!r} is used twice; names must be unique")
            seen.add(spec.name)
        return sources

    @model_validator(mode="after")
    def _some_weight(self) -> StackConfig:
        if not any(s.weight > 0 for s in self.sources):
            raise ValueError("at least one source needs a weight > 0")
        return self


class StackError(ValueError):
    """An invalid stack: every problem with its key path (and YAML line), in one message."""

    def __init__(self, problems: list[str], origin: str | None = None):
        self.problems = problems
        self.origin = origin
        head = f"invalid reward stack{f' {origin}' if origin else ''}"
        super().__init__(head + ":\n" + "\n".join(f"  - {p}" for p in problems))


def read_stack_file(path: str | Path) -> tuple[dict[str, Any], yaml.Node | None]:
    """Parse a stack file; returns the mapping and the YAML node tree (for line numbers)."""
    path = Path(path)
    if not path.is_file():
        raise StackError([f"stack file {str(path)!r} does not exist"])
    text = path.read_text(encoding="utf-8")
    try:
        node = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:  # named after the file, not "<unicode string>"
        raise StackError([f"not valid YAML: {_named(exc, str(path))}"], str(path)) from None
    if not isinstance(data, dict):
        raise StackError(["the file must contain a mapping with a 'sources:' list"], str(path))
    return data, node


def _named(exc: yaml.YAMLError, name: str) -> yaml.YAMLError:
    """``exc`` with its marks naming ``name`` instead of ``"<unicode string>"`` (a parse of the
    file's text keeps the marks' snippet of the bad line, which parsing the open file loses)."""
    for mark in (getattr(exc, "context_mark", None), getattr(exc, "problem_mark", None)):
        if mark is not None:
            mark.name = name
    return exc


def safe_load_named(text: str, name: str) -> Any:
    """``yaml.safe_load(text)``; a syntax error names ``name`` (the file) with its line."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise _named(exc, name) from None


def describe_errors(
    exc: ValidationError,
    model: type[BaseModel],
    prefix: tuple[str | int, ...] = (),
    node: yaml.Node | None = None,
) -> list[str]:
    """Readable lines for a pydantic error: path, YAML line, message, allowed keys."""
    lines = []
    for err in exc.errors():
        loc = prefix + tuple(err["loc"])
        message = err["msg"]
        if err["type"] == "extra_forbidden":
            allowed = _allowed_keys(model, tuple(err["loc"])[:-1])
            if allowed:
                close = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
                if close:
                    message += f"; did you mean {close[0]!r}?"
                message += f"; allowed keys: {', '.join(allowed)}"
        line = line_of(node, loc)
        where = f" (line {line})" if line else ""
        lines.append(f"{format_loc(loc)}{where}: {message}")
    return lines


def format_loc(loc: tuple[str | int, ...]) -> str:
    """``("sources", 1, "with", "x")`` -> ``sources[1].with.x``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def line_of(node: yaml.Node | None, loc: tuple[str | int, ...]) -> int | None:
    """1-based line of the deepest YAML node along ``loc`` (None without a file)."""
    line = None
    for part in loc:
        if node is None:
            break
        line = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            match = [(k, v) for k, v in node.value if getattr(k, "value", None) == part]
            node = match[0][1] if match else None
            if match:
                line = match[0][0].start_mark.line + 1
        elif (
            isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value)
        ):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            node = None
    return line


def _allowed_keys(model: type[BaseModel], loc: tuple[str | int, ...]) -> list[str]:
    """The field names (aliases) a model accepts at ``loc`` -- to suggest them after a typo."""
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            args = typing.get_args(current)
            current = args[0] if args else None
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return []
        field = next(
            (f for n, f in current.model_fields.items() if part in (n, f.alias)),
            None,
        )
        if field is None:
            return []
        current = field.annotation
    if isinstance(current, type) and issubclass(current, BaseModel):
        return [f.alias or n for n, f in current.model_fields.items()]
    return []
