"""Test helper: import a third-party framework whose own code a test runs (verl, OpenRLHF, ...).

``make frameworks`` installs them from PyPI with ``--no-deps`` into ``.frameworks/<name>/`` (their
wheels ship top-level packages such as ``tests`` that would shadow this project's own), and
:func:`require` puts that folder on ``sys.path``.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from types import ModuleType

import pytest

FRAMEWORKS = Path(__file__).resolve().parents[1] / ".frameworks"


def require(module: str, install: str = "make frameworks") -> ModuleType:
    """Import ``module`` (from ``.frameworks/<its top-level name>`` when that exists).

    Skips with the install command when it is missing -- except in CI (``CI=true``), where
    ``.ci/run`` installs it, so a missing framework fails instead of silently skipping the test.
    """
    home = FRAMEWORKS / module.split(".")[0]
    if home.is_dir() and str(home) not in sys.path:
        sys.path.insert(0, str(home))
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"{module} is not installed ({exc}); install it with: {install}")
