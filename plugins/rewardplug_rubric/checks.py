"""Built-in rubric check kinds (``check: {kind: ...}``), registered through ``register_criteria``.

Each kind is a :class:`rewardplug.criteria.Criterion` subclass: a pydantic model of the check's
fields, validated when the rubric loads (a bad regex, a negative word count or an unimportable
function fails then, not while scoring), and a ``check(sample)`` that returns True/False or a
satisfaction in [0, 1]. The ``llm`` kind has no programmatic check: the rubric source batches it
into judge calls.

Besides the kinds named in the rubric contract (``contains``, ``not_contains``, ``regex``,
``max_words``, ``min_words``, ``json``, ``python``, ``llm``) this module ships the counting and
formatting checks that IFEval-style verifiable instructions need (sentences, bullets, paragraphs,
letter case, start and end phrases).
"""

from __future__ import annotations

import inspect
import json
import math
import re
from collections.abc import Callable
from typing import Any, ClassVar, Literal

from pydantic import ConfigDict, Field, PrivateAttr, field_validator, model_validator

from rewardplug import Criterion, Sample
from rewardplug.plugin_api import import_object

__all__ = ["BUILTIN_KINDS", "count_bullets", "count_paragraphs", "count_sentences", "count_words"]

_WORD = re.compile(r"\w+(?:(?:['’-]|(?<=\d)[.,](?=\d))\w+)*")
# A sentence ends at ., ! or ? (possibly repeated, possibly followed by closing quotes/brackets)
# followed by whitespace or the end; "3.5" and "e.g.x" do not split.
_SENTENCE_END = re.compile(r"[.!?]+[\"'”’)\]]*(?=\s|$)")
_BULLET = re.compile(r"^[ \t]*(?:[-*+•]|\d+[.)])[ \t]+\S", re.MULTILINE)
_FENCE = re.compile(r"^\s*```[\w+-]*[ \t]*\n(.*?)\n?```\s*$", re.DOTALL)


def count_words(text: str) -> int:
    """Words: runs of letters/digits joined by inner apostrophes or hyphens ("don't" = 1 word);
    a decimal number such as 3.5 or 1,000 is one word."""
    return len(_WORD.findall(text))


def count_sentences(text: str) -> int:
    """Sentences: text pieces ending in ., ! or ? before whitespace; a trailing piece counts too."""
    pieces = _SENTENCE_END.split(text)
    return sum(1 for piece in pieces if _WORD.search(piece))


def count_bullets(text: str) -> int:
    """Markdown list items: lines starting with ``-``, ``*``, ``+``, ``•``, ``1.`` or ``1)``."""
    return len(_BULLET.findall(text))


def count_paragraphs(text: str) -> int:
    """Paragraphs: non-empty blocks separated by blank lines (or markdown ``***`` dividers)."""
    blocks = re.split(r"\n\s*\n|^\s*\*\*\*\s*$", text.strip(), flags=re.MULTILINE)
    return sum(1 for block in blocks if block and block.strip())


def _fold(text: str, case_sensitive: bool) -> str:
    return text if case_sensitive else text.casefold()


class _Phrases(Criterion):
    """Shared fields of ``contains`` / ``not_contains``."""

    value: str | list[str]
    """The phrase, or a list of phrases (``contains``: all must appear; ``not_contains``: none)."""
    case_sensitive: bool = True
    """Compare case-sensitively (default) or ignoring case."""

    @field_validator("value")
    @classmethod
    def _non_empty(cls, value: str | list[str]) -> str | list[str]:
        phrases = [value] if isinstance(value, str) else value
        if not phrases or any(not p for p in phrases):
            raise ValueError("`value` must be a non-empty phrase or a list of non-empty phrases")
        return value

    def _counts(self, sample: Sample) -> list[int]:
        text = _fold(sample.response, self.case_sensitive)
        phrases = [self.value] if isinstance(self.value, str) else self.value
        return [text.count(_fold(p, self.case_sensitive)) for p in phrases]


class Contains(_Phrases):
    """The response contains ``value`` (every phrase of a list), at least ``min_count`` times."""

    min_count: int = Field(1, ge=1)
    """How often each phrase must appear (IFEval's keyword frequency)."""

    def check(self, sample: Sample) -> bool:
        return all(n >= self.min_count for n in self._counts(sample))


