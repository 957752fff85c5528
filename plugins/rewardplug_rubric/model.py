"""The rubric format: pydantic models, defaults, and loading from a file, a name or a mapping.

A rubric is ``{name, aggregate, criteria: [{id, text, weight, category, check}]}``. Loading
validates everything a scorer will rely on, so errors surface at stack load with the exact place:
an unknown check kind (with the known ones), a bad regex, a criterion with neither ``weight`` nor
``category``, a rubric with no criteria. Check mappings are turned into the
:class:`rewardplug.Criterion` subclass registered for their ``kind`` (with the
current plugin host: ``rewardplug.plugin_api.current_host().criteria()``), so plugin kinds validate exactly like built-in ones.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

from rewardplug import Criterion, Sample
from rewardplug.plugin_api import UnknownNameError, current_host, rubrics_dir, safe_load_named

__all__ = [
    "CATEGORY_WEIGHTS",
    "Aggregate",
    "Category",
    "Rubric",
    "RubricCriterion",
    "RubricError",
    "available_rubrics",
    "load_rubric",
]

Category = Literal["essential", "important", "optional", "pitfall"]
Aggregate = Literal["weighted_mean", "essential_gate", "implicit"]

#: default weight of a criterion that gives a category but no weight (Rubrics-as-Rewards convention)
CATEGORY_WEIGHTS: dict[str, float] = {
    "essential": 1.0,
    "important": 0.7,
    "optional": 0.3,
    "pitfall": 0.9,
}


class RubricError(ValueError):
    """A rubric could not be found or is invalid; the message names the file and the bad field."""


class RubricCriterion(BaseModel):
    """One criterion: what it asks (``text``), how much it counts, and how it is checked."""

    model_config = ConfigDict(extra="forbid")

    id: str = ""
    """Short identifier shown in ``detail`` (default ``c1``, ``c2``, ... by position)."""
    text: str = ""
    """The criterion in words; what an ``llm`` check asks the judge. Pitfalls name what to avoid."""
    weight: float | None = Field(None, ge=0)
    """Weight in the aggregate; defaults from ``category`` (one of the two is required)."""
    category: Category | None = None
    """essential | important | optional | pitfall (a pitfall is satisfied when avoided)."""
    check: dict[str, Any] = Field(default_factory=lambda: {"kind": "llm"})
    """``{kind: ..., <fields>}``; omitted means ``{kind: llm}`` (the judge reads ``text``)."""
    bind: dict[str, str] = {}
    """Check fields taken from the sample, ``{check_field: sample_field}``; e.g.
    ``{value: max_words}`` reads the limit from the dataset column ``max_words``. A sample without
    the field skips this criterion (not applicable)."""
    when: str | None = None
    """Apply this criterion only to samples whose field (dataset column) ``when`` is present and
    truthy; e.g. ``when: json_output``. Other samples skip it (not applicable)."""

    _kind_class: type[Criterion] = PrivateAttr()
    _static: Criterion | None = PrivateAttr(None)

    @model_validator(mode="after")
    def _resolve(self) -> RubricCriterion:
        if self.weight is None and self.category is None:
            raise ValueError(
                "give a `weight` or a `category` (essential = 1.0, important = 0.7, "
                "optional = 0.3, pitfall = 0.9)"
            )
        kind = self.check.get("kind")
        if not isinstance(kind, str) or not kind:
            raise ValueError("`check` needs a `kind` (e.g. contains, regex, python, llm)")
        try:
            self._kind_class = current_host().criteria().get(kind)
        except UnknownNameError as exc:
            raise ValueError(f"check: {exc}") from None
        if self._kind_class.judged and not self.text.strip():
            raise ValueError(f"a `{kind}` check is judged from `text`; give the criterion a text")
        unknown = set(self.bind) - set(self._kind_class.model_fields)
        if unknown:
            raise ValueError(
                f"`bind` names {sorted(unknown)}, which are not fields of check kind {kind!r} "
                f"(fields: {sorted(set(self._kind_class.model_fields) - {'kind'})})"
            )
        if not self.bind:
            self._static = _validate_check(self._kind_class, self.check)
        return self

    @property
    def kind(self) -> str:
        """The check kind (``contains``, ``llm``, ...)."""
        return str(self.check["kind"])

    @property
    def judged(self) -> bool:
        """True when an LLM judge answers this criterion."""
        return bool(self._kind_class.judged)

    @property
    def effective_weight(self) -> float:
        """``weight``, or the category's default weight."""
        return float(
            self.weight if self.weight is not None else CATEGORY_WEIGHTS[self.category or ""]
        )

    @property
    def is_pitfall(self) -> bool:
        return self.category == "pitfall"

    def resolve(self, sample: Sample) -> Criterion | None:
        """The check for this sample (``bind`` filled in), or None when a bound field is missing."""
        if self.when is not None and not sample.field(self.when):
            return None
        if self._static is not None:
            return self._static
        values = {}
        for field, source in self.bind.items():
            value = sample.field(source)
            if value is None:
                return None
            values[field] = value
        return _validate_check(self._kind_class, {**self.check, **values})


def _validate_check(cls: type[Criterion], mapping: dict[str, Any]) -> Criterion:
    try:
        return cls.model_validate(mapping)
    except ValidationError as exc:
        raise ValueError("; ".join(_messages(exc, prefix="check"))) from None


