"""Run the real CLI in a process where some modules are not installed (as a core-only install).

A ``sitecustomize`` on ``PYTHONPATH`` puts an import finder first that refuses the named modules,
so ``import`` and ``importlib.util.find_spec`` both report them missing.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

BLOCKER = """
import importlib.abc, os, sys
_BLOCKED = set(os.environ["RP_TEST_BLOCKED"].split(","))
class _NotInstalled(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in _BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None
sys.meta_path.insert(0, _NotInstalled())
"""


def run_cli(
    tmp_path: Path,
    blocked: str,
    *args: str,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess:
    """``python -m rewardplug ARGS`` with the comma-separated modules ``blocked`` unimportable."""
    site = tmp_path / "site"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(BLOCKER)
    full_env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(site), str(ROOT), os.environ.get("PYTHONPATH", "")]),
        "RP_TEST_BLOCKED": blocked,
        "COLUMNS": "200",  # rich wraps at the terminal width: keep a command on one line
        **(env or {}),
    }
    return subprocess.run(
        [sys.executable, "-m", "rewardplug", *args],
        capture_output=True,
        text=True,
        cwd=cwd or tmp_path,
        env=full_env,
        timeout=timeout,
    )