class NotContains(_Phrases):
    """The response contains none of the phrases in ``value`` (forbidden words, commas, ...)."""

    def check(self, sample: Sample) -> bool:
        return not any(self._counts(sample))


class Regex(Criterion):
    """A match of ``pattern`` (Python ``re`` syntax) anywhere in the response satisfies it."""

    pattern: str
    """Regular expression searched in the response (``re.search``)."""
    case_sensitive: bool = True
    """False adds ``re.IGNORECASE``."""
    multiline: bool = True
    """``^``/``$`` match at line boundaries (``re.MULTILINE``), so per-line rules are easy."""

    _compiled: re.Pattern[str] | None = PrivateAttr(None)

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, pattern: str) -> str:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"invalid regular expression {pattern!r}: {exc}") from None
        return pattern

    def check(self, sample: Sample) -> bool:
        if self._compiled is None:
            flags = (0 if self.case_sensitive else re.IGNORECASE) | (
                re.MULTILINE if self.multiline else 0
            )
            self._compiled = re.compile(self.pattern, flags)
        return self._compiled.search(sample.response) is not None


class _Limit(Criterion):
    value: int = Field(ge=0)
    """The limit (inclusive)."""


class MaxWords(_Limit):
    """At most ``value`` words (see :func:`count_words`)."""

    def check(self, sample: Sample) -> bool:
        return count_words(sample.response) <= self.value


class MinWords(_Limit):
    """At least ``value`` words."""

    def check(self, sample: Sample) -> bool:
        return count_words(sample.response) >= self.value


class MaxSentences(_Limit):
    """At most ``value`` sentences (see :func:`count_sentences`)."""

    def check(self, sample: Sample) -> bool:
        return count_sentences(sample.response) <= self.value


class MinSentences(_Limit):
    """At least ``value`` sentences."""

    def check(self, sample: Sample) -> bool:
        return count_sentences(sample.response) >= self.value


class _Range(Criterion):
    """A count between ``min`` and ``max`` (inclusive), or ``exactly`` a number."""

    min: int | None = Field(None, ge=0)
    max: int | None = Field(None, ge=0)
    exactly: int | None = Field(None, ge=0)

    @model_validator(mode="after")
    def _one_bound(self) -> _Range:
        if self.exactly is not None and (self.min is not None or self.max is not None):
            raise ValueError("give either `exactly` or `min`/`max`, not both")
        if self.exactly is None and self.min is None and self.max is None:
            raise ValueError("give `exactly`, `min` or `max`")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"`min` ({self.min}) is larger than `max` ({self.max})")
        return self

    def count(self, text: str) -> int:
        """What this criterion counts in ``text`` (each subclass says)."""
        raise NotImplementedError

    def check(self, sample: Sample) -> bool:
        n = self.count(sample.response)
        if self.exactly is not None:
            return n == self.exactly
        return (self.min is None or n >= self.min) and (self.max is None or n <= self.max)


class Bullets(_Range):
    """The number of markdown list items (see :func:`count_bullets`) is in range."""

    def count(self, text: str) -> int:
        return count_bullets(text)


class Paragraphs(_Range):
    """The number of paragraphs (see :func:`count_paragraphs`) is in range."""

    def count(self, text: str) -> int:
        return count_paragraphs(text)


class Lowercase(Criterion):
    """The response has letters and none of them is upper case."""

    def check(self, sample: Sample) -> bool:
        text = sample.response
        return any(c.isalpha() for c in text) and text == text.lower()


class Uppercase(Criterion):
    """The response has letters and none of them is lower case."""

    def check(self, sample: Sample) -> bool:
        text = sample.response
        return any(c.isalpha() for c in text) and text == text.upper()


class _Affix(Criterion):
    value: str = Field(min_length=1)
    """The phrase."""
    case_sensitive: bool = True


class EndsWith(_Affix):
    """The response ends with ``value`` (trailing whitespace ignored)."""

    def check(self, sample: Sample) -> bool:
        text = _fold(sample.response.rstrip(), self.case_sensitive)
        return text.endswith(_fold(self.value.strip(), self.case_sensitive))


