"""The rubric source on programmatic rubrics: exact, hand-computed scores and their semantics."""

from __future__ import annotations

import pickle
import subprocess
import sys

import pytest
from rewardplug_rubric.source import RubricSource

from rewardplug import plugins
from rewardplug.types import Sample

CRITERIA = [
    {"id": "paris", "text": "Names Paris", "weight": 2, "category": "essential",
     "check": {"kind": "contains", "value": "Paris"}},
    {"id": "short", "text": "At most 5 words", "category": "important",
     "check": {"kind": "max_words", "value": 5}},
    {"id": "ai", "text": "Says 'As an AI'", "category": "pitfall",
     "check": {"kind": "contains", "value": "As an AI"}},
    {"id": "json", "text": "Answers in JSON", "category": "optional", "check": {"kind": "json"}},
]  # fmt: skip
TOTAL = 2 + 0.7 + 0.9 + 0.3

GOOD = Sample(response="Paris.")
CHATTY = Sample(response="As an AI, I think the capital of France is Paris.")
WRONG = Sample(response="London")


def source(aggregate: str = "weighted_mean", criteria=CRITERIA, **options) -> RubricSource:
    return RubricSource(
        rubric={"name": "capital", "aggregate": aggregate, "criteria": criteria}, **options
    )


def test_weighted_mean_exact_scores():
    scores = source().score([GOOD, CHATTY, WRONG])
    # GOOD: Paris, short, pitfall avoided, not JSON
    assert scores[0].value == pytest.approx((2 + 0.7 + 0.9) / TOTAL)
    # CHATTY: Paris; 11 words; pitfall present (0); not JSON
    assert scores[1].value == pytest.approx(2 / TOTAL)
    # WRONG: only short + pitfall avoided
    assert scores[2].value == pytest.approx((0.7 + 0.9) / TOTAL)
    # programmatic criteria are exact: one draw, no spread
    assert all(s.draws == [s.value] and s.std == 0 for s in scores)


def test_pitfall_counts_when_avoided():
    pitfall_only = [CRITERIA[2]]
    a, b = source(criteria=pitfall_only).score([GOOD, CHATTY])
    assert (a.value, b.value) == (1.0, 0.0)
    rows = {r["id"]: r for r in b.detail["criteria"]}
    assert rows["ai"]["verdict"] == "pitfall present" and rows["ai"]["satisfied"] == 0.0


def test_essential_gate_zeroes_failed_essentials():
    good, chatty, wrong = source("essential_gate").score([GOOD, CHATTY, WRONG])
    assert good.value == pytest.approx((2 + 0.7 + 0.9) / TOTAL)
    assert chatty.value == pytest.approx(2 / TOTAL)
    assert wrong.value == 0.0  # weighted mean would give 1.6 / 3.9


def partial(response: str) -> float:
    return float(response)


def test_gate_uses_the_threshold_on_partial_outcomes():
    crit = [
        {"id": "p", "category": "essential", "check": {"kind": "python", "function": f"{__name__}:partial"}},
        {"id": "o", "weight": 1, "check": {"kind": "contains", "value": "."}},
    ]  # fmt: skip
    src = source("essential_gate", crit)
    half, low = src.score([Sample(response="0.5"), Sample(response="0.4")])
    assert half.value == pytest.approx((0.5 + 1) / 2)
    assert low.value == 0.0
    strict = RubricSource(
        rubric={"aggregate": "essential_gate", "threshold": 0.6, "criteria": crit}
    )
    assert strict.score([Sample(response="0.5")])[0].value == 0.0


def test_detail_lists_every_criterion():
    (score,) = source().score([CHATTY])
    rows = score.detail["criteria"]
    assert [r["id"] for r in rows] == ["paris", "short", "ai", "json"]
    assert [r["verdict"] for r in rows] == ["met", "not met", "pitfall present", "not met"]
    assert rows[0]["weight"] == 2.0 and rows[1]["weight"] == 0.7
    assert score.detail["rubric"] == "capital" and score.detail["aggregate"] == "weighted_mean"


def test_per_sample_rubric_takes_precedence():
    own = {
        "criteria": [
            {"id": "london", "weight": 1, "check": {"kind": "contains", "value": "London"}}
        ]
    }
    wrong_with_own = Sample(response="London", rubric=own)
    shared, specific = source().score([WRONG, wrong_with_own])
    assert shared.value == pytest.approx(1.6 / TOTAL)
    assert specific.value == 1.0 and specific.detail["criteria"][0]["id"] == "london"
    # per_sample: false ignores the sample's rubric
    (ignored,) = source(per_sample=False).score([wrong_with_own])
    assert ignored.value == pytest.approx(1.6 / TOTAL)
    # a library name works as a per-sample rubric too
    named = Sample(response="A: 18", reference="#### 18", rubric="math_solution")
    assert source().score([named])[0].detail["rubric"] == "math_solution"


