"""Behaviour of the test_cases source on honest code: formats, bad input, draws, stacks."""

from __future__ import annotations

import pickle

import pytest
from codehelpers import call_tests, sample
from rewardplug_code.source import TestCasesSource, beta_draws

from rewardplug.types import Sample

ADD = call_tests(([1, 2], 3), ([2, 2], 4), ([-1, 1], 0), ([10, 5], 15))


def test_pass_rate_is_the_fraction_of_cases(source):
    partial = "def f(a, b):\n    if a < 0:\n        raise ValueError('negative')\n    return a + b"
    wrong_half = "def f(a, b):\n    return a + b if a < 2 else 0"
    scores = source.score([sample(partial, ADD), sample(wrong_half, ADD)])
    assert scores[0].value == 0.75
    assert scores[0].detail["failures"] == [{"case": 2, "reason": "ValueError: negative"}]
    assert scores[1].value == 0.5
    levels = ("bwrap", "rlimits+seccomp", "rlimits+seccomp+landlock")
    assert all(
        s.detail["isolation"]
        .removesuffix("+pids.max")
        .removesuffix("+rlimit-nproc")
        .removesuffix("+pidns")
        in levels
        for s in scores
    )


def test_cases_after_a_failure_still_run_in_a_fresh_child(source):
    # The first case poisons the module state and raises; later cases must not see the poison.
    code = "poisoned = []\ndef f(a, b):\n    if poisoned:\n        return -999\n"
    code += (
        "    if a == 1:\n        poisoned.append(1)\n        raise RuntimeError\n    return a + b"
    )
    score = source.score([sample(code, ADD)])[0]
    assert score.value == 0.75


def test_float_tolerance_and_kwargs(source):
    tests = {
        "kind": "call",
        "entry_point": "area",
        "atol": 1e-6,
        "cases": [
            {"args": [1.0], "expected": 3.14159265},
            {"args": [], "kwargs": {"r": 2.0}, "expected": 12.5663706},
        ],
    }
    code = "import math\ndef area(r):\n    return math.pi * r * r"
    assert source.score([sample(code, tests)])[0].value == 1.0
    tests["atol"] = 0.0
    assert source.score([sample(code, tests)])[0].value == 0.0


def test_tuples_and_dicts_compare_as_plain_data(source):
    tests = call_tests(([3], [1, 2]), ([0], {"a": [1, None]}))
    code = "def f(x):\n    return (1, 2) if x else {'a': (1, None)}"
    assert source.score([sample(code, tests)])[0].value == 1.0


def test_stdio_programs(source):
    tests = {
        "kind": "stdio",
        "cases": [
            {"stdin": "1 2\n", "stdout": "3\n"},
            {"stdin": "5 7\n", "stdout": "12"},
            {"stdin": "2 2\n", "stdout": "4\nextra line"},
        ],
    }
    code = "a, b = map(int, input().split())\nprint(a + b, '   ')\nimport sys\nsys.exit(0)"
    score = source.score([sample(code, tests)])[0]
    assert score.value == pytest.approx(2 / 3)
    crash = source.score([sample("raise SystemExit(3)", tests)])[0]
    assert crash.value == 0.0
    assert "status 3" in crash.detail["failures"][0]["reason"]


def test_stdio_output_flood_is_capped(source):
    tests = {"kind": "stdio", "cases": [{"stdin": "", "stdout": "x"}]}
    score = source.score([sample("while True:\n    print('A' * 100000)", tests)])[0]
    assert score.value == 0.0


def test_assert_format_converts_literal_asserts(source):
    tests = {
        "kind": "assert",
        "entry_point": "inc",
        "code": "METADATA = {}\n\ndef check(candidate):\n"
        "    assert candidate(1) == 2\n    assert 4 == candidate(3)\n"
        "    assert abs(candidate(0.5) - 1.5) < 1e-9\n    assert candidate(-1) == 0, 'msg'\n"
        "    assert not candidate(-1)\n    assert candidate(5)\n    assert True\n",
    }
    score = source.score([sample("def inc(x):\n    return x + 1", tests)])[0]
    assert score.value == 1.0
    assert score.detail["total"] == 6
    assert "hardened" not in score.detail


