"""Real data: HumanEval+ canonical solutions, and agreement with HumanEval's own ``check``.

Reads ``../shared/data/humaneval`` (skipped when absent). Sized to stay fast on 2 cores: the first
50 HumanEval+ inputs of every problem, and a fixed sample of CodeT completions.
"""

from __future__ import annotations

import gzip
import json
import random
import subprocess
import sys

import pytest
from rewardplug_code import humaneval as H
from rewardplug_code.source import TestCasesSource

from rewardplug.types import Sample

PLUS_LIMIT = 50


@pytest.fixture(scope="module")
def he_folder(shared_data):
    return shared_data / "humaneval"


@pytest.fixture(scope="module")
def problems(he_folder):
    return H.load_plus(he_folder)


@pytest.fixture(scope="module")
def humaneval_source():
    src = TestCasesSource(timeout_s=5, total_timeout_s=60, prepend_prompt=True, workers=2)
    yield src
    src.close()


def test_every_canonical_solution_scores_one_on_humaneval_plus(
    problems, humaneval_source, tmp_path
):
    expected = H.expected_outputs(problems, "plus_input", limit=PLUS_LIMIT, cache=tmp_path)
    samples = []
    for p in problems:
        outs = expected[p["task_id"]]
        assert all("value" in o for o in outs), p["task_id"]  # canonical runs cleanly
        inputs = p["plus_input"][:PLUS_LIMIT]
        samples.append(
            H.to_sample(p, p["prompt"], p["canonical_solution"], inputs, [o["value"] for o in outs])
        )
    scores = humaneval_source.score(samples)
    below = {
        p["task_id"]: s.detail for p, s in zip(problems, scores, strict=True) if s.value != 1.0
    }
    assert not below
    assert sum(s.detail["total"] for s in scores) == sum(
        len(p["plus_input"][:PLUS_LIMIT]) for p in problems
    )


def _check_passes(program: str, timeout: float = 10.0) -> bool:
    """HumanEval's own verdict: run prompt + completion + test + check() in a plain subprocess."""
    try:
        proc = subprocess.run(
            [sys.executable, "-I", "-c", program], capture_output=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        return False
    return proc.returncode == 0


def test_codet_verdicts_agree_with_humaneval_check(he_folder):
    with gzip.open(he_folder / "HumanEval.jsonl.gz", "rt") as fh:
        original = {row["task_id"]: row for row in map(json.loads, fh)}
    codet = H.codet_samples(he_folder, per_problem=100)
    rng = random.Random(7)
    tasks = rng.sample(sorted(original), 16)
    samples, verdicts = [], []
    for task in tasks:
        prob, entry = original[task], codet[task]
        for completion in rng.sample(entry["samples"], 4):
            tests = {"kind": "assert", "entry_point": prob["entry_point"], "code": prob["test"]}
            samples.append(
                Sample(prompt=entry["prompt"], response=completion, tests=tests, group=task)
            )
            program = (
                entry["prompt"]
                + H.truncate(completion)
                + "\n\n"
                + prob["test"]
                + f"\n\ncheck({prob['entry_point']})\n"
            )
            verdicts.append(_check_passes(program))
    src = TestCasesSource(
        timeout_s=5, total_timeout_s=30, prepend_prompt=True, stop=H.CODET_STOP, workers=2
    )
    try:
        scores = src.score(samples)
    finally:
        src.close()
    ours = [s.value == 1.0 for s in scores]
    assert all(s.status == "ok" for s in scores)
    agree = sum(a == b for a, b in zip(ours, verdicts, strict=True))
    assert 0 < sum(verdicts) < len(verdicts)  # the sample holds both passing and failing code
    assert agree / len(ours) >= 0.95, [
        (s.group, a, b) for s, a, b in zip(samples, ours, verdicts, strict=True) if a != b
    ]
    # Our verdict never passes code that HumanEval's check fails.
    assert not any(a and not b for a, b in zip(ours, verdicts, strict=True))


def _humaneval_rows(he_folder):
    with gzip.open(he_folder / "HumanEval.jsonl.gz", "rt") as fh:
        return list(map(json.loads, fh))


@pytest.mark.slow
def test_all_164_canonical_solutions_pass_their_own_assert_tests(he_folder, humaneval_source):
    """HumanEval's own ``test`` as ``kind: assert``: every canonical solution scores 1.0, and an
    answer that returns a constant never passes."""
    rows = _humaneval_rows(he_folder)
    assert len(rows) == 164

    def batch(body_of):
        return [
            Sample(
                prompt=r["prompt"],
                response=body_of(r),
                group=r["task_id"],
                tests={"kind": "assert", "entry_point": r["entry_point"], "code": r["test"]},
            )
            for r in rows
        ]

    canonical = humaneval_source.score(batch(lambda r: r["canonical_solution"]))
    below = {r["task_id"]: s.detail for r, s in zip(rows, canonical, strict=True) if s.value != 1.0}
    assert not below
    wrong = humaneval_source.score(batch(lambda r: "    return object()\n"))
    assert all(s.status == "ok" for s in wrong)
    assert [r["task_id"] for r, s in zip(rows, wrong, strict=True) if s.value != 0.0] == []
    text = humaneval_source.score(batch(lambda r: "    return 'wrong'\n"))
    assert [r["task_id"] for r, s in zip(rows, text, strict=True) if s.value == 1.0] == []


@pytest.mark.slow
def test_humaneval_format_scores_right_with_the_defaults(he_folder):
    """Issue 25: HumanEval's own format and no options at all -- the response is the whole
    function (prompt + canonical solution), ``prepend_prompt`` stays off. The helpers some tests
    call (HumanEval/32's ``poly``, /38's ``encode_cyclic``, /50's ``encode_shift``) are defined
    by the prompt, which is trusted: the checker has them (these three scored 0 before)."""
    rows = _humaneval_rows(he_folder)
    src = TestCasesSource()
    try:
        scores = src.score(
            [
                Sample(
                    prompt=r["prompt"],
                    response=r["prompt"] + r["canonical_solution"],
                    group=r["task_id"],
                    tests={"kind": "assert", "entry_point": r["entry_point"], "code": r["test"]},
                )
                for r in rows
            ]
        )
    finally:
        src.close()
    below = {
        r["task_id"]: (s.status, s.reason, s.detail)
        for r, s in zip(rows, scores, strict=True)
        if s.value != 1.0
    }
    assert not below
