"""Start-up time of the CLI against ``import rewardplug``, in the same run.

Target (issue: the first hour): ``rewardplug --help`` within 3x ``python -c "import rewardplug"``.
Each command runs ``--repeats`` times, alternating; medians of wall time are compared.

    python benchmarks/cli_startup.py --repeats 9
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time


def _time(cmd: list[str]) -> float:
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=9)
    args = ap.parse_args()
    script = shutil.which("rewardplug")
    cli = [script] if script else [sys.executable, "-m", "rewardplug"]
    commands = {
        "python -c 'import rewardplug'": [sys.executable, "-c", "import rewardplug"],
        "rewardplug --help": [*cli, "--help"],
        "rewardplug validate --help": [*cli, "validate", "--help"],
        "python -c 'pass' (interpreter floor)": [sys.executable, "-c", "pass"],
    }
    for cmd in commands.values():
        _time(cmd)  # warm the file cache
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(args.repeats):
        for name, cmd in commands.items():
            times[name].append(_time(cmd))
    med = {name: statistics.median(v) for name, v in times.items()}
    base = med["python -c 'import rewardplug'"]
    print(f"{'command':40s} {'median s':>9s} {'x import':>9s}   ({args.repeats} runs each)")
    for name, value in med.items():
        print(f"{name:40s} {value:9.3f} {value / base:8.2f}x")
    ratio = med["rewardplug --help"] / base
    print(
        f"\nrewardplug --help / import rewardplug: {ratio:.2f}x (target <= 3x: "
        f"{'holds' if ratio <= 3 else 'does not hold'})"
    )


if __name__ == "__main__":
    main()
