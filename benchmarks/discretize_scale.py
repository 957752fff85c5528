"""The discretizer at scale: against a per-group numpy baseline, per-sample cost from 16k to 1M
samples, the physical floor (one sort of the draws), and large groups -- for both backends:
``numba`` (compiled kernels, the ``fast`` extra; what ``auto`` picks from 4,096 samples when numba
is installed) and ``numpy`` (without it). Both give the same results to the bit (checked here).

Baseline: what a user would write -- a loop over groups, each group vectorized in numpy (its
``(g, g)`` probability matrix from broadcasting, then the greedy best-first split). It is timed on
``--baseline-groups`` groups and its tiers are checked against the fast path's.

    python benchmarks/discretize_scale.py --repeats 3
    python benchmarks/discretize_scale.py --fresh     # a first call in a fresh environment
    python benchmarks/discretize_scale.py --smoke     # small sizes: seconds

``--fresh``: the first ``discretize`` call (backend ``auto``) of a new process whose numba cache
is an empty folder (``NUMBA_CACHE_DIR``), as right after an install, on 200,000 samples, against
the per-group baseline on the same data; and, for comparison, the same call with backend
``numba``, which compiles the kernels on the call.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from _bench import ROOT, median_time, parser, size
from scipy.special import ndtr

from rewardplug.discretizer import discretize


def make_data(n: int, group: int, k: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    utility = rng.integers(0, 5, size=n).astype(float)
    draws = utility[:, None] + rng.normal(0, 0.2, size=(n, 1)) + rng.normal(0, 0.4, size=(n, k))
    return draws, np.repeat(np.arange(n // group + 1), group)[:n]


def baseline(draws: np.ndarray, groups: np.ndarray, confidence: float, method: str) -> np.ndarray:
    """Tiers by a per-group loop, each group vectorized (the user's version)."""
    tiers = np.empty(len(groups), dtype=np.int64)
    bounds = np.flatnonzero(np.diff(groups)) + 1
    for idx in np.split(np.arange(len(groups)), bounds):
        x = draws[idx]
        mean = x.mean(axis=1)
        order = np.argsort(-mean, kind="stable")
        x, mean = x[order], mean[order]
        if method == "gaussian":
            std = x.std(axis=1, ddof=1)
            gap = mean[:, None] - mean[None, :]
            scale = np.sqrt(std[:, None] ** 2 + std[None, :] ** 2)
            p = ndtr(gap / scale)
        else:
            p = (x[:, None, :, None] > x[None, :, None, :]).mean(axis=(2, 3))
        differ = np.maximum(p, p.T) >= confidence
        t, start, tier = np.zeros(len(idx), dtype=np.int64), 0, 0
        for i in range(1, len(idx)):
            if differ[i, start:i].any():
                start, tier = i, tier + 1
            t[i] = tier
        tiers[idx[order]] = t
    return tiers


def time_discretize(
    draws: np.ndarray, groups: np.ndarray, method: str, backend: str, repeats: int
) -> float:
    """Median seconds of one discretize call (confidence 0.9)."""
    return median_time(
        lambda: discretize(draws, groups, 0.9, method=method, backend=backend), repeats
    )


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--baseline-groups", type=int, default=None, help="default 2000 (--smoke 50)")
    ap.add_argument("--fresh", action="store_true", help="only the first call of a fresh process")
    args = ap.parse_args()
    r = args.repeats
    if args.fresh:
        fresh(args)
        return
    args.baseline_groups = args.baseline_groups or size(args, 2000, 50)
    scale = size(args, 1, 64)

    backends = ["numba", "numpy"] if _has_numba() else ["numpy"]
    if backends == ["numpy"]:
        print("(numba is not installed: the numpy backend only; pip install 'rewardplug[fast]')")

    print("1. against the per-group numpy baseline (groups of 16, K = 16)")
    draws, groups = make_data(args.baseline_groups * 16, 16, 16)
    for method in ("gaussian", "exact"):
        slow = median_time(lambda m=method: baseline(draws, groups, 0.9, m), r)
        want = 20 if method == "gaussian" else 10
        for backend in backends:
            run = lambda m=method, b=backend: discretize(draws, groups, 0.9, method=m, backend=b)  # noqa: E731
            run()  # compiled once per process (and cached on disk)
            fast = median_time(run, r)
            agree = np.mean(run().tier == baseline(draws, groups, 0.9, method))
            verdict = "holds" if slow / fast >= want else "does not hold"
            print(f"   {method:8s} {backend:5s} {fast * 1e3:7.1f} ms  baseline {slow * 1e3:7.1f} ms"
                  f"  = {slow / fast:5.1f}x (target >= {want}x: {verdict})"
                  f"   (same tier for {agree:.2%} of samples)")  # fmt: skip
    if len(backends) == 2:
        same = all(
            np.array_equal(a.reward, b.reward, equal_nan=True) and np.array_equal(a.tier, b.tier)
            for m in ("gaussian", "exact")
            for a, b in [[discretize(draws, groups, 0.9, method=m, backend=x) for x in backends]]
        )
        print(f"   numba and numpy give the same tiers and rewards: {same}")

    print("2. cost per sample from 16k to 1M samples (groups of 16, K = 16), and the floor")
    verdicts: list[str] = []
    for n in (16_384 // scale, 131_072 // scale, 1_048_576 // scale):
        draws, groups = make_data(n, 16, 16)
        floor = median_time(lambda d=draws: np.sort(d, axis=1), r)
        print(f"   {n:>9,}: sort {floor:6.3f} s")
        for backend in backends:
            cells = []
            for method in ("gaussian", "exact"):
                t = time_discretize(draws, groups, method, backend, r)
                cells.append(f"{method} {t:6.3f} s = {t / n * 1e9:5.0f} ns/sample = "
                             f"{t / floor:5.1f}x floor")  # fmt: skip
                if n == 1_048_576 // scale:
                    limit = 1.0 if method == "gaussian" else 2.0
                    verdicts.append(f"{method} {backend} at 1M: {t:.2f} s (target < {limit:.0f} s: "
                                    f"{'holds' if t < limit else 'does not hold'})")  # fmt: skip
            print(f"     {backend:5s} " + " | ".join(cells))

    for line in verdicts:
        print(f"   {line}")

    print("3. large groups")
    for group, k, n in ((256, 16, 65_536), (16, 64, 262_144), (256, 64, 65_536)):
        n //= scale
        draws, groups = make_data(n, group, k)
        for backend in backends:
            cells = []
            for method in ("gaussian", "exact"):
                t = time_discretize(draws, groups, method, backend, r)
                cells.append(f"{method} {t:6.3f} s ({t / n * 1e9:6.0f} ns/sample)")
            print(f"   groups of {group:3d}, K = {k:2d}, {n:,} samples, {backend:5s}: "
                  + " | ".join(cells))  # fmt: skip

    if "numba" in backends and not args.smoke:
        print("4. the compiled backend's one-off costs, in a fresh process (16,384 samples)")
        for label, cache in (("cache warm (numba's on-disk cache)", None), ("cache cold", "cold")):
            print(f"   {label}: {_first_call(cache):.2f} s to import numba, load or compile the "
                  "kernels and discretize once")  # fmt: skip


def _has_numba() -> bool:
    try:
        import numba  # noqa: F401
    except ImportError:
        return False
    return True


FRESH = """
import json, sys, time
t0 = time.perf_counter()
import numpy as np
from discretize_scale import make_data
from rewardplug.compiled_loader import LOADER
from rewardplug.discretizer import discretize
draws, groups = make_data(N, 16, 16)
t1 = time.perf_counter()
discretize(draws, groups, 0.9, backend=BACKEND)
t2 = time.perf_counter()
discretize(draws, groups, 0.9, backend=BACKEND)
t3 = time.perf_counter()
print(json.dumps({"import": t1 - t0, "first": t2 - t1, "second": t3 - t2,
                  "compiled_ready": LOADER.kernels() is not None}))
if LOADER._process is not None:  # the background compile would outlive its cache folder
    LOADER._process.kill()
    LOADER._process.wait()
"""


def fresh(args) -> None:
    """The first call of a new process with an empty numba cache, against the baseline."""
    n = size(args, 200_000, 8192)
    draws, groups = make_data(n, 16, 16)
    slow = median_time(lambda: baseline(draws, groups, 0.9, "gaussian"), args.repeats)
    backends = ["auto", "numba"] if _has_numba() and not args.smoke else ["auto"]
    print(f"a fresh process, numba's cache an empty folder: {n:,} samples, groups of 16, K = 16,")
    print(f"gaussian; the per-group baseline takes {slow:.3f} s (median of {args.repeats})")
    for backend in backends:
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "benchmarks"), str(ROOT)]))
        with tempfile.TemporaryDirectory() as folder:
            env["NUMBA_CACHE_DIR"] = folder
            code = f"N = {n}\nBACKEND = {backend!r}\n" + FRESH
            out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                                 text=True, check=True)  # fmt: skip
        got = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"   backend {backend:5s}: first call {got['first']:6.2f} s = "
              f"{slow / got['first']:5.1f}x faster than the baseline; second call "
              f"{got['second']:6.2f} s (import {got['import']:.2f} s; compiled kernels ready "
              f"after the second call: {got['compiled_ready']})")  # fmt: skip


def _first_call(cache: str | None) -> float:
    """Wall time of the first compiled discretize in a new process; ``cold``: numba's cache in
    an empty folder, so the kernels compile."""
    code = (
        "import time, numpy as np; t = time.perf_counter();"
        "from rewardplug.discretizer import discretize;"
        "d = np.random.default_rng(0).normal(size=(16384, 16));"
        "[discretize(d, np.arange(16384) // 16, method=m, backend='numba') for m in ('gaussian', 'exact')];"
        "print(time.perf_counter() - t)"
    )
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    with tempfile.TemporaryDirectory() as folder:
        if cache == "cold":
            env["NUMBA_CACHE_DIR"] = folder
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                             text=True, check=True)  # fmt: skip
    return float(out.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    main()
