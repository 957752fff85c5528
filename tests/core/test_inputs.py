"""No reward from a silent gap (issue 27): a missing or misspelt input is loud and never pays.

The exploit, as a new user met it: MBPP-style code rewards with ``test_cases`` + a rubric that
likes any function. A row without ``tests``, with ``kind: asserts`` or with ``entrypoint``
instead of ``entry_point`` made ``test_cases`` abstain, the rubric's weight was rescaled to the
whole stack, and a *wrong* answer got the top reward (1.5, tier 0, ``status: ok``) while the CLI
printed only ``wrote N rows``.
"""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

import rewardplug
from rewardplug.cli import cli
from rewardplug.inputs import Input, problem

STACK = """\
sources:
  - name: tests
    use: test_cases
    with: {workers: 1}
  - name: format
    use: rubric
    weight: 0.5
    with:
      rubric:
        criteria:
          - {id: defines, text: Defines a function, weight: 1, check: {kind: regex, pattern: 'def '}}
"""
TESTS = {
    "kind": "call",
    "entry_point": "add",
    "cases": [{"args": [1, 2], "expected": 3}, {"args": [2, 2], "expected": 4}],
}
WRONG = "def add(a, b):\n    return a - b\n"
RIGHT = "def add(a, b):\n    return a + b\n"


def rows(tests_of_the_wrong_one):
    wrong = {"id": "wrong", "group": "g", "prompt": "Write add.", "response": WRONG}
    if tests_of_the_wrong_one is not None:
        wrong["tests"] = tests_of_the_wrong_one
    right = {"id": "right", "group": "g", "prompt": "Write add.", "response": RIGHT}
    return [{**right, "tests": TESTS}, wrong]


def run(tmp_path, data, *args):
    (tmp_path / "stack.yaml").write_text(STACK)
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in data))
    out = tmp_path / "out.jsonl"
    result = CliRunner().invoke(
        cli,
        ["score", str(tmp_path / "stack.yaml"), str(tmp_path / "in.jsonl"), "-o", str(out), *args],
    )
    scored = [json.loads(x) for x in out.read_text().splitlines()] if out.exists() else []
    return result, {r["id"]: r for r in scored}


def test_a_row_without_tests_is_reported_and_never_gets_a_reward(tmp_path):
    result, scored = run(tmp_path, rows(None))
    assert result.exit_code == 0, result.output
    assert "1 of 2 samples have no `tests`, which source 'tests' needs" in result.output
    assert scored["wrong"]["reward"] is None and scored["wrong"]["status"] == "abstain"
    assert scored["right"]["reward"] == pytest.approx(1.5) and scored["right"]["tier"] == 0
    strict, _ = run(tmp_path, rows(None), "--overwrite", "--strict")
    assert strict.exit_code == 1 and "--strict" in strict.output


@pytest.mark.parametrize(
    ("tests", "says"),
    [
        (
            {**{k: v for k, v in TESTS.items() if k != "entry_point"}, "entrypoint": "add"},
            "`tests.entrypoint` is not a key it knows; did you mean `tests.entry_point`?",
        ),
        ({**TESTS, "kind": "asserts"}, "`tests.kind` must be 'call', 'stdio' or 'assert'"),
    ],
)
def test_a_misspelt_tests_field_is_a_load_error_naming_the_line(tmp_path, tests, says):
    result, scored = run(tmp_path, rows(tests))
    assert result.exit_code != 0 and scored == {}
    assert f"in.jsonl:2: source 'tests': {says}" in result.output
    assert "--skip-bad" in result.output
    skipped, scored = run(tmp_path, rows(tests), "--skip-bad", "--overwrite")
    assert skipped.exit_code == 0 and "skipped 1 bad lines" in skipped.output
    assert set(scored) == {"right"}


def test_python_api_counts_missing_inputs_per_source():
    stack = rewardplug.load_stack(
        {"sources": [{"name": "tests", "use": "test_cases", "with": {"workers": 1}}]}
    )
    with stack:
        samples = [rewardplug.Sample.model_validate(r) for r in rows(None)]
        report = stack.check_inputs(samples)
        assert dict(report.missing) == {("tests", "tests"): 1} and report.malformed == {}
        out = stack.score(samples)
    assert out[1].reward is None
    assert stack.missing_inputs[("tests", "tests")] == 1  # what serve and the trainers report


def test_an_input_check_names_unknown_keys_and_the_checks_own_error():
    spec = Input("tests", keys=frozenset({"kind", "cases"}), check=lambda v: None)
    sample = rewardplug.Sample(response="x", tests={"kind": "call", "casez": []})
    assert "did you mean `tests.cases`?" in problem(sample, spec)

    def reject(value):
        raise ValueError("no good")

    assert problem(
        rewardplug.Sample(response="x", reference="r"), Input("reference", check=reject)
    ) == ("no good")
    assert problem(rewardplug.Sample(response="x"), Input("reference", check=reject)) is None


def test_trl_logs_the_samples_that_lack_a_field_per_call():
    stack = rewardplug.load_stack(
        {"sources": [{"name": "tests", "use": "test_cases", "with": {"workers": 1}}]}
    )
    logged: dict[str, float] = {}
    with stack:
        reward = stack.as_trl_reward("rp", num_generations=2)
        out = reward(
            prompts=["Write add."] * 2,
            completions=[RIGHT, WRONG],
            tests=[json.dumps(TESTS), None],
            log_metric=logged.__setitem__,
        )
    assert out[0] == pytest.approx(1.0) and out[1] is None
    assert logged["rewards/rp/tests/missing_tests"] == 1.0


def test_a_rubric_source_without_its_own_rubric_needs_the_samples_and_checks_them():
    own = {
        "criteria": [
            {
                "id": "d",
                "text": "Defines",
                "weight": 1,
                "check": {"kind": "regex", "pattern": "def "},
            }
        ]
    }
    needs = rewardplug.load_stack({"sources": [{"name": "r", "use": "rubric", "with": {}}]})
    has = rewardplug.load_stack(
        {"sources": [{"name": "r", "use": "rubric", "with": {"rubric": own}}]}
    )
    samples = [
        rewardplug.Sample(id="a", response=RIGHT),
        rewardplug.Sample(id="b", response=RIGHT, rubric={"criteria": "not a list"}),
    ]
    report = needs.check_inputs(samples)
    assert dict(report.missing) == {("r", "rubric"): 1} and list(report.malformed) == [1]
    assert "source 'r'" in report.malformed[1]
    report = has.check_inputs(samples)
    assert dict(report.missing) == {} and list(report.malformed) == [1]


def test_serve_health_counts_missing_inputs():
    from fastapi.testclient import TestClient

    from rewardplug.server import create_app

    stack = rewardplug.load_stack({"sources": [{"name": "r", "use": "rubric", "with": {}}]})
    app = create_app(stack)
    with TestClient(app.fastapi) as client:
        body = {"query": ["Write add." + RIGHT], "prompts": ["Write add."]}
        assert client.post("/get_reward", json=body).status_code == 200
        assert client.get("/health").json()["missing_inputs"] == {"r.rubric": 1}
