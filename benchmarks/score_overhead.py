"""Framework overhead of ``rewardplug score`` per row, against a minimal loop over the same file.

Workload: N rows (default 100,000) in groups of 8, a trivial TRL-style ``python`` source
(``length_reward``: the completion's length, scaled), discretization on. The baseline is the
minimal loop a user would write: read a line, ``json.loads``, call the same function on it,
``json.dumps`` the row with its reward, write. Both run in this process, alternating, ``--repeats``
times; medians. ``rewardplug score`` is also timed as the real command (a subprocess, start-up
included) once per repeat.

    python benchmarks/score_overhead.py --rows 100000 --repeats 3
    python benchmarks/score_overhead.py --smoke     # 2,000 rows: seconds
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def length_reward(prompts: list, completions: list, **columns: object) -> list[float]:
    """The trivial reward: 1 / (1 + len / 100) of each completion."""
    return [1.0 / (1.0 + len(c) / 100.0) for c in completions]


STACK = """\
sources:
  - name: length
    use: python
    with: {function: "benchmarks.score_overhead:length_reward"}
discretize: {enabled: true, confidence: 0.9}
"""


def write_input(path: Path, n: int) -> None:
    with path.open("w") as f:
        for i in range(n):
            row = {
                "id": f"s{i}",
                "group": f"g{i // 8}",
                "prompt": f"question {i // 8}",
                "response": "answer " * (1 + i % 13),
            }
            f.write(json.dumps(row) + "\n")


def minimal_loop(inp: Path, out: Path) -> None:
    with inp.open() as src, out.open("w") as dst:
        for line in src:
            row = json.loads(line)
            row["reward"] = length_reward([row["prompt"]], [row["response"]])[0]
            dst.write(json.dumps(row) + "\n")


def main() -> None:
    # imported here: the stack imports this module as benchmarks.score_overhead (for its reward
    # function), where this folder is not on sys.path
    from _bench import parser, size

    ap = parser(__doc__)
    ap.add_argument("--rows", type=int, default=None, help="default 100,000 (--smoke: 2,000)")
    ap.add_argument("--profile", action="store_true", help="print a cProfile of one run")
    args = ap.parse_args()
    args.rows = args.rows or size(args, 100_000, 2000)

    from rewardplug.runner import score_file
    from rewardplug.stack import load_stack

    tmp = Path(tempfile.mkdtemp(prefix="rp-overhead-"))
    inp, stack_file = tmp / "in.jsonl", tmp / "stack.yaml"
    write_input(inp, args.rows)
    stack_file.write_text(STACK)
    stack = load_stack(stack_file)
    if args.profile:
        import cProfile
        import pstats

        cProfile.runctx(
            "score_file(stack, inp, tmp / 'p.jsonl')", globals(), locals(), str(tmp / "prof")
        )
        pstats.Stats(str(tmp / "prof")).sort_stats("tottime").print_stats(25)
        return

    times: dict[str, list[float]] = {
        "minimal loop": [],
        "score_file (API)": [],
        "rewardplug score": [],
    }
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        minimal_loop(inp, tmp / "base.jsonl")
        times["minimal loop"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        score_file(stack, inp, tmp / "api.jsonl")
        times["score_file (API)"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "rewardplug", "score", str(stack_file), str(inp), "-o",
             str(tmp / "cli.jsonl"), "--overwrite"],
            check=True, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        times["rewardplug score"].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    base = med["minimal loop"]
    print(f"{args.rows} rows, groups of 8, {args.repeats} repeats (medians)")
    for name, value in med.items():
        print(
            f"  {name:20s} {value:7.2f} s  {value / args.rows * 1e6:7.1f} us/row  "
            f"{value / base:6.1f}x the minimal loop"
        )
    ratio = med["rewardplug score"] / base
    print(
        f"rewardplug score / minimal loop: {ratio:.1f}x (target <= 5x: "
        f"{'holds' if ratio <= 5 else 'does not hold'})"
    )


if __name__ == "__main__":
    main()
