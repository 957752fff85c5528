"""What every benchmark script shares: its command line, timing and medians.

Each script builds its parser with :func:`parser`, which adds ``--smoke`` (a size that runs in
seconds: ``tests/benchmarks/test_smoke.py`` runs every script at that size, so a script that
rots fails CI) and ``--repeats`` (at least 3: a median of fewer runs is one run's noise). A
script picks its sizes with :func:`size`, times with :func:`median_time` or :func:`timed`, and
finds the project's data with :data:`DATA`.

Scripts run as ``python benchmarks/NAME.py``, which puts this folder first on ``sys.path``, so
they import this module as ``_bench``. Nothing here imports from ``tests/``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

__all__ = ["DATA", "ROOT", "median_time", "parser", "require", "size", "timed"]

T = TypeVar("T")

#: the repository root, and the shared data sets beside it (``../shared/data``)
ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"

MIN_REPEATS = 3


def _repeats(text: str) -> int:
    value = int(text)
    if value < MIN_REPEATS:
        raise argparse.ArgumentTypeError(
            f"--repeats must be at least {MIN_REPEATS} (a median of fewer runs is one run's "
            f"noise), got {value}"
        )
    return value


def parser(
    doc: str | None, *, repeats: int | None = MIN_REPEATS, add_help: bool = True
) -> argparse.ArgumentParser:
    """An argument parser described by the script's docstring, with ``--smoke`` and (unless
    ``repeats`` is None: a script that times nothing) ``--repeats``; ``add_help=False`` for a
    parent of subcommands' parsers."""
    ap = argparse.ArgumentParser(
        description=doc, formatter_class=argparse.RawDescriptionHelpFormatter, add_help=add_help
    )
    ap.add_argument(
        "--smoke",
        action="store_true",
        help="a tiny size that runs in seconds (CI runs every benchmark so); its figures mean "
        "nothing",
    )
    if repeats is not None:
        ap.add_argument(
            "--repeats",
            type=_repeats,
            default=repeats,
            help=f"timed runs per measurement; medians are reported (default {repeats}, "
            f"at least {MIN_REPEATS})",
        )
    return ap


def size(args: argparse.Namespace, full: T, smoke: T) -> T:
    """``smoke`` under ``--smoke``, else ``full``."""
    return smoke if args.smoke else full


def median_time(fn: Callable[[], object], repeats: int) -> float:
    """Median wall seconds of ``repeats`` calls of ``fn``."""
    return timed(fn, repeats)[0]


def timed(fn: Callable[[], T], repeats: int) -> tuple[float, T]:
    """Median wall seconds of ``repeats`` calls of ``fn``, and the last call's result."""
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def require(path: Path, what: str) -> Path:
    """``path``, or exit with a message naming the missing data and where it is described."""
    if not path.exists():
        raise SystemExit(
            f"{what} not found at {path}: the shared data sets live beside the repository "
            "(see ../shared/data/README.md)"
        )
    return path