def test_assert_format_runs_the_rest_hardened(source):
    tests = {
        "kind": "assert",
        "entry_point": "inc",
        "code": "import random\n\ndef check(candidate):\n    assert candidate(1) == 2\n"
        "    rng = random.Random(0)\n    for _ in range(20):\n        x = rng.randint(-9, 9)\n"
        "        assert candidate(x) - x == 1\n",
    }
    good = source.score([sample("def inc(x):\n    return x + 1", tests)])[0]
    assert good.value == 1.0
    assert good.detail["total"] == 2 and good.detail["converted"] == 1
    assert "hardened" in good.detail
    bad = source.score([sample("def inc(x):\n    return x + 1 if x > 0 else x", tests)])[0]
    assert bad.value == 0.5


def test_hardened_check_keeps_tuples_apart_from_lists(source):
    tests = {
        "kind": "assert",
        "entry_point": "pair",
        "code": "def check(candidate):\n    for x in (1, 2):\n        assert candidate(x) == (x, 2 ** 70 * x)\n",
    }
    as_tuple, as_list = source.score(
        [
            sample("def pair(x):\n    return (x, 2 ** 70 * x)", tests),
            sample("def pair(x):\n    return [x, 2 ** 70 * x]", tests),
        ]
    )
    assert as_tuple.value == 1.0 and as_list.value == 0.0


def test_hardened_check_cannot_be_forged(source):
    tests = {
        "kind": "assert",
        "entry_point": "inc",
        "code": "def check(candidate):\n    for x in range(3):\n        assert candidate(x) == x + 1\n",
    }
    attacks = [
        # An always-equal object is reduced to plain data before the test code sees it.
        "class A:\n    def __eq__(self, o): return True\ndef inc(x):\n    return A()",
        # The candidate cannot reach the checker's frames: it is another process.
        "import sys\ndef inc(x):\n    f = sys._getframe(1)\n    f.f_globals['check'] = None\n"
        "    raise SystemExit(0)",
        "import os\ndef inc(x):\n    os._exit(0)",
        "import builtins\nbuiltins.AssertionError = type('Nope', (Exception,), {})\n"
        "def inc(x):\n    return None",
    ]
    for score in source.score([sample(code, tests) for code in attacks]):
        assert score.value == 0.0, score.detail


@pytest.mark.parametrize(
    ("response", "reason"),
    [
        ("", "no code"),
        ("   \n  ", "no code"),
        ("I cannot solve this.", "SyntaxError"),
        ("```python\ndef f(a, b) return\n```", "SyntaxError"),
        ("def f(a, b):\n    return a + b\udcff", "UTF-8"),
        ("def f(a, b):\x00 return 1", "NUL"),
        ("x = 1\n" * 400_000, "bytes"),
        ("def g(a, b):\n    return a + b", "entry point"),
    ],
)
def test_bad_responses_fail_with_a_reason(source, response, reason):
    score = source.score([Sample(prompt="p", response=response, tests=ADD)])[0]
    assert score.status == "ok" and score.value == 0.0
    assert reason in str(score.detail), score.detail


@pytest.mark.parametrize(
    ("tests", "reason"),
    [
        (None, "no `tests`"),
        ({"kind": "unit"}, "kind"),
        ({"kind": "call", "entry_point": "f"}, "cases"),
        ({"kind": "call", "entry_point": "not a name", "cases": []}, "entry_point"),
        ({"kind": "call", "entry_point": "f", "cases": [{"args": [1]}]}, "expected"),
        ({"kind": "call", "entry_point": "f", "cases": [], "atol": -1}, "atol"),
        ({"kind": "call", "entry_point": "f", "cases": []}, "zero cases"),
        ({"kind": "stdio", "cases": [{"stdin": 1, "stdout": "x"}]}, "strings"),
        ({"kind": "assert", "entry_point": "f", "code": "def check(c):\n  pass"}, "zero cases"),
        ({"kind": "assert", "entry_point": "f", "code": "def check(:"}, "does not parse"),
        ({"kind": "assert", "entry_point": "f", "code": "x = 1"}, "check(candidate)"),
    ],
)
def test_bad_tests_abstain_with_a_reason(source, tests, reason):
    batch = [
        Sample(prompt="p", response="def f(a, b):\n    return a + b", tests=t) for t in (tests, ADD)
    ]
    bad, good = source.score(batch)
    assert bad.status == "abstain" and bad.value is None
    assert reason in bad.reason, bad.reason
    assert good.value == 1.0  # the batch completes


