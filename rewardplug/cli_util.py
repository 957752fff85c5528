"""Shared pieces of the CLI's commands: expected failures as exit code 1, and progress bars."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import click

__all__ = ["Failure", "friendly_errors", "progress"]


class Failure(click.ClickException):
    exit_code = 1

    def show(self, file: Any = None) -> None:
        click.secho(f"error: {self.message}", err=True, fg="red")


@contextmanager
def friendly_errors() -> Iterator[None]:
    """Turn the library's user-facing errors into exit code 1 with their message (a module of a
    missing extra included: the message names the pip command)."""
    from rewardplug.config import StackError
    from rewardplug.io import InputError

    try:
        yield
    except (StackError, InputError, ValueError, FileNotFoundError) as exc:
        raise Failure(str(exc)) from None
    except ModuleNotFoundError as exc:  # a module of an extra: name the pip command, no traceback
        from rewardplug.extras import import_hint

        hint = import_hint(exc)
        if hint is None:
            raise
        raise Failure(hint) from None


@contextmanager
def progress(label: str) -> Iterator[Callable[[int, int], None]]:
    """A rich progress bar on stderr; yields ``update(done, total)``.

    The bar (and rich) starts at the first update with work to show, so a run with nothing to
    do prints no empty bar and does not pay rich's import.
    """
    bar: Any = None
    task: Any = None

    def update(done: int, total: int) -> None:
        nonlocal bar, task
        if bar is None:
            if not total:
                return
            bar, task = _start_bar(label)
        bar.update(task, completed=done, total=total)

    try:
        yield update
    finally:
        if bar is not None:
            bar.stop()


def _start_bar(label: str) -> tuple[Any, Any]:
    """A started rich progress bar on stderr and its one task."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
    )
    bar = Progress(*columns, console=Console(stderr=True), transient=False)
    bar.start()
    return bar, bar.add_task(label, total=None)
