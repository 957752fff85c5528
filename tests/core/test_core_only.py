"""The core-only install (``pip install rewardplug``, no extras) scores with `python`,
`test_cases` and a programmatic `rubric`, and the Makefile installs into a virtualenv.

The extras' packages are made unimportable in a subprocess, as if they were not installed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXTRAS = (
    "torch",
    "transformers",
    "openai",
    "litellm",
    "fastapi",
    "uvicorn",
    "ray",
    "trl",
    "datasets",
    "httpx",
    "aiohttp",
    "diskcache",
    "accelerate",
    "gguf",
    "jsonschema",
    "numba",
    "llvmlite",
    "matplotlib",  # [plot]
    "pyseccomp",  # [code]
)

BLOCKER = f"""
import importlib.abc, sys
class _NotInstalled(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {EXTRAS!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}} (core-only test)", name=name)
        return None
sys.meta_path.insert(0, _NotInstalled())
"""

STACK = """
sources:
  - name: mine
    use: python
    with: {function: "tests.core.rewards_fixture:nan_for_empty"}
    noise: {std: 0.05}
  - name: tests
    use: test_cases
    with: {workers: 2}
  - name: format
    use: rubric
    with:
      rubric:
        criteria:
          - {id: short, text: At most 50 words, weight: 1, check: {kind: max_words, value: 50}}
          - {id: defines, text: Defines a function, weight: 1, check: {kind: regex, pattern: 'def '}}
"""


def test_core_only_stack_scores_without_any_extra(tmp_path):
    (tmp_path / "stack.yaml").write_text(STACK)
    tests = {
        "kind": "call",
        "entry_point": "add",
        "cases": [
            {"args": [a, b], "expected": a + b}
            for a, b in ((1, 2), (2, 3), (-1, 1), (10, 5), (7, 7), (0, 0))
        ],
    }
    code = (
        BLOCKER
        + f"""
import json, rewardplug
stack = rewardplug.load_stack({str(tmp_path / "stack.yaml")!r})
rewards = stack.score([
    {{"prompt": "add", "response": "def add(a, b):\\n    return a + b", "tests": {tests!r}}},
    {{"prompt": "add", "response": "def add(a, b):\\n    return a * b", "tests": {tests!r}}},
])
stack.close()
blocked = sorted(m for m in sys.modules if m.split(".")[0] in {EXTRAS!r})
print(json.dumps({{"rewards": [r.reward for r in rewards],
                  "status": {{n: s.status for n, s in rewards[0].sources.items()}},
                  "reason": rewards[0].sources["tests"].reason,
                  "blocked_imported": blocked}}))
"""
    )
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env, timeout=300
    )
    assert out.returncode == 0, out.stderr[-3000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    if shutil.which("bwrap") and got["status"]["tests"] == "ok":
        assert got["status"] == {"mine": "ok", "tests": "ok", "format": "ok"}
        assert got["rewards"][0] > got["rewards"][1]
    else:
        # without bubblewrap the sandbox's fallback needs pyseccomp, an extra: the source
        # abstains and names it (never a silent 0); the other sources still score
        assert got["status"] == {"mine": "ok", "tests": "abstain", "format": "ok"}
        assert "rewardplug[code]" in got["reason"], got["reason"]
    assert got["blocked_imported"] == []


def test_core_only_names_the_extra_for_a_plot_and_for_the_seccomp_filter(tmp_path):
    code = (
        BLOCKER
        + f"""
import json, logging
from rewardplug.evaluation import plot_tradeoff
from rewardplug.extras import MissingDependency
from rewardplug_code import sandbox
try:
    plot_tradeoff({{"sweep": []}}, {str(tmp_path / "plot.png")!r})
    plot = "no error"
except MissingDependency as exc:
    plot = str(exc)
said = []
class Keep(logging.Handler):
    def emit(self, record):
        said.append(record.getMessage())
sandbox.log.addHandler(Keep())
print(json.dumps({{"plot": plot, "filter": sandbox.seccomp_bpf(True), "said": said}}))
"""
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300
    )
    assert out.returncode == 0, out.stderr[-3000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert "matplotlib" in got["plot"] and "pip install 'rewardplug[plot]'" in got["plot"]
    assert not (tmp_path / "plot.png").exists()
    assert got["filter"] is None  # no filter without the binding: the fallback level is refused
    assert any("pip install 'rewardplug[code]'" in line for line in got["said"]), got["said"]


def test_core_only_demo_runs_without_its_figure_and_says_what_to_install(tmp_path):
    code = (
        BLOCKER
        + f"""
import yaml
from rich.console import Console
from rewardplug.demo import DEMO_STACK, run_demo
stack = yaml.safe_load(DEMO_STACK.read_text())
stack["sources"] = [s for s in stack["sources"] if s["use"] == "rubric"]
path = {str(tmp_path / "stack.yaml")!r}
with open(path, "w") as f:
    yaml.safe_dump(stack, f)
out = Console(record=True, width=200, force_terminal=False)
run_demo({str(tmp_path)!r}, path, console=out)
print(" ".join(out.export_text().split()))
"""
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "no tier plot" in out.stdout and "pip install 'rewardplug[plot]'" in out.stdout
    assert (tmp_path / "demo-scored.jsonl").stat().st_size > 0
    assert not (tmp_path / "demo-tiers.png").exists()


def _make_dry_run(python: str) -> str:
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    out = subprocess.run(
        ["make", "-n", "-B", "-C", str(ROOT), "test", f"PYTHON={python}"],
        capture_output=True,
        text=True,
        timeout=60,
        env={k: v for k, v in os.environ.items() if k != "CONDA_PREFIX"},
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_make_outside_a_virtualenv_creates_and_uses_dot_venv():
    # the interpreter this one (maybe a venv's) was made from: not inside any virtualenv
    candidates = [Path(sys.base_prefix) / "bin" / name for name in ("python3", "python")]
    base = next((str(c) for c in candidates if c.exists()), None)
    if base is None:
        pytest.skip(f"no base interpreter under {sys.base_prefix}")
    plan = _make_dry_run(base)
    venv_python = str(ROOT / ".venv" / "bin" / "python")
    assert f"{base} -m venv .venv" in plan
    assert f"{venv_python} -m pip install -e" in plan
    assert f"{venv_python} -m pytest" in plan
    assert "rewardplug-hello" not in plan  # the example plugin stays out of the user's env


def test_make_inside_a_virtualenv_uses_it():
    if sys.prefix == sys.base_prefix:
        pytest.skip("this interpreter is not in a virtualenv")
    plan = _make_dry_run(sys.executable)
    assert "-m venv" not in plan
    assert f"{sys.executable} -m pytest" in plan