@pytest.mark.parametrize("kind", ["quantiles", "random"])
def test_draws_follow_the_beta_posterior(kind):
    import numpy as np

    def draws(passed, failed, key):
        return np.array(beta_draws(passed, failed, 400, 0, key, kind))

    assert abs(draws(9, 1, "x").mean() - 9.5 / 11) < 0.01

    def p_better(a, b):  # over all draw pairs, as the discretizer's exact mode counts
        return (a[:, None] > b[None, :]).mean()

    p_nine, p_ten, p_two = draws(9, 1, "a"), draws(10, 0, "b"), draws(2, 8, "c")
    assert p_better(p_ten, p_nine) < 0.9  # 9/10 vs 10/10: not confidently different
    assert p_better(p_ten, p_two) > 0.99  # 2/10 vs 10/10: confidently different


def test_quantile_draws_are_the_same_for_every_id_and_seed():
    assert beta_draws(3, 1, 8, 0, "a") == beta_draws(3, 1, 8, 7, "b")
    assert beta_draws(3, 1, 8, 0, "a", "random") != beta_draws(3, 1, 8, 0, "b", "random")


def test_draws_do_not_depend_on_the_batch(source):
    target = sample("def f(a, b):\n    return a + b if a > 0 else 0", ADD, id="target")
    other = sample("def f(a, b):\n    return 0", ADD, id="other")
    alone = source.score([target])[0]
    mixed = source.score([other, target, other])[1]
    assert alone.draws == mixed.draws
    assert len(alone.draws) == 32
    again = TestCasesSource(seed=1, workers=1, posterior="random")
    try:
        assert again.score([target])[0].draws != alone.draws
    finally:
        again.close()


def test_source_pickles_without_its_pool(source):
    source.score([sample("def f(a, b):\n    return a + b", ADD)])
    clone = pickle.loads(pickle.dumps(source))
    assert clone._pool is None
    try:
        assert clone.score([sample("def f(a, b):\n    return a + b", ADD)])[0].value == 1.0
    finally:
        clone.close()


def test_config_rejects_unknown_keys():
    with pytest.raises(ValueError, match="timeout"):
        TestCasesSource(timeout=3)


def test_registered_and_usable_from_a_stack(fresh_plugins):
    import rewardplug

    assert fresh_plugins.sources().get("test_cases") is TestCasesSource
    stack = rewardplug.load_stack(
        {
            "sources": [
                {"name": "tests", "use": "test_cases", "with": {"timeout_s": 2, "workers": 1}}
            ]
        }
    )
    try:
        rewards = stack.score(
            [
                {"prompt": "add", "response": "def f(a, b):\n    return a + b", "tests": ADD},
                {"prompt": "add", "response": "def f(a, b):\n    return a * b", "tests": ADD},
            ]
        )
    finally:
        for src in stack.sources.values():
            src.close()
    assert rewards[0].raw == 1.0 and rewards[1].raw == 0.25
    assert rewards[0].tier == 0 and rewards[1].tier == 1


