"""Every benchmark script and ``python -m`` evaluator runs at its ``--smoke`` size (issue 29).

The published figures come from these scripts, so a script that no longer runs -- an import
moved, an option renamed -- must fail CI, not the next person who re-measures. Each runs in a
subprocess, as a user runs it, and must exit 0 and print its result (the line its report ends
with). Their figures at smoke size mean nothing and are not checked.

Not here: the RL experiments (``rl_*.py``, ``tiny_lm_*.py``: tested by their own modules;
``rl_trl_gpu.py --smoke`` trains TRL's GRPO for two steps, a minute or two on its own), and the
CLI (``python -m rewardplug``: tested throughout).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "benchmarks"
DATA = ROOT.parent / "shared" / "data"
GSM8K = DATA / "gsm8k" / "example_model_solutions.jsonl"
OWNED_ELSEWHERE = ("rl_", "tiny_lm")

#: (id, command after ``python``, what the output must contain, what it needs)
CASES: list[tuple[str, list[str], str, str]] = [
    ("assembler_bench", ["benchmarks/assembler_bench.py"], "assembler / batch time", ""),
    ("cleanup_bench", ["benchmarks/cleanup_bench.py"], "| variant | ms per job |", "bwrap"),
    ("cli_startup", ["benchmarks/cli_startup.py"], "import rewardplug:", ""),
    ("code_bench", ["benchmarks/code_bench.py"], "verdict agreement", "data"),
    ("discretize_bench", ["benchmarks/discretize_bench.py"], "rule equivalent", ""),
    ("discretize_scale", ["benchmarks/discretize_scale.py"], "3. large groups", ""),
    ("discretize_scale_fresh", ["benchmarks/discretize_scale.py", "--fresh"], "first call", ""),
    ("gpu_check_cpu", ["benchmarks/gpu_check.py"], "llm_judge transformers backend", ""),
    ("judge_bench_speed", ["benchmarks/judge_bench.py", "speed"], "mode=logprobs", ""),
    ("judge_contrast_hacks", ["benchmarks/judge_contrast.py", "hacks"], "isolated", ""),
    ("judge_contrast_pairwise", ["benchmarks/judge_contrast.py", "pairwise"], "Bradley", "data"),
    ("judge_contrast_refine", ["benchmarks/judge_contrast.py", "refine"], "final criteria", "data"),
    ("judge_contrast_injection", ["benchmarks/judge_contrast.py", "injection"], "control", "data"),
    ("mc_dropout_bench", ["benchmarks/mc_dropout_bench.py"], "mc_layers=1 / deterministic", ""),
    ("neural_vs_transformers", ["benchmarks/neural_vs_transformers.py"], "2-source stack", ""),
    ("score_overhead", ["benchmarks/score_overhead.py"], "rewardplug score / minimal loop", ""),
    ("serve_bench", ["benchmarks/serve_bench.py"], "ratios (medians of 3)", ""),
    ("serve_bench_in_flight", ["benchmarks/serve_bench.py", "--in-flight", "64"], "medians", ""),
    ("shaping_eval", ["benchmarks/shaping_eval.py"], "seconds: base", "data"),
    ("synthetic_oversensitivity", ["benchmarks/synthetic_oversensitivity.py"], "gaussian", ""),
    ("tune_holdout", ["benchmarks/tune_holdout.py"], "held", "data"),
    ("transforms_synthetic", ["benchmarks/transforms_synthetic.py"], "overlong", ""),
    ("code_evaluate", ["-m", "rewardplug_code.evaluate"], "discretized", "data"),
    ("rubric_evaluate", ["-m", "rewardplug_rubric.evaluate", str(GSM8K)], "samples/s", "data"),
    ("rubric_hack_eval", ["-m", "rewardplug_rubric.hack_eval"], "flagged", "data"),
    ("neural_gsm8k_eval", ["-m", "rewardplug_neural.gsm8k_eval"], "scoring time", "data"),
]


def _missing(need: str) -> str | None:
    """Why this machine cannot run a case, or None."""
    if need == "data" and not DATA.is_dir():
        return f"the shared data sets are not at {DATA}"
    if need == "bwrap":
        from rewardplug_code import sandbox

        if sandbox.isolation_level("auto") != sandbox.LEVEL_BWRAP:
            return f"bubblewrap does not work here: {sandbox.bwrap_unavailable_reason()}"
    return None


@pytest.mark.parametrize(("command", "expect", "need"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])  # fmt: skip
def test_runs_at_smoke_size(command: list[str], expect: str, need: str, tmp_path: Path) -> None:
    reason = _missing(need)
    if reason:
        pytest.skip(reason)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "PYTHONWARNINGS": "ignore",
    }
    proc = subprocess.run(
        [sys.executable, *command, "--smoke"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, (
        f"exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    )
    assert expect in proc.stdout, proc.stdout[-3000:]


def test_every_script_and_evaluator_is_covered() -> None:
    """A new benchmark or ``python -m`` evaluator joins the list above (or the named few)."""
    covered = {Path(c[1][0]).stem for c in CASES if c[1][0] != "-m"}
    covered |= {c[1][1].rsplit(".", 1)[-1] + "@" + c[1][1].split(".")[0] for c in CASES if c[1][0] == "-m"}  # fmt: skip
    scripts = {
        p.stem
        for p in BENCH.glob("*.py")
        if 'if __name__ == "__main__"' in p.read_text(encoding="utf-8")
        and not p.stem.startswith(OWNED_ELSEWHERE)
    }
    assert scripts - covered == set()
    evaluators = {
        f"{p.stem}@{p.parent.name}"
        for p in (ROOT / "plugins").glob("rewardplug_*/*.py")
        if 'if __name__ == "__main__"' in p.read_text(encoding="utf-8") and p.stem != "zygote"
    }
    assert evaluators - covered == set()
