"""Warnings that point at the user's call, not at rewardplug's internals.

``warnings.warn(..., stacklevel=N)`` with a fixed N points wherever the call chain happens to be N
frames up -- ``rewardplug/runner.py:99`` for a warning raised while ``rewardplug score`` runs.
:func:`warn` instead attributes the warning to the first frame outside rewardplug and its built-in
plugins: the line of the user's script that called ``stack.score`` (or the trainer's line that
called the reward function). The command line shows these warnings as one ``warning: ...`` line
(see :func:`show_as_cli_lines`).

Cheap to import: the standard library only.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Callable
from types import FrameType
from typing import TextIO

__all__ = ["RewardplugWarning", "show_as_cli_lines", "warn"]

#: set on a log record that repeats a warning already shown (``extra={SHOWN: True}``), so a
#: handler that shows both (``rewardplug -v``) can drop the copy
SHOWN = "rewardplug_shown_as_warning"


class RewardplugWarning(UserWarning):
    """A warning of rewardplug about the run (a source that is down, rewards with no uncertainty).

    A :class:`UserWarning`, so existing filters for those keep working."""


def _internal(frame: FrameType) -> bool:
    name = str(frame.f_globals.get("__name__", ""))
    return name == "rewardplug" or name.startswith(("rewardplug.", "rewardplug_"))


def warn(message: str, category: type[Warning] = RewardplugWarning) -> None:
    """``warnings.warn(message, category)`` attributed to the first caller outside rewardplug."""
    frame: FrameType | None = sys._getframe(1)  # warn's caller: stacklevel 2
    level = 2
    while frame is not None and _internal(frame):
        frame = frame.f_back
        level += 1
    warnings.warn(message, category, stacklevel=level if frame is not None else 2)


def show_as_cli_lines(echo: Callable[[str], object]) -> None:
    """Show rewardplug's warnings as ``warning: <message>`` through ``echo(text)`` (the CLI's
    stderr), without a file name, a line number or an echoed source line; other warnings keep
    Python's format."""
    default = warnings.showwarning

    def show(
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: TextIO | None = None,
        line: str | None = None,
    ) -> None:
        if issubclass(category, RewardplugWarning):
            echo(f"warning: {message}")
        else:
            default(message, category, filename, lineno, file, line)

    warnings.showwarning = show
