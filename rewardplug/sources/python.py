"""The ``python`` source: wrap an existing reward function, unchanged.

``with: {function: "my_rewards:correctness"}``. By default the function is a TRL-style batch
function, called as ``fn(prompts=[...], completions=[...], **columns)`` where ``columns`` are the
samples' extra fields as lists (``reference``, ``gold``, ...). With ``batched: false`` it is called
once per sample as ``fn(prompt=..., completion=..., **fields)``. Per sample it returns a float, a
list of floats (its draws), a :class:`~rewardplug.Score`, or None (abstain).

Columns a function does not accept are not passed, unless it takes ``**kwargs``. If a batch call
raises, the samples are retried one by one so one bad sample cannot fail its batch.
"""

from __future__ import annotations

import functools
import inspect
import math
import numbers
from collections.abc import Callable, Sequence
from typing import Any

from pydantic import Field, field_validator

from rewardplug.plugins import import_object
from rewardplug.source import RewardSource, SourceConfig
from rewardplug.types import Sample, Score, trusted

_OPTIONAL_FIELDS = ("reference", "tests", "rubric")


class PythonSource(RewardSource):
    """A reward computed by a user function ``module:name`` (TRL reward functions work as they are)."""

    class Config(SourceConfig):
        function: str
        """Import path ``package.module:name`` of the reward function."""
        batched: bool = True
        """True: ``fn(prompts=, completions=, **columns)`` per batch; False: once per sample."""
        kwargs: dict[str, Any] = Field(default_factory=dict)
        """Extra keyword arguments passed on every call (e.g. thresholds)."""

        @field_validator("function")
        @classmethod
        def _importable(cls, value: str) -> str:
            fn = import_object(value)
            if not callable(fn):
                raise ValueError(f"{value!r} is not callable")
            return value

    config: Config
    transient = ("_fn",)

    def __init__(self, config: Any = None, **options: Any):
        super().__init__(config, **options)
        self._fn: Callable[..., Any] | None = None

    @property
    def fn(self) -> Callable[..., Any]:
        if self._fn is None:
            self._fn = import_object(self.config.function)
        return self._fn

    def score(self, samples: Sequence[Sample]) -> list[Score]:
        if not samples:
            return []
        if not self.config.batched:
            return [self._score_one(s) for s in samples]
        try:
            results = self._call_batch(samples)
        except Exception as exc:
            if len(samples) == 1:
                return [Score.error(f"{self.config.function} raised {type(exc).__name__}: {exc}")]
            # Isolate the culprit: score the samples one by one.
            return [self.score([s])[0] for s in samples]
        if (
            not isinstance(results, Sequence)
            or isinstance(results, str)
            or len(results) != len(samples)
        ):
            got = len(results) if isinstance(results, Sequence) else type(results).__name__
            reason = f"{self.config.function} returned {got} results for {len(samples)} samples"
            return [Score.error(reason) for _ in samples]
        return [to_score(r, self.config.function) for r in results]

    def _call_batch(self, samples: Sequence[Sample]) -> Any:
        columns = _columns(samples)
        kwargs = {
            "prompts": [s.prompt for s in samples],
            "completions": [s.response for s in samples],
        }
        kwargs.update(columns)
        kwargs.update(self.config.kwargs)
        return self.fn(**_accepted(self.fn, kwargs))

    def _score_one(self, sample: Sample) -> Score:
        kwargs: dict[str, Any] = {"prompt": sample.prompt, "completion": sample.response}
        kwargs.update({k: v for k in _OPTIONAL_FIELDS if (v := getattr(sample, k)) is not None})
        kwargs.update(sample.metadata)
        kwargs.update(self.config.kwargs)
        try:
            return to_score(self.fn(**_accepted(self.fn, kwargs)), self.config.function)
        except Exception as exc:
            return Score.error(f"{self.config.function} raised {type(exc).__name__}: {exc}")


def _columns(samples: Sequence[Sample]) -> dict[str, list[Any]]:
    """The samples' extra fields as TRL-style column lists (missing entries are None)."""
    names = [f for f in _OPTIONAL_FIELDS if any(getattr(s, f) is not None for s in samples)]
    columns = {f: [getattr(s, f) for s in samples] for f in names}
    keys: dict[str, None] = {}
    for s in samples:
        keys.update(dict.fromkeys(s.metadata))
    for key in keys:
        columns.setdefault(key, [s.metadata.get(key) for s in samples])
    return columns


def _accepted(fn: Callable[..., Any], kwargs: dict[str, Any]) -> dict[str, Any]:
    """Keep only the keyword arguments ``fn`` can take (all of them if it has ``**kwargs``)."""
    names = _parameter_names(fn)
    return kwargs if names is None else {k: v for k, v in kwargs.items() if k in names}


@functools.lru_cache(maxsize=256)
def _parameter_names(fn: Callable[..., Any]) -> frozenset[str] | None:
    """The keyword names ``fn`` accepts; None when it takes any (``**kwargs``, no signature).
    Cached: it is asked on every batch, and inspecting a signature is not free."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):  # builtins without a signature: pass everything
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return None
    return frozenset(p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))


def to_score(result: Any, origin: str = "function") -> Score:
    """Turn what a reward function returned for one sample into a :class:`Score`.

    float -> one draw; list of floats -> draws (value = their mean); None -> abstain;
    a Score passes through. Anything else is an error naming what came back.
    """
    if type(result) is float and math.isfinite(result):  # the common case, checked first
        return trusted(Score, {"value": result, "draws": [result], "status": "ok", "detail": {}})
    if result is None:
        return Score.abstain(f"{origin} returned None")
    if isinstance(result, Score):
        return result
    if isinstance(result, numbers.Real):
        value = float(result)
        if math.isfinite(value):  # the common case, built without re-validating what is known
            return trusted(Score, {"value": value, "draws": [value], "status": "ok", "detail": {}})
        return Score.of(value)
    if isinstance(result, Sequence) and not isinstance(result, str | bytes):
        if not result:
            return Score.abstain(f"{origin} returned an empty list of draws")
        if all(isinstance(x, numbers.Real) for x in result):
            return Score.of(draws=[float(x) for x in result])
    # numpy arrays and scalars are not Sequence / numbers.Real in every version
    tolist = getattr(result, "tolist", None)
    if callable(tolist):
        return to_score(tolist(), origin)
    return Score.error(
        f"{origin} returned {type(result).__name__}, expected a float, a list of floats or None"
    )
