"""The discretizer's compiled kernels, loaded without a compile on the hot path.

numba compiles the kernels of :mod:`rewardplug.compiled` on first use -- 7-10 s in a fresh
environment -- and keeps the machine code in its on-disk cache, so only the first process ever
compiles. Backend ``auto`` must not make that first process wait: :meth:`KernelLoader.kernels`
answers the compiled module only once its kernels are ready to run (already in this process, or
in numba's cache, where loading them takes milliseconds). Until then it answers None -- numpy's
kernels, the same results to the bit -- and starts, once, a compile in the background: a separate
process that fills the cache (it takes no GIL from this one, and runs at a lower priority), or,
where numba has no writable cache folder, a thread of this process.

``python -c "import rewardplug; rewardplug.warm_kernels()"`` (this module's :func:`warm`)
compiles ahead, after an install say; ``NUMBA_CACHE_DIR`` chooses where the cache lives.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import threading
from pathlib import Path
from types import ModuleType

__all__ = ["LOADER", "KernelLoader", "warm"]

# the kernels whose machine code a discretize call runs (the others are inlined into these)
_ENTRY_POINTS = ("scan_sorted", "row_stats", "group_tiers")


def warm() -> None:
    """Compile (or load from numba's cache) every kernel a discretize call runs, in this process."""
    import numpy as np

    from rewardplug.discretizer import discretize

    rng = np.random.default_rng(0)
    scored = rng.normal(size=(64, 4))
    abstaining = scored.copy()
    abstaining[3] = np.nan  # an abstaining row: the scored rows are gathered, not sliced
    groups = np.arange(64) // 8
    # the argument types of real calls (C-contiguous float64 arrays): numba compiles per type
    for draws in (scored, abstaining):
        for values in (None, np.ascontiguousarray(draws[:, 0])):
            for method in ("gaussian", "exact"):
                discretize(draws, groups, 0.9, method=method, values=values, backend="numba")


def _cache_holds_kernels(module: ModuleType) -> bool:
    """Whether numba's on-disk cache holds machine code of every entry kernel for this very
    source (numba's own index; stale entries do not count). False when unsure."""
    try:
        for name in _ENTRY_POINTS:
            cache = getattr(module, name)._cache
            if not cache._cache_file._load_index():
                return False
    except Exception:  # numba's cache internals differ: behave as if cold (never wrong, slower)
        return False
    return True


class KernelLoader:
    """Hands out the compiled kernels module when it can run without compiling; owns the one
    background compile of its process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._module: ModuleType | None = None
        self._ready = False
        self._failed: str | None = None  # why the compiled module cannot be imported
        self._process: subprocess.Popen[bytes] | None = None
        self._thread: threading.Thread | None = None

    def load(self) -> ModuleType:
        """The compiled module, imported (numba, ~0.3 s once); ImportError without numba."""
        if self._failed is not None:
            raise ImportError(self._failed)
        if self._module is None:
            try:
                self._module = importlib.import_module("rewardplug.compiled")
            except ImportError as exc:
                # remembered: a failed import is not cached by Python, and this is a hot path
                self._failed = str(exc)
                raise
        return self._module

    def kernels(self) -> ModuleType | None:
        """The compiled module if its kernels run now without a compile, else None (and a
        compile started in the background); None without numba."""
        if self._ready:
            return self._module
        try:
            module = self.load()
        except ImportError:
            return None
        with self._lock:
            if not self._ready:
                self._advance(module)
        return module if self._ready else None

    def _advance(self, module: ModuleType) -> None:
        """One step of cold -> compiling -> ready; called under the lock."""
        if self._process is not None:
            if self._process.poll() is None:
                return
            self._process = None
            if not _cache_holds_kernels(module):  # it failed, or wrote elsewhere: compile here
                self._start_thread()
                return
        if self._thread is not None:
            if self._thread.is_alive():
                return
            self._ready = True
            return
        if _cache_holds_kernels(module):
            self._ready = True
        elif getattr(module, "CACHING", False):
            self._start_process()
        else:
            self._start_thread()

    def _start_process(self) -> None:
        root = str(Path(__file__).resolve().parents[1])
        path = os.environ.get("PYTHONPATH")
        env = {**os.environ, "PYTHONPATH": root + (os.pathsep + path if path else "")}
        code = "import os; os.nice(10); from rewardplug.compiled_loader import warm; warm()"
        try:
            self._process = subprocess.Popen(
                [sys.executable, "-c", code],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        except OSError:  # no new process allowed here: compile in this one
            self._start_thread()

    def _start_thread(self) -> None:
        self._thread = threading.Thread(target=warm, name="rewardplug-compile", daemon=True)
        self._thread.start()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the compiled kernels are ready (starting their compile if need be), at most
        ``timeout`` seconds; whether they are. False at once without numba."""
        if self.kernels() is not None:
            return True
        if self._failed is not None:
            return False
        process, thread = self._process, self._thread
        try:
            if process is not None:
                process.wait(timeout)
            elif thread is not None:
                thread.join(timeout)
        except subprocess.TimeoutExpired:
            return False
        # the process is done: the next step may start a thread (its cache was not filled)
        if self.kernels() is None and self._thread is not None:
            self._thread.join(timeout)
        return self.kernels() is not None


#: the loader of this process (the kernels are process-wide: numba compiles per process)
LOADER = KernelLoader()
