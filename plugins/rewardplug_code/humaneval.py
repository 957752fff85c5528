"""HumanEval / HumanEval+ / CodeT data as ``test_cases`` samples (for evaluation and benchmarks).

Reads the public files (``HumanEvalPlus.jsonl.gz``, ``codet_codegen16B_samples.jsonl``,
``codet_HumanEval_for_code_generation.jsonl``) from a folder given by the caller; nothing is
bundled. Expected outputs for HumanEval+ inputs come from running each *canonical* solution
(trusted code from the dataset) in a plain subprocess: :func:`expected_outputs`.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rewardplug import Sample
from rewardplug_code import protocol

__all__ = [
    "CODET_STOP",
    "codet_samples",
    "expected_outputs",
    "load_plus",
    "to_sample",
    "truncate",
]

#: CodeGen completions run on past the function; cut them at these (per the data's README)
CODET_STOP = ["\nclass", "\ndef", "\n#", "\nif", "\nprint"]

# Runs trusted canonical solutions: one problem per line on stdin, one JSON line of outputs out.
_TRUSTED_RUNNER = r"""
import copy, json, sys
def plain(v):
    if isinstance(v, int) and not isinstance(v, bool) and abs(v) >= 10**4000:
        return {"__bigint__": hex(v)}
    if isinstance(v, bool) or v is None or isinstance(v, (int, float, str)):
        return v
    if isinstance(v, (list, tuple)):
        return [plain(x) for x in v]
    if isinstance(v, dict):
        return {str(k): plain(x) for k, x in v.items()}
    raise TypeError(type(v).__name__)
sys.setrecursionlimit(100000)
for line in sys.stdin:
    job = json.loads(line)
    ns = {}
    exec(job["code"], ns)
    fn = ns[job["entry_point"]]
    out = []
    for args in job["inputs"]:
        try:
            out.append({"value": plain(fn(*copy.deepcopy(args)))})
        except Exception as exc:
            out.append({"error": repr(exc)[:200]})
    print(json.dumps(out), flush=True)
"""


def truncate(completion: str, stop: list[str] = CODET_STOP) -> str:
    """``completion`` cut at the first stop string (what ``stop:`` does in the source)."""
    cut = min((i for s in stop if (i := completion.find(s)) >= 0), default=len(completion))
    return completion[:cut]


def load_plus(folder: str | Path) -> list[dict[str, Any]]:
    """The 164 HumanEval+ problems (``base_input``/``plus_input`` as lists, ``atol`` float)."""
    rows = []
    with gzip.open(Path(folder) / "HumanEvalPlus.jsonl.gz", "rt") as fh:
        for line in fh:
            row = json.loads(line)
            for key in ("base_input", "plus_input"):
                if isinstance(row[key], str):
                    row[key] = json.loads(row[key])
            row["atol"] = float(row.get("atol") or 0.0)
            rows.append(row)
    return rows


def codet_samples(folder: str | Path, per_problem: int = 100) -> dict[str, dict[str, Any]]:
    """``task_id -> {"prompt", "samples"}``: the CodeGen-16B completions, first ``per_problem``."""
    folder = Path(folder)
    task_of = {}
    for line in (folder / "codet_HumanEval_for_code_generation.jsonl").open():
        row = json.loads(line)
        task_of[row["prompt"]] = row["task_id"]
    out = {}
    for line in (folder / "codet_codegen16B_samples.jsonl").open():
        row = json.loads(line)
        out[task_of[row["prompt"]]] = {
            "prompt": row["prompt"],
            "samples": row["samples"][:per_problem],
        }
    return out


def to_sample(
    problem: dict[str, Any],
    prompt: str,
    completion: str,
    inputs: list[Any],
    expected: list[Any],
    sample_id: str | None = None,
) -> Sample:
    """A ``test_cases`` sample (``call`` format) for one completion of ``problem``.

    ``atol`` is the problem's own, and at least 1e-6 so float results compare as EvalPlus does.
    """
    cases = [{"args": a, "expected": e} for a, e in zip(inputs, expected, strict=True)]
    tests = {
        "kind": "call",
        "entry_point": problem["entry_point"],
        "atol": max(problem["atol"], 1e-6),
        "cases": cases,
    }
    return Sample(
        id=sample_id or "",
        group=problem["task_id"],
        prompt=prompt,
        response=completion,
        tests=tests,
    )


def expected_outputs(
    problems: list[dict[str, Any]],
    which: str = "plus_input",
    limit: int | None = None,
    cache: Path | None = None,
    timeout_s: float = 600,
) -> dict[str, list[Any]]:
    """``task_id -> [{"value": v} | {"error": e}, ...]`` from the canonical solutions.

    Trusted code only (the dataset's canonical solutions), run in a plain subprocess so a slow
    solution cannot hang the caller. ``limit`` keeps the first N inputs per problem. Results are
    cached in ``cache`` (a folder) keyed by the content they depend on.
    """
    jobs = [
        {
            "task_id": p["task_id"],
            "code": p["prompt"] + p["canonical_solution"],
            "entry_point": p["entry_point"],
            "inputs": p[which][:limit] if limit is not None else p[which],
        }
        for p in problems
    ]
    text = "\n".join(json.dumps({k: v for k, v in j.items() if k != "task_id"}) for j in jobs)
    key = hashlib.blake2b(text.encode(), digest_size=12).hexdigest()
    path = cache / f"humaneval-expected-{key}.json" if cache else None
    if path is not None and path.exists():
        cached: dict[str, list[Any]] = protocol.loads(path.read_text())
        return cached
    proc = subprocess.run(
        [sys.executable, "-I", "-c", _TRUSTED_RUNNER],
        input=text + "\n",
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=True,
    )
    lines = proc.stdout.splitlines()
    result = {j["task_id"]: protocol.loads(line) for j, line in zip(jobs, lines, strict=True)}
    if path is not None:
        # Written from the runner's own lines: big ints stay in their hex form.
        body = ",".join(f"{json.dumps(k)}: {line}" for k, line in zip(result, lines, strict=True))
        path.write_text("{" + body + "}")
    return result


def iter_codet(
    problems: list[dict[str, Any]],
    samples: dict[str, dict[str, Any]],
    expected: dict[str, list[Any]],
    which: str = "base_input",
    per_problem: int = 20,
) -> Iterator[Sample]:
    """CodeT completions as samples, tested on ``which`` inputs with canonical outputs."""
    for p in problems:
        outs = expected[p["task_id"]]
        keep = [i for i, o in enumerate(outs) if "value" in o]
        inputs = [p[which][i] for i in keep]
        values = [outs[i]["value"] for i in keep]
        entry = samples[p["task_id"]]
        for j, completion in enumerate(entry["samples"][:per_problem]):
            yield to_sample(p, entry["prompt"], completion, inputs, values, f"{p['task_id']}#{j}")
