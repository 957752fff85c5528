"""The sample fields each source reads, checked where the samples come in -- never a silent gap.

A source declares what it reads with :meth:`RewardSource.inputs` (``test_cases``: a ``tests``
mapping of a known shape; a judge whose template shows a reference: ``reference``; ...). The
front ends check samples against the stack's declarations before scoring:

* a field that is there but **malformed** (a misspelt key, a wrong kind) is an error naming the
  line, the source and the key, with a "did you mean" where a known key is close -- at load, like
  a stack error (``rewardplug score --skip-bad`` skips and counts such rows);
* a **missing** required field is counted per source and field and reported: in the run summary
  and the exit status of ``rewardplug score`` (``--strict`` fails), and by
  :meth:`InputReport.lines` for any front end. The sample is still scored: the source abstains on
  it with the reason, and under the default ``on_abstain: abstain`` so does the sample -- a gap
  never raises a reward.
"""

from __future__ import annotations

import difflib
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from rewardplug.types import Sample

__all__ = [
    "Input",
    "InputReport",
    "check_inputs",
    "count_missing",
    "declared",
    "missing_flags",
    "required_fields",
]


@dataclass(frozen=True)
class Input:
    """One sample field a source reads.

    :param field: the sample field (``tests``, ``reference``, ``rubric``, or a metadata column).
    :param required: the source cannot score a sample without it.
    :param check: validates a present value; raises ``ValueError`` with what is wrong.
    :param keys: for a mapping value, its known keys: any other key is an error, with the
        closest known one suggested.
    """

    field: str
    required: bool = True
    check: Callable[[Any], object] | None = None
    keys: frozenset[str] = frozenset()


@dataclass
class InputReport:
    """What a check of samples against a stack's inputs found."""

    #: (source, field) -> samples without the field
    missing: Counter[tuple[str, str]] = field(default_factory=Counter)
    #: index of a sample -> what is wrong with it (the first problem found)
    malformed: dict[int, str] = field(default_factory=dict)

    def lines(self, total: int) -> list[str]:
        """One human-readable line per source and missing field."""
        return [
            f"{n} of {total} samples have no `{fld}`, which source {source!r} needs: it "
            "abstains on them"
            for (source, fld), n in sorted(self.missing.items())
        ]


def _value(sample: Sample, name: str) -> Any:
    value = getattr(sample, name, None) if name in type(sample).model_fields else None
    if value is None:
        value = (sample.metadata or {}).get(name)
    return value


def _unknown_keys(value: Mapping[str, Any], spec: Input) -> str | None:
    unknown = sorted(set(value) - spec.keys)
    if not unknown:
        return None
    key = unknown[0]
    close = difflib.get_close_matches(key, sorted(spec.keys), n=1, cutoff=0.6)
    hint = f"; did you mean `{spec.field}.{close[0]}`?" if close else ""
    known = ", ".join(sorted(spec.keys))
    return f"`{spec.field}.{key}` is not a key it knows{hint} (known keys: {known})"


def problem(sample: Sample, spec: Input) -> str | None:
    """What is wrong with ``sample``'s field for ``spec`` (None: fine or missing)."""
    value = _value(sample, spec.field)
    if value is None:
        return None
    if spec.keys and isinstance(value, Mapping):
        wrong = _unknown_keys(value, spec)
        if wrong:
            return wrong
    if spec.check is not None:
        try:
            spec.check(value)
        except ValueError as exc:
            return str(exc)
    return None


class Declares(Protocol):
    """A source as these checks see it: what it reads (:meth:`RewardSource.inputs`)."""

    def inputs(self) -> Sequence[Input]: ...


class HasSources(Protocol):
    """A :class:`~rewardplug.stack.Stack` as these checks see it: its sources by name. Typed
    structurally because the stack calls these checks: this module does not import it."""

    @property
    def sources(self) -> Mapping[str, Declares]: ...


def declared(stack: HasSources) -> list[tuple[str, list[Input]]]:
    """Each source's declared inputs, for the sources that declare any."""
    pairs = [(name, list(source.inputs())) for name, source in stack.sources.items()]
    return [(name, specs) for name, specs in pairs if specs]


def required_fields(stack: HasSources) -> list[tuple[str, str]]:
    """``(source, field)`` for every field a source of ``stack`` cannot score without."""
    return [
        (name, spec.field) for name, specs in declared(stack) for spec in specs if spec.required
    ]


def missing_flags(required: Sequence[tuple[str, str]], sample: Sample) -> dict[str, float]:
    """``missing/<source>/<field>``: 1.0 where ``sample`` lacks a required field, else 0.0 --
    the same keys for every sample, as trainers that average per-sample values need."""
    return {
        f"missing/{source}/{fld}": float(_value(sample, fld) is None) for source, fld in required
    }


def count_missing(
    stack: HasSources, samples: Sequence[Sample], into: Counter[tuple[str, str]]
) -> None:
    """Add to ``into`` the required fields ``samples`` lack, per (source, field): what every
    front end reports (``serve``'s ``/health``, the trainers' metrics)."""
    for name, specs in declared(stack):
        for spec in specs:
            if spec.required:
                n = sum(_value(s, spec.field) is None for s in samples)
                if n:
                    into[(name, spec.field)] += n


def check_inputs(stack: HasSources, samples: Sequence[Sample]) -> InputReport:
    """Check ``samples`` against every source's declared inputs."""
    report = InputReport()
    declared_inputs = declared(stack)
    if not declared_inputs:
        return report
    for i, sample in enumerate(samples):
        for name, specs in declared_inputs:
            for spec in specs:
                if _value(sample, spec.field) is None:
                    if spec.required:
                        report.missing[(name, spec.field)] += 1
                    continue
                wrong = problem(sample, spec)
                if wrong is not None and i not in report.malformed:
                    report.malformed[i] = f"source {name!r}: {wrong}"
    return report
