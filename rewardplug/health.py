"""Loud failures: a source that fails on (nearly) a whole batch is reported, not averaged away.

A source that abstains or errors on one sample is normal; one that fails on every sample of a
batch (a judge server that is not there, a model that did not load) silently turns the stack into
its other sources -- or into abstentions -- and training goes on. :class:`SourceHealth` watches
each batch a stack finishes: when a source failed on at least ``share`` of it (and on at least
one sample), it is reported once per source -- one warning line (a ``RewardplugWarning``, which
is a ``UserWarning``, attributed to the caller's line) naming the source, the share and its first
reason; the traceback of a source that raised is logged at DEBUG only -- and recorded in
:attr:`SourceHealth.failures` (``serve``'s ``/health``, TRL's logged metrics). With
``on_source_failure: fail`` the batch raises :class:`SourceFailure` instead.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

from rewardplug.notices import SHOWN, warn
from rewardplug.types import Score

__all__ = ["FailureReport", "SourceFailure", "SourceHealth"]

log = logging.getLogger("rewardplug")


class SourceFailure(RuntimeError):
    """A source failed on (nearly) a whole batch and the stack says ``on_source_failure: fail``."""


@dataclass
class FailureReport:
    """The latest batch on which a source failed too often."""

    source: str
    failed: int
    total: int
    reason: str | None
    batches: int = 1

    def message(self, note: str = "") -> str:
        return (
            f"source {self.source!r} could not score {self.failed} of {self.total} samples in a "
            f"batch{note}; first reason: {self.reason}"
        )


class SourceHealth:
    """Per-source failure watch for one stack (see module docstring)."""

    def __init__(self, share: float = 1.0, on_failure: str = "warn"):
        self.share = share
        self.on_failure = on_failure
        self.failures: dict[str, FailureReport] = {}

    def observe(self, scores: Mapping[str, Sequence[Score]]) -> None:
        """Check one batch's scores; warn (once per source) or raise per the policy."""
        for name, values in scores.items():
            total = len(values)
            bad = [s for s in values if not s.ok]
            if not total or not bad or len(bad) < self.share * total:
                continue
            report = FailureReport(name, len(bad), total, bad[0].reason)
            if self.on_failure == "fail":
                raise SourceFailure(report.message(" (on_source_failure: fail)"))
            previous = self.failures.get(name)
            if previous is not None:
                report.batches = previous.batches + 1
            else:
                text = report.message(" (the other sources carry on; on_source_failure: warn)")
                warn(text)  # one line, attributed to the caller's `stack.score` line
                if log.hasHandlers():  # a configured log (serve's) gets it too, marked as shown
                    log.warning(text, extra={SHOWN: True})
            self.failures[name] = report

    def as_dict(self) -> dict[str, dict[str, object]]:
        """The failures so far, JSON-ready."""
        return {name: asdict(r) for name, r in self.failures.items()}
