"""Rubric format: defaults, loading from names/paths/text, and precise validation errors."""

from __future__ import annotations

import pytest
from rewardplug_rubric.model import CATEGORY_WEIGHTS, RubricError, available_rubrics, load_rubric

CAPITAL = {
    "name": "capital",
    "aggregate": "weighted_mean",
    "criteria": [
        {
            "id": "paris",
            "text": "Names Paris",
            "weight": 2,
            "category": "essential",
            "check": {"kind": "contains", "value": "Paris"},
        }
    ],
}


def test_contract_example_loads():
    r = load_rubric(CAPITAL)
    (c,) = r.criteria
    assert (r.name, r.aggregate, c.id, c.kind, c.effective_weight) == (
        "capital",
        "weighted_mean",
        "paris",
        "contains",
        2.0,
    )
    assert not r.has_judged


def test_category_default_weights():
    assert CATEGORY_WEIGHTS == {"essential": 1.0, "important": 0.7, "optional": 0.3, "pitfall": 0.9}
    crit = [
        {"category": cat, "check": {"kind": "contains", "value": "x"}} for cat in CATEGORY_WEIGHTS
    ]
    r = load_rubric({"criteria": crit})
    assert [c.effective_weight for c in r.criteria] == [1.0, 0.7, 0.3, 0.9]
    assert [c.id for c in r.criteria] == ["c1", "c2", "c3", "c4"]


def test_check_defaults_to_llm():
    r = load_rubric({"criteria": [{"text": "Is polite", "category": "optional"}]})
    assert r.criteria[0].kind == "llm" and r.has_judged


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"criteria": []}, "at least one criterion"),
        ({"name": "x"}, "at least one criterion"),
        (
            {"criteria": [{"id": "a", "weight": 1, "check": {"kind": "contain", "value": "x"}}]},
            r"criteria\[0\] \(id 'a'\): check: unknown criterion kind 'contain'; known: .*contains",
        ),
        (
            {"criteria": [{"id": "r", "weight": 1, "check": {"kind": "regex", "pattern": "(a"}}]},
            r"criteria\[0\] \(id 'r'\): check.pattern: invalid regular expression '\(a'",
        ),
        (
            {"criteria": [{"id": "w", "check": {"kind": "contains", "value": "x"}}]},
            r"criteria\[0\] \(id 'w'\): give a `weight` or a `category`",
        ),
        (
            {"criteria": [{"weight": 1, "category": "vital", "check": {"kind": "json"}}]},
            r"criteria\[0\].category: Input should be 'essential', 'important'",
        ),
        (
            {"criteria": [{"weight": -1, "check": {"kind": "json"}}]},
            r"criteria\[0\].weight: Input should be greater than or equal to 0",
        ),
        ({"criteria": [{"weight": 1, "check": {"value": "x"}}]}, "`check` needs a `kind`"),
        ({"criteria": [{"weight": 1, "check": {"kind": "llm"}}]}, "give the criterion a text"),
        (
            {"aggregate": "mean", "criteria": [{"weight": 1, "check": {"kind": "json"}}]},
            "aggregate: Input should be 'weighted_mean', 'essential_gate' or 'implicit'",
        ),
        (
            {
                "criteria": [
                    {"id": "a", "weight": 1, "check": {"kind": "json"}},
                    {"id": "a", "weight": 1, "check": {"kind": "json"}},
                ]
            },
            "criterion id 'a' is used twice",
        ),
        (
            {"criteria": [{"weight": 1, "check": {"kind": "max_words"}, "bind": {"limit": "n"}}]},
            r"`bind` names \['limit'\], which are not fields of check kind 'max_words'",
        ),
        (
            {"criteria": [{"weight": 1, "check": {"kind": "json"}}], "threshold": 0},
            "threshold: Input should be greater than 0",
        ),
    ],
)
def test_validation_errors_are_precise(bad, message):
    with pytest.raises(RubricError, match=message):
        load_rubric(bad)


def test_missing_check_field_is_reported_at_load():
    with pytest.raises(RubricError, match=r"check.value: Field required"):
        load_rubric({"criteria": [{"weight": 1, "check": {"kind": "max_words"}}]})


def test_loading_from_file_name_and_text(tmp_path, monkeypatch):
    path = tmp_path / "mine.yaml"
    path.write_text(
        "criteria:\n  - {id: a, weight: 1, check: {kind: contains, value: hi}}\n", encoding="utf-8"
    )
    assert load_rubric(path).name == "mine"  # name defaults to the file stem
    assert load_rubric(str(path)).criteria[0].id == "a"
    monkeypatch.setenv("REWARDPLUG_RUBRICS", str(tmp_path))
    assert available_rubrics() == ["mine"]
    assert load_rubric("mine").name == "mine"
    inline = load_rubric("criteria: [{weight: 1, check: {kind: json}}]")
    assert inline.criteria[0].kind == "json"
    assert load_rubric([{"weight": 1, "check": {"kind": "json"}}]).criteria[0].kind == "json"
    with pytest.raises(RubricError, match=r"no rubric 'nope'.*known: mine"):
        load_rubric("nope")


def test_bad_yaml_file_names_the_file(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("criteria: [\n", encoding="utf-8")
    with pytest.raises(RubricError, match=r"broken\.yaml is not valid YAML"):
        load_rubric(path)


def test_file_errors_name_the_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(
        "criteria:\n  - {id: z, check: {kind: regex, pattern: '['}}\n", encoding="utf-8"
    )
    with pytest.raises(RubricError) as info:
        load_rubric(path)
    text = str(info.value)
    assert "bad.yaml" in text and "criteria[0] (id 'z')" in text
    assert "give a `weight` or a `category`" in text


def test_an_unknown_check_kind_suggests_the_close_one():
    from rewardplug_rubric.model import Rubric

    with pytest.raises(ValueError, match="did you mean 'regex'"):
        Rubric.model_validate(
            {"name": "r", "criteria": [{"id": "a", "weight": 1, "check": {"kind": "regexx"}}]}
        )
