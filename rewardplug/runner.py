"""The local scoring engine behind ``rewardplug score``: JSONL in, JSONL out, resumable.

Samples are scored in batches of whole groups (a group is never discretized in pieces) and each
batch is appended with one write (fsynced at least every second, see :class:`~rewardplug.io.RowWriter`),
so an interrupted run resumes with ``resume=True`` without
duplicating or losing rows (see :mod:`rewardplug.io`). Output rows are in group order: groups in
order of first appearance, samples within a group in input order -- for a file whose groups are
contiguous this is exactly the input order.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from rewardplug.io import (
    InputError,
    Loaded,
    RowWriter,
    group_batches,
    load_jsonl,
    output_row,
    prepare_resume,
)
from rewardplug.stack import Stack, load_stack
from rewardplug.types import Sample

__all__ = ["ScoreSummary", "score_file"]


@dataclass
class ScoreSummary:
    """What a scoring run did."""

    total: int = 0
    written: int = 0
    resumed: int = 0
    abstained: int = 0
    skipped: list[str] = field(default_factory=list)
    #: one line per source and required field that samples lack (:mod:`rewardplug.inputs`)
    missing: list[str] = field(default_factory=list)


def score_file(
    stack: Stack | str | Path,
    input_path: str | Path,
    output_path: str | Path,
    *,
    batch_size: int = 256,
    resume: bool = False,
    skip_bad: bool = False,
    on_progress: Callable[[int, int], None] | None = None,
) -> ScoreSummary:
    """Score every sample of ``input_path`` into ``output_path``.

    :param on_progress: called as ``on_progress(done, total)`` after each batch (progress bars).
    """
    if not isinstance(stack, Stack):
        stack = load_stack(stack)
    loaded = load_jsonl(input_path, skip_bad=skip_bad)
    report = stack.check_inputs(loaded.samples)
    if report.malformed:
        _drop_malformed(loaded, report.malformed, str(input_path), skip_bad)
    # The loaded file lives until the end: keep the cyclic collector from walking it at every
    # full collection (gc.freeze: CPython's tool for long-lived data), and give it back after.
    # Frozen before anything else allocates: the first progress call imports rich, and a full
    # collection during that import walked all 100k rows of a large file (77 ms).
    gc.freeze()
    try:
        out = Path(output_path)
        out.parent.mkdir(parents=True, exist_ok=True)
        summary = ScoreSummary(
            total=len(loaded.samples),
            skipped=loaded.skipped,
            missing=report.lines(len(loaded.samples)),
        )
        if resume:
            done = prepare_resume(out, loaded.samples)
        else:
            out.write_text("", encoding="utf-8")
            done = set()
        summary.resumed = len(done)
        todo = [i for i, s in enumerate(loaded.samples) if s.id not in done]
        pending = [loaded.samples[i] for i in todo]
        if on_progress:
            on_progress(summary.resumed, summary.total)
        _score_batches(stack, loaded, pending, todo, out, batch_size, summary, on_progress)
    finally:
        gc.unfreeze()
    return summary


def _drop_malformed(loaded: Loaded, malformed: dict[int, str], path: str, skip_bad: bool) -> None:
    """Fail on the first row whose fields a source cannot read, or skip (and count) them all."""
    messages = {i: f"{path}:{loaded.lines[i]}: {why}" for i, why in sorted(malformed.items())}
    if not skip_bad:
        first = next(iter(messages.values()))
        raise InputError(first + " (use --skip-bad to skip bad lines)")
    keep = [i for i in range(len(loaded.samples)) if i not in malformed]
    loaded.samples = [loaded.samples[i] for i in keep]
    loaded.rows = [loaded.rows[i] for i in keep]
    loaded.lines = [loaded.lines[i] for i in keep]
    loaded.skipped.extend(messages.values())


def _score_batches(
    stack: Stack,
    loaded: Loaded,
    pending: list[Sample],
    todo: list[int],
    out: Path,
    batch_size: int,
    summary: ScoreSummary,
    on_progress: Callable[[int, int], None] | None,
) -> None:
    progress = summary.resumed
    with RowWriter(out) as writer:
        for batch in group_batches(pending, batch_size):
            samples = [pending[j] for j in batch]
            rewards = stack.score(samples)
            rows = [
                output_row(loaded.rows[todo[j]], r) for j, r in zip(batch, rewards, strict=True)
            ]
            writer.append(rows)
            summary.written += len(rows)
            summary.abstained += sum(r.reward is None for r in rewards)
            progress += len(rows)
            if on_progress:
                on_progress(progress, summary.total)
