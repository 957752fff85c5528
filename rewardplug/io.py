"""JSONL in and out: samples from files, rows back with their rewards, resumable writes.

* Every input line is validated; a bad line is an :class:`InputError` naming the file and line,
  or, with ``skip_bad``, skipped and counted.
* Output rows are the input fields plus the :class:`Reward` fields, written one whole batch of
  groups at a time with a single write + flush, so an interrupted process leaves at most a torn
  tail. Writes reach the disk (fsync) at least every :data:`SYNC_INTERVAL_S` seconds and when
  the run ends: a crash of the machine loses at most that much, which ``--resume`` redoes.
  :func:`prepare_resume` removes that tail and every row of a group that was not
  written completely, so a resumed run neither duplicates nor loses rows and never discretizes a
  group in pieces.
"""

from __future__ import annotations

import gc
import json
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import PydanticSerializationError, to_json

from rewardplug.types import Reward, Sample, sample_from

__all__ = [
    "InputError",
    "Loaded",
    "RowWriter",
    "append_rows",
    "dump_row",
    "group_batches",
    "load_jsonl",
    "output_row",
    "prepare_resume",
    "read_samples",
]


class InputError(ValueError):
    """A malformed input line (the message names the file and line)."""


@dataclass
class Loaded:
    """Samples read from a JSONL file, with their original rows and line numbers."""

    samples: list[Sample] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def _iter_lines(path: Path) -> Iterator[tuple[int, str]]:
    with path.open("r", encoding="utf-8", errors="strict", newline="\n") as f:
        lineno = 0
        while True:
            try:
                line = f.readline()
            except UnicodeDecodeError as exc:
                raise InputError(f"{path}:{lineno + 1}: not valid UTF-8 ({exc.reason})") from None
            if not line:
                return
            lineno += 1
            if line.strip():
                yield lineno, line


