"""A first large ``discretize`` in a fresh environment pays no compile (issue 29).

Each check runs a new Python process with numba's cache in an empty folder (``NUMBA_CACHE_DIR``),
as a fresh install has it: the first call answers at numpy's speed with numpy's kernels (the same
results), the compile runs in a background process that fills the cache, and the next process
finds the kernels ready on its first call.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip(
    "numba", reason="the compiled kernels need numba: pip install 'rewardplug[fast]'"
)

ROOT = Path(__file__).resolve().parents[2]

FIRST_CALL = """
import json, time
import numpy as np
from rewardplug.compiled_loader import LOADER
from rewardplug.discretizer import discretize

rng = np.random.default_rng(0)
draws = rng.normal(size=(8192, 8)) + rng.integers(0, 3, size=(8192, 1))
groups = np.arange(8192) // 16
start = time.perf_counter()
first = discretize(draws, groups, 0.9)
took = time.perf_counter() - start
numpy = discretize(draws, groups, 0.9, backend="numpy")
out = {
    "first_s": took,
    "ready_at_once": LOADER.kernels() is not None,
    "same": bool((first.tier == numpy.tier).all() and (first.reward == numpy.reward).all()),
}
if WAIT:
    out["compiling_in"] = "process" if LOADER._process is not None else "thread"
    out["ready_after_wait"] = LOADER.wait(600)
    compiled = discretize(draws, groups, 0.9, backend="numba")
    out["same_compiled"] = bool((compiled.tier == numpy.tier).all())
print(json.dumps(out))
"""


def _run(cache: Path, wait: bool) -> dict:
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache), "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-c", f"WAIT = {wait}\n{FIRST_CALL}"],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=True,
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_a_fresh_cache_compiles_in_the_background_and_the_next_process_loads_it(tmp_path):
    cold = _run(tmp_path, wait=True)
    assert not cold["ready_at_once"] and cold["same"]  # numpy's kernels, not a compile, answered
    assert cold["compiling_in"] == "process"  # the cache folder is writable: a process fills it
    assert cold["ready_after_wait"] and cold["same_compiled"]
    assert list(tmp_path.rglob("*.nbi"))  # numba's index files, kept for the next process
    warm = _run(tmp_path, wait=False)
    assert warm["ready_at_once"] and warm["same"]  # loaded from the cache on the first call
