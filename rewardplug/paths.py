"""Where rewardplug finds its shipped files and keeps its caches."""

from __future__ import annotations

import os
import sys
from pathlib import Path

__all__ = ["cache_dir", "examples_dir", "project_root", "rubrics_dir", "source_checkout"]


def project_root() -> Path:
    """Where ``rubrics/`` and ``examples/`` live: the source checkout (editable installs), else
    ``<prefix>/share/rewardplug`` where a wheel install puts them."""
    checkout = Path(__file__).resolve().parents[1]
    if (checkout / "rubrics").is_dir():
        return checkout
    return Path(sys.prefix) / "share" / "rewardplug"


def rubrics_dir() -> Path:
    """The shipped rubric library (``rubrics/``); ``REWARDPLUG_RUBRICS`` overrides it."""
    return Path(os.environ.get("REWARDPLUG_RUBRICS") or project_root() / "rubrics")


def examples_dir() -> Path:
    """The bundled examples (stacks and data used by ``rewardplug demo``)."""
    return project_root() / "examples"


def cache_dir(*parts: str) -> Path:
    """A cache folder (``REWARDPLUG_CACHE_DIR``, default ``~/.cache/rewardplug``), created on demand."""
    base = Path(os.environ.get("REWARDPLUG_CACHE_DIR") or Path.home() / ".cache" / "rewardplug")
    path = base.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def source_checkout(start: str | Path) -> Path | None:
    """The rewardplug source checkout that holds ``start`` (its root, where ``pyproject.toml``
    sits next to the ``rewardplug`` package), or None outside of one."""
    here = Path(start).resolve()
    for folder in (here, *here.parents):
        if (folder / "pyproject.toml").is_file() and (
            folder / "rewardplug" / "__init__.py"
        ).is_file():
            return folder
    return None