def load_jsonl(path: str | Path, skip_bad: bool = False) -> Loaded:
    """Read samples from a JSONL file (one JSON object per line; blank lines ignored).

    A row without ``id`` gets its line number as id; ids must be unique (resume relies on it).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"input file {str(path)!r} does not exist")
    # Reading makes only acyclic objects (parsed JSON, samples), all kept: the cyclic collector
    # would walk the growing heap again and again for nothing (half the time of a 100k-row
    # file). Reference counting still frees everything dropped on the way.
    paused = gc.isenabled()
    gc.disable()
    try:
        return _load(path, skip_bad)
    finally:
        if paused:
            gc.enable()


def _load(path: Path, skip_bad: bool) -> Loaded:
    out = Loaded()
    seen: dict[str, int] = {}
    for lineno, line in _iter_lines(path):
        try:
            row = json.loads(line)
            if not isinstance(row, dict):
                raise InputError(f"expected a JSON object, got {type(row).__name__}")
            sample = sample_from({"id": str(lineno), **row})
            if sample.id in seen:
                raise InputError(f"duplicate id {sample.id!r} (first on line {seen[sample.id]})")
        except (json.JSONDecodeError, InputError, ValidationError) as exc:
            message = f"{path}:{lineno}: {_short(exc)}"
            if not skip_bad:
                raise InputError(message + " (use --skip-bad to skip bad lines)") from None
            out.skipped.append(message)
            continue
        seen[sample.id] = lineno
        out.samples.append(sample)
        out.rows.append(row)
        out.lines.append(lineno)
    return out


def read_samples(path: str | Path, skip_bad: bool = False) -> list[Sample]:
    """The samples of a JSONL file (see :func:`load_jsonl`)."""
    return load_jsonl(path, skip_bad).samples


def _short(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'row'}: {e['msg']}" for e in exc.errors()
        )
    if isinstance(exc, json.JSONDecodeError):
        return f"invalid JSON ({exc.msg} at column {exc.colno})"
    return str(exc)


def group_batches(samples: Sequence[Sample], batch_size: int) -> list[list[int]]:
    """Indices of ``samples`` in batches of whole groups (groups in order of first appearance).

    A batch holds at least one group and closes once it reaches ``batch_size`` samples, so a
    group is never split across batches.
    """
    members: dict[str, list[int]] = {}
    for i, sample in enumerate(samples):
        members.setdefault(sample.group, []).append(i)
    batches: list[list[int]] = []
    current: list[int] = []
    for idx in members.values():
        current.extend(idx)
        if len(current) >= batch_size:
            batches.append(current)
            current = []
    if current:
        batches.append(current)
    return batches


def output_row(row: dict[str, Any], reward: Reward) -> dict[str, Any]:
    """An output row: the input fields plus the reward's fields (which win on a name clash).

    The per-source scores stay :class:`~rewardplug.types.Score` objects: :func:`dump_row`
    serializes them (a JSON-ready copy of every row would cost more than the rest of a trivial
    source's row put together).
    """
    # a model's field values are its __dict__ (iterating the model costs 10x as much)
    return {**row, **reward.__dict__}


def dump_row(row: dict[str, Any]) -> str:
    """One output row as a line of compact JSON (no newline).

    pydantic's serializer writes a row with its scores about 6x faster than ``json.dumps`` of a
    ``model_dump``; a row it cannot encode (a lone surrogate from a JSON escape in the input)
    goes through ``json.dumps`` in the same compact format instead, so no row is ever lost.
    """
    try:
        return to_json(row, inf_nan_mode="constants").decode("utf-8")
    except PydanticSerializationError:
        return json.dumps(row, ensure_ascii=False, separators=(",", ":"), default=_jsonable)


def _jsonable(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    raise TypeError(f"cannot write a {type(value).__name__} to JSON")


#: the most time between two fsyncs of an output file (a machine crash loses at most this)
SYNC_INTERVAL_S = 1.0


def append_rows(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    """Append whole rows with one write, then flush and fsync (no half-written batch survives
    a crash except as a torn tail, which :func:`prepare_resume` removes)."""
    with RowWriter(path) as writer:
        writer.append(rows)


class RowWriter:
    """Appends batches of rows to a JSONL file: one write and flush per batch, an fsync at most
    every ``sync_interval_s`` seconds and on :meth:`close`.

    A process that dies between batches leaves only whole batches (a torn tail at worst, which
    :func:`prepare_resume` removes); an fsync per batch would add nothing to that, and cost a
    disk round trip per batch. The file stays open across batches.
    """

    def __init__(self, path: Path, sync_interval_s: float = SYNC_INTERVAL_S):
        # errors="backslashreplace": a lone surrogate (legal in a JSON string escape, not in
        # UTF-8) is written as its escape (e.g. \ud800), which reads back as the same string
        self._file = Path(path).open(  # noqa: SIM115 - closed by close() / the with block
            "a", encoding="utf-8", errors="backslashreplace"
        )
        self.sync_interval_s = sync_interval_s
        self._synced = time.monotonic()
        self._dirty = False

    def append(self, rows: Sequence[dict[str, Any]]) -> None:
        """Append output rows (see :func:`output_row`) as one batch."""
        self.append_lines([dump_row(r) for r in rows])

    def append_lines(self, lines: Sequence[str]) -> None:
        """Append rows already serialized by :func:`dump_row` (no newlines) as one batch."""
        if not lines:
            return
        self._file.write("\n".join(lines) + "\n")
        self._file.flush()
        self._dirty = True
        if time.monotonic() - self._synced >= self.sync_interval_s:
            self.sync()

    def sync(self) -> None:
        """Make everything appended so far durable."""
        if self._dirty:
            os.fsync(self._file.fileno())
            self._dirty = False
        self._synced = time.monotonic()

    def close(self) -> None:
        if not self._file.closed:
            try:
                self.sync()
            finally:
                self._file.close()

    def __enter__(self) -> RowWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def prepare_resume(path: Path, samples: Sequence[Sample]) -> set[str]:
    """Make an interrupted output file consistent and return the ids already done.

    Keeps only complete lines that belong to groups whose every sample was written; the file is
    rewritten atomically when anything has to go.
    """
    if not path.exists():
        return set()
    group_of = {s.id: s.group for s in samples}
    size: dict[str, int] = {}
    for s in samples:
        size[s.group] = size.get(s.group, 0) + 1
    kept: list[tuple[str, str]] = []
    dropped = False
    with path.open("r", encoding="utf-8", errors="replace") as f:
        for line in f:
            if not line.endswith("\n"):
                dropped = True  # torn tail of an interrupted write
                break
            try:
                rid = str(json.loads(line)["id"])
            except (json.JSONDecodeError, KeyError, TypeError):
                dropped = True
                continue
            if rid in group_of:
                kept.append((rid, line))
            else:
                dropped = True
    written: dict[str, int] = {}
    for rid, _ in kept:
        written[group_of[rid]] = written.get(group_of[rid], 0) + 1
    complete = {g for g, n in written.items() if n == size[g]}
    final = [(rid, line) for rid, line in kept if group_of[rid] in complete]
    if dropped or len(final) != len(kept):
        tmp = path.with_name(path.name + ".resume-tmp")
        tmp.write_text("".join(line for _, line in final), encoding="utf-8")
        os.replace(tmp, path)
    return {rid for rid, _ in final}