class Rubric(BaseModel):
    """A named list of weighted criteria and how they combine into one score."""

    model_config = ConfigDict(extra="forbid")

    name: str = "rubric"
    """Shown in ``detail`` and logs (default: the file's stem)."""
    description: str = ""
    """What the rubric is for."""
    references: list[str] = []
    """Where its criteria come from (papers, benchmarks)."""
    aggregate: Aggregate = "weighted_mean"
    """weighted_mean | essential_gate (a failed essential criterion scores 0) | implicit (one judge
    call sees the whole rubric and gives one grade)."""
    threshold: float = Field(0.5, gt=0, le=1)
    """A criterion whose satisfaction is below this counts as failed (``passed``; the gate)."""
    criteria: list[RubricCriterion]
    """At least one criterion."""

    @model_validator(mode="before")
    @classmethod
    def _criteria_present(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and not data.get("criteria"):
            raise ValueError("a rubric needs at least one criterion under `criteria:`")
        return data

    @model_validator(mode="after")
    def _ids(self) -> Rubric:
        seen: set[str] = set()
        for i, criterion in enumerate(self.criteria, start=1):
            if not criterion.id:
                criterion.id = f"c{i}"
            if criterion.id in seen:
                raise ValueError(f"criterion id {criterion.id!r} is used twice; ids must be unique")
            seen.add(criterion.id)
        return self

    @property
    def has_judged(self) -> bool:
        """True when scoring needs a judge (an ``llm`` criterion, or ``implicit`` aggregation)."""
        return self.aggregate == "implicit" or any(c.judged for c in self.criteria)

    def as_text(self) -> str:
        """The rubric as a numbered list for a judge prompt (with category and weight)."""
        lines = []
        for i, c in enumerate(self.criteria, start=1):
            tag = c.category or "criterion"
            lines.append(f"{i}. [{tag}, weight {c.effective_weight:g}] {c.text or c.kind}")
        return "\n".join(lines)


def _messages(exc: ValidationError, prefix: str = "", data: Any = None) -> list[str]:
    """One readable line per pydantic error: ``criteria[1] (id 'x').check: message``."""
    out = []
    for err in exc.errors():
        parts: list[str] = [prefix] if prefix else []
        node = data
        for loc in err["loc"]:
            if isinstance(loc, int):
                label = f"[{loc}]"
                node = node[loc] if isinstance(node, list) and loc < len(node) else None
                if isinstance(node, Mapping) and node.get("id"):
                    label += f" (id {node['id']!r})"
                parts.append(label)
            else:
                parts.append(("." if parts else "") + str(loc))
                node = node.get(loc) if isinstance(node, Mapping) else None
        where = "".join(parts) or "rubric"
        message = str(err["msg"]).removeprefix("Value error, ")
        out.append(f"{where}: {message}")
    return out


def _parse(data: Any, origin: str, name: str | None = None) -> Rubric:
    if isinstance(data, list):  # a bare list of criteria (handy for per-sample checklists)
        data = {"criteria": data}
    if not isinstance(data, Mapping):
        raise RubricError(
            f"rubric {origin}: expected a mapping with `criteria:`, got {type(data).__name__}"
        )
    if name and "name" not in data:
        data = {"name": name, **data}
    try:
        return Rubric.model_validate(data)
    except ValidationError as exc:
        lines = "\n  - ".join(_messages(exc, data=data))
        raise RubricError(f"invalid rubric {origin}:\n  - {lines}") from None


@lru_cache(maxsize=256)
def _load_file(path: Path, mtime: float) -> Rubric:
    try:  # a syntax error names the file, not "<unicode string>"
        data = safe_load_named(path.read_text(encoding="utf-8"), str(path))
    except yaml.YAMLError as exc:
        raise RubricError(f"rubric file {path} is not valid YAML: {exc}") from None
    return _parse(data, str(path), name=path.stem)


def _find(name: str) -> Path | None:
    direct = Path(name).expanduser()
    if direct.is_file():
        return direct
    base = rubrics_dir()
    for candidate in (base / name, base / f"{name}.yaml", base / f"{name}.yml"):
        if candidate.is_file():
            return candidate
    return None


def available_rubrics() -> list[str]:
    """Names of the rubrics in the library folder (``rewardplug.paths.rubrics_dir()``)."""
    base = rubrics_dir()
    return sorted(p.stem for p in base.glob("*.y*ml")) if base.is_dir() else []


def load_rubric(spec: Rubric | Mapping[str, Any] | list[Any] | str | Path) -> Rubric:
    """A validated :class:`Rubric` from a path, a library name, YAML/JSON text or a mapping.

    Strings are tried in order as a file path, a name in the rubric library (``capital`` finds
    ``rubrics/capital.yaml``) and inline YAML/JSON text. Raises :class:`RubricError` with the
    location of every problem.
    """
    if isinstance(spec, Rubric):
        return spec
    if isinstance(spec, Path | str):
        text = str(spec)
        path = _find(text) if "\n" not in text and len(text) < 4096 else None
        if path is not None:
            path = path.resolve()
            return _load_file(path, path.stat().st_mtime)
        if isinstance(spec, str) and (":" in text or text.lstrip().startswith(("{", "["))):
            try:
                data = yaml.safe_load(text)
            except yaml.YAMLError as exc:
                raise RubricError(f"rubric text is not valid YAML/JSON: {exc}") from None
            if isinstance(data, Mapping | list):
                return _parse(data, "(inline text)")
        known = ", ".join(available_rubrics()) or "(none)"
        raise RubricError(
            f"no rubric {text!r}: not a file, and not a name in {rubrics_dir()} (known: {known})"
        )
    return _parse(spec, "(inline mapping)")


def rubric_key(spec: Any) -> str:
    """A hashable key for a rubric spec (per-sample rubrics are parsed once per distinct value)."""
    return spec if isinstance(spec, str) else json.dumps(spec, sort_keys=True, default=str)