class StartsWith(_Affix):
    """The response starts with ``value`` (leading whitespace ignored)."""

    def check(self, sample: Sample) -> bool:
        text = _fold(sample.response.lstrip(), self.case_sensitive)
        return text.startswith(_fold(self.value.strip(), self.case_sensitive))


class Json(Criterion):
    """The response parses as JSON (inside a markdown code fence is fine); optional schema."""

    schema_: dict[str, Any] | None = Field(None, alias="schema")
    """A JSON Schema the parsed value must satisfy (checked with ``jsonschema``)."""
    allow_fence: bool = True
    """Accept a response wrapped in a ```` ```json ```` fence, as IFEval does."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @field_validator("schema_")
    @classmethod
    def _valid_schema(cls, schema: dict[str, Any] | None) -> dict[str, Any] | None:
        if schema is not None:
            import jsonschema

            try:
                jsonschema.validators.validator_for(schema).check_schema(schema)
            except jsonschema.SchemaError as exc:
                raise ValueError(f"invalid JSON schema: {exc.message}") from None
        return schema

    def check(self, sample: Sample) -> bool:
        text = sample.response.strip()
        fenced = _FENCE.match(text) if self.allow_fence else None
        if fenced:
            text = fenced.group(1)
        try:
            value = json.loads(text)
        except ValueError:
            return False
        if self.schema_ is None:
            return True
        import jsonschema

        validator = jsonschema.validators.validator_for(self.schema_)(self.schema_)
        valid: bool = validator.is_valid(value)
        return valid

    def describe(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class Python(Criterion):
    """A user function ``module:name`` decides; it returns a bool, a score in [0, 1], or None.

    The function is called with the keyword arguments it accepts among ``response``, ``prompt``
    (plain text), ``reference``, ``sample`` (the :class:`~rewardplug.Sample`), the sample's
    metadata fields (dataset columns) and the check's ``kwargs``. None means "cannot tell" and
    leaves the criterion out of the score (as a failed check does).
    """

    function: str
    """Import path ``package.module:name``."""
    kwargs: dict[str, Any] = Field(default_factory=dict)
    """Extra keyword arguments (thresholds, options) passed on every call."""

    _fn: Callable[..., Any] | None = PrivateAttr(None)

    @field_validator("function")
    @classmethod
    def _importable(cls, value: str) -> str:
        if not callable(import_object(value)):
            raise ValueError(f"{value!r} is not callable")
        return value

    def check(self, sample: Sample) -> bool | float | None:  # type: ignore[override]
        if self._fn is None:
            self._fn = import_object(self.function)
        available: dict[str, Any] = dict(sample.metadata)
        available.update(
            response=sample.response,
            prompt=sample.prompt_text,
            reference=sample.reference,
            sample=sample,
        )
        available.update(self.kwargs)
        result = self._fn(**_accepted(self._fn, available))
        if result is None or isinstance(result, bool):
            return result
        value = float(result)
        if not (math.isfinite(value) and 0.0 <= value <= 1.0):
            raise ValueError(f"{self.function} returned {result!r}; expected a bool or [0, 1]")
        return value


def _accepted(fn: Callable[..., Any], kwargs: dict[str, Any]) -> dict[str, Any]:
    """The keyword arguments ``fn`` takes (all of them if it has ``**kwargs``)."""
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return kwargs
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return kwargs
    names = {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    return {k: v for k, v in kwargs.items() if k in names}


class Llm(Criterion):
    """The criterion's ``text`` is judged by an ``llm_judge`` backend (batched by the source)."""

    judged: ClassVar[bool] = True
    scale: Literal["binary", "score"] = "binary"
    """``binary``: the judge answers yes/no (1/0); ``score``: a grade 0–100, scaled to [0, 1]."""


#: kind -> class, in the order ``rewardplug plugins`` lists them
BUILTIN_KINDS: dict[str, type[Criterion]] = {
    "contains": Contains,
    "not_contains": NotContains,
    "regex": Regex,
    "max_words": MaxWords,
    "min_words": MinWords,
    "max_sentences": MaxSentences,
    "min_sentences": MinSentences,
    "bullets": Bullets,
    "paragraphs": Paragraphs,
    "lowercase": Lowercase,
    "uppercase": Uppercase,
    "starts_with": StartsWith,
    "ends_with": EndsWith,
    "json": Json,
    "python": Python,
    "llm": Llm,
}