def test_plugin_module_imports_nothing_heavy():
    import subprocess
    import sys

    code = (
        "import sys, rewardplug_code.plugin\n"
        "bad = [m for m in ('torch', 'transformers', 'openai', 'litellm', 'numpy') if m in sys.modules]\n"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_example_stack_loads():
    import rewardplug
    from rewardplug.paths import examples_dir

    stack = rewardplug.load_stack(examples_dir() / "stacks" / "code.yaml")
    src = stack.sources["tests"]
    assert isinstance(src, TestCasesSource) and src.config.prepend_prompt


def test_broken_sandbox_machinery_abstains(monkeypatch):
    from rewardplug_code import sandbox

    # A worker that dies at start-up: the machinery, not the candidate, has failed.
    monkeypatch.setattr(sandbox, "worker_source", lambda: "raise SystemExit(3)")
    src = TestCasesSource(workers=1)
    try:
        good, bad_tests = src.score(
            [sample("def f(a, b):\n    return a + b", ADD), Sample(response="x", tests=None)]
        )
    finally:
        src.close()
    assert good.status == "abstain" and "sandbox machinery failed" in good.reason
    assert bad_tests.status == "abstain"


def test_missing_bubblewrap_falls_back_with_one_accurate_warning(monkeypatch, caplog):
    from rewardplug_code import sandbox, source

    monkeypatch.setattr(sandbox, "BWRAP", "bwrap-not-installed-here")
    monkeypatch.setattr(sandbox, "_probed", {})
    monkeypatch.setattr(source, "_warned", set())
    level = sandbox.isolation_level("auto")
    assert level.startswith("rlimits+seccomp")
    with pytest.raises(RuntimeError, match="bubblewrap was requested"):
        sandbox.isolation_level("bwrap")
    with caplog.at_level("WARNING"):
        for _ in range(3):  # three sources, one process: one warning
            src = TestCasesSource(workers=1)
            try:
                [score] = src.score([sample("def f(a, b):\n    return a + b", ADD)])
            finally:
                src.close()
            assert score.ok and score.detail["isolation"].startswith(level)
    warnings = [r.getMessage() for r in caplog.records if "bubblewrap" in r.getMessage()]
    assert len(warnings) == 1, warnings
    text = warnings[0]
    assert "bwrap is not installed" in text and repr(level) in text
    assert "seccomp allow-list" in text
    assert ("Landlock" in text) == (level == sandbox.LEVEL_LANDLOCK)
    assert "without file-system" not in text  # the old, wrong claim


def test_a_level_without_seccomp_is_refused_not_run(monkeypatch):
    """rlimits alone would leave the network and signals open: no code runs, every sample
    abstains with the reason (and the stack's failure report names it)."""
    from rewardplug_code import sandbox

    monkeypatch.setattr(sandbox, "isolation_level", lambda requested="auto": sandbox.LEVEL_RLIMITS)
    src = TestCasesSource(workers=1)
    [score] = src.score([sample("def f(a, b):\n    return a + b", ADD)])
    assert score.status == "abstain"
    assert "no safe isolation level" in score.reason and "libseccomp" in score.reason


def test_one_case_right_vs_wrong_is_decided_the_same_for_every_sample_id(source):
    """1/1 against 0/1: P(better) is about 0.905, just above confidence 0.9. With random draws
    the verdict depended on the ids' seeds (a right and a wrong answer tied in some groups);
    the posterior's quantiles give every group the same tiers."""
    import rewardplug

    one = call_tests(([1, 2], 3))
    stack = rewardplug.load_stack(
        {
            "sources": [{"name": "tests", "use": "test_cases", "with": {"workers": 2}}],
            "discretize": {"confidence": 0.9},
        }
    )
    batch = []
    for g in range(40):
        batch.append(sample("def f(a, b):\n    return a + b", one, id=f"right-{g}", group=str(g)))
        batch.append(sample("def f(a, b):\n    return a - b", one, id=f"wrong-{g}", group=str(g)))
    rewards = stack.score(batch)
    stack.close()
    tiers = {(r.tier, r.n_tiers) for r in rewards if r.id.startswith("right")}
    assert len(tiers) == 1, tiers
    assert {(r.tier, r.n_tiers) for r in rewards if r.id.startswith("wrong")} != tiers