def test_per_sample_only_source_and_invalid_sample_rubric():
    src = RubricSource()  # no shared rubric: every sample brings its own
    bad = Sample(response="x", rubric={"criteria": [{"weight": 1, "check": {"kind": "nope"}}]})
    as_text = '[{"weight": 1, "check": {"kind": "json"}}]'  # a bare criteria list, as JSON text
    none, invalid, fine = src.score(
        [Sample(response="x"), bad, Sample(response="x", rubric=as_text)]
    )
    assert none.status == "abstain" and "no `rubric`" in none.reason
    assert invalid.status == "abstain" and "unknown criterion kind 'nope'" in invalid.reason
    assert fine.ok and fine.value == 0.0


def boom(response: str) -> bool:
    raise RuntimeError("checker crashed")


def cannot_tell(response: str) -> None:
    return None


BOOM = {
    "id": "boom",
    "category": "essential",
    "check": {"kind": "python", "function": f"{__name__}:boom"},
}


def test_erroring_criterion_is_missing_and_renormalized():
    (score,) = source(criteria=[*CRITERIA, BOOM]).score([GOOD])
    assert score.value == pytest.approx((2 + 0.7 + 0.9) / TOTAL)  # as if "boom" were not there
    assert score.detail["missing"] == ["boom"]
    row = score.detail["criteria"][-1]
    assert row["status"] == "missing" and "RuntimeError: checker crashed" in row["reason"]


def test_erroring_criterion_abstains_when_asked():
    (score,) = source(criteria=[*CRITERIA, BOOM], on_error="abstain").score([GOOD])
    assert score.status == "abstain" and "boom" in score.reason
    assert [r["id"] for r in score.detail["criteria"]][-1] == "boom"


def test_gate_abstains_without_a_checked_essential():
    (score,) = source("essential_gate", [*CRITERIA, BOOM]).score([GOOD])
    assert score.status == "abstain" and "gate is undecided" in score.reason
    none = {
        "id": "none",
        "weight": 1,
        "check": {"kind": "python", "function": f"{__name__}:cannot_tell"},
    }
    (only_missing,) = source(criteria=[none]).score([GOOD])
    assert only_missing.status == "abstain" and "no criterion" in only_missing.reason


def test_instruction_following_library_binds_dataset_columns():
    src = RubricSource(rubric="instruction_following")
    meta = {"max_words": 3, "keywords": ["cat"], "json_output": False}
    rows = [
        Sample(response="the cat sat", **meta),
        Sample(response="the cat sat down", **meta),
        Sample(response="a dog sat down", **meta),
        Sample(response='{"a": "B"}', json_output=True, all_lowercase=True, end_phrase="}"),
        Sample(response="no constraints here"),
    ]
    ok, half, zero, json_row, nothing = src.score(rows)
    assert (ok.value, half.value, zero.value) == (1.0, 0.5, 0.0)
    applied = [r["id"] for r in ok.detail["criteria"] if r["status"] == "ok"]
    assert applied == ["max_words", "keywords"]
    assert json_row.value == pytest.approx(2 / 3)  # JSON and end phrase yes, lowercase no
    assert nothing.status == "abstain"


def test_math_rubric_exact():
    src = RubricSource(rubric="math_solution")
    right = Sample(response="16 - 3 - 4 = 9 eggs\n9 * 2 = 18 dollars\nA: 18", reference="#### 18")
    bare = Sample(response="18", reference="#### 18")
    wrong = Sample(response="16 - 3 = 13\n13 * 2 = 26\nA: 26", reference="#### 18")
    missing_ref = Sample(response="A: 18")
    a, b, c, d = src.score([right, bare, wrong, missing_ref])
    assert a.value == 1.0
    assert b.value == pytest.approx(1 / 2.0)  # answer right, no steps, no explicit statement
    assert c.value == 0.0
    assert d.status == "abstain"  # no reference: the essential criterion cannot be checked


def test_source_pickles_and_scores_after():
    src = source()
    clone = pickle.loads(pickle.dumps(src))
    assert clone.score([GOOD])[0].value == src.score([GOOD])[0].value


def test_registered_through_entry_points(fresh_plugins):
    assert plugins.sources().get("rubric") is RubricSource
    kinds = set(plugins.criteria().names())
    assert {
        "contains",
        "not_contains",
        "regex",
        "max_words",
        "min_words",
        "json",
        "python",
        "llm",
    } <= kinds
    report = {p["name"]: p for p in plugins.plugin_report()}
    assert report["rubric"]["error"] is None and "rubric" in report["rubric"]["sources"]


def test_plugin_import_is_light():
    code = (
        "import sys, rewardplug_rubric.plugin as p; from rewardplug_rubric import source, cli; "
        "heavy = {'torch', 'transformers', 'openai', 'litellm'} & set(sys.modules); "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_config_errors_at_load():
    with pytest.raises(ValueError, match="unknown criterion kind 'contian'"):
        RubricSource(
            rubric={"criteria": [{"weight": 1, "check": {"kind": "contian", "value": "x"}}]}
        )
    with pytest.raises(ValueError, match="has llm \\['c1'\\]: set `judge:`"):
        RubricSource(rubric={"criteria": [{"text": "Polite", "category": "optional"}]})
    with pytest.raises(ValueError, match="Extra inputs"):
        RubricSource(rubric="math_solution", rubrik="x")
