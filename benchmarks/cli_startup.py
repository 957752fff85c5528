"""Start-up time of the CLI against ``import rewardplug``, in the same run.

Targets: ``rewardplug --help`` (the first hour) and ``rewardplug score`` on an empty input (a
one-``python``-source stack; issue 14) within 3x ``python -c "import rewardplug"``. The floor
row imports only the libraries any stack validation needs (click, PyYAML, pydantic's
``BaseModel``). Each command runs ``--repeats`` times, alternating; medians of wall time.

    python benchmarks/cli_startup.py --repeats 9
    python benchmarks/cli_startup.py --smoke     # 3 runs each, no warm-up round
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _bench import parser

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
STACK = """sources:
  - name: short
    use: python
    with:
      function: rewards:short_enough
"""


def _time(cmd: list[str]) -> float:
    env = {
        **os.environ,
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(EXAMPLES), os.environ.get("PYTHONPATH")])),
    }
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    return time.perf_counter() - start


def main() -> None:
    args = parser(__doc__, repeats=9).parse_args()
    script = shutil.which("rewardplug")
    cli = [script] if script else [sys.executable, "-m", "rewardplug"]
    work = Path(tempfile.mkdtemp(prefix="rewardplug-startup-"))
    (work / "stack.yaml").write_text(STACK, encoding="utf-8")
    (work / "empty.jsonl").write_text("", encoding="utf-8")
    empty_score = [*cli, "score", str(work / "stack.yaml"), str(work / "empty.jsonl")]
    empty_score += ["-o", str(work / "out.jsonl"), "--overwrite"]
    commands = {
        "python -c 'import rewardplug'": [sys.executable, "-c", "import rewardplug"],
        "rewardplug --help": [*cli, "--help"],
        "rewardplug validate --help": [*cli, "validate", "--help"],
        "rewardplug score (empty input)": empty_score,
        "floor: import click, yaml, BaseModel": [
            sys.executable,
            "-c",
            "import click, yaml; from pydantic import BaseModel",
        ],
        "python -c 'pass' (interpreter floor)": [sys.executable, "-c", "pass"],
    }
    for cmd in commands.values() if not args.smoke else ():
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
    print()
    for name in ("rewardplug --help", "rewardplug score (empty input)"):
        ratio = med[name] / base
        verdict = "holds" if ratio <= 3 else "does not hold"
        print(f"{name} / import rewardplug: {ratio:.2f}x (target <= 3x: {verdict})")


if __name__ == "__main__":
    main()
