"""The built-in check kinds, one by one, and the text counters they rely on."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError
from rewardplug_rubric import checks
from rewardplug_rubric.checks import BUILTIN_KINDS

from rewardplug.types import Sample


def run(kind: str, response: str, **fields) -> bool | float | None:
    return (
        BUILTIN_KINDS[kind]
        .model_validate({"kind": kind, **fields})
        .check(Sample(response=response))
    )


def test_counters():
    assert checks.count_words("Don't stop, state-of-the-art 3.5 times!") == 5
    text = "First one. Second? Third!! And 3.5 is a number. Last without stop"
    assert checks.count_sentences(text) == 5
    assert checks.count_bullets("Intro\n- a\n* b\n  + c\n1. d\n2) e\n-not a bullet\n") == 5
    assert checks.count_paragraphs("one\n\ntwo\n\n\n three \n***\nfour") == 4


@given(st.lists(st.from_regex(r"[A-Za-z0-9]{1,8}", fullmatch=True), max_size=30))
def test_word_count_of_joined_words(words):
    assert checks.count_words(" ".join(words)) == len(words)


@given(st.lists(st.from_regex(r"[a-z]{1,8}( [a-z]{1,8}){0,4}", fullmatch=True), max_size=10))
def test_sentence_count_of_joined_sentences(sentences):
    assert checks.count_sentences(" ".join(s + "." for s in sentences)) == len(sentences)


def test_contains_and_not_contains():
    assert run("contains", "The capital is Paris.", value="Paris") is True
    assert run("contains", "the capital is paris.", value="Paris") is False
    assert run("contains", "the capital is paris.", value="Paris", case_sensitive=False) is True
    assert run("contains", "red and blue", value=["red", "blue"]) is True
    assert run("contains", "red only", value=["red", "blue"]) is False
    assert run("contains", "go go", value="go", min_count=2) is True
    assert run("contains", "go", value="go", min_count=2) is False
    assert run("not_contains", "a, b", value=",") is False
    assert run("not_contains", "a b", value=[",", ";"]) is True


def test_regex_matches_anywhere():
    assert run("regex", "line one\nAnswer: 42", pattern=r"^Answer: \d+$") is True
    assert run("regex", "answer: 42", pattern=r"^Answer") is False
    assert run("regex", "answer: 42", pattern=r"^Answer", case_sensitive=False) is True


def test_lengths():
    assert run("max_words", "one two three", value=3) is True
    assert run("max_words", "one two three four", value=3) is False
    assert run("min_words", "one two", value=3) is False
    assert run("max_sentences", "A. B. C.", value=2) is False
    assert run("min_sentences", "A. B. C.", value=3) is True


def test_bullets_and_paragraphs_ranges():
    text = "- a\n- b\n- c"
    assert run("bullets", text, exactly=3) is True
    assert run("bullets", text, exactly=2) is False
    assert run("bullets", text, min=1, max=3) is True
    assert run("bullets", text, max=2) is False
    assert run("paragraphs", "a\n\nb", min=2) is True
    with pytest.raises(ValidationError, match="give `exactly`, `min` or `max`"):
        BUILTIN_KINDS["bullets"].model_validate({"kind": "bullets"})
    with pytest.raises(ValidationError, match="larger than"):
        BUILTIN_KINDS["bullets"].model_validate({"kind": "bullets", "min": 3, "max": 1})


def test_case_and_affixes():
    assert run("lowercase", "all lower, 123.") is True
    assert run("lowercase", "Not all lower") is False
    assert run("lowercase", "123") is False  # no letters: not "written in lowercase"
    assert run("uppercase", "SHOUT 1!") is True
    assert (
        run("ends_with", "Thanks. Any other questions?  \n", value="Any other questions?") is True
    )
    assert run("ends_with", "Any other questions? Bye", value="Any other questions?") is False
    assert run("starts_with", "  Dear Sir, hi", value="Dear Sir") is True


def test_json_with_fence_and_schema():
    assert run("json", '{"a": 1}') is True
    assert run("json", '```json\n{"a": 1}\n```') is True
    assert run("json", '```json\n{"a": 1}\n```', allow_fence=False) is False
    assert run("json", "not json") is False
    schema = {"type": "object", "required": ["a"]}
    assert run("json", '{"a": 1}', schema=schema) is True
    assert run("json", '{"b": 1}', schema=schema) is False
    with pytest.raises(ValidationError, match="invalid JSON schema"):
        BUILTIN_KINDS["json"].model_validate({"kind": "json", "schema": {"type": 5}})


def answer_len(response: str, limit: int = 5) -> float:
    return min(1.0, len(response) / limit)


def needs_sample(sample, reference):
    return sample.response == reference


def out_of_range(response):
    return 2


def test_python_check_gets_what_it_asks_for():
    assert run("python", "abc", function=f"{__name__}:answer_len", kwargs={"limit": 6}) == 0.5
    sample = Sample(response="x", reference="x")
    check = BUILTIN_KINDS["python"].model_validate(
        {"kind": "python", "function": f"{__name__}:needs_sample"}
    )
    assert check.check(sample) is True
    with pytest.raises(ValueError, match="expected a bool or"):
        run("python", "abc", function=f"{__name__}:out_of_range")
    with pytest.raises(ValidationError, match="cannot import module"):
        BUILTIN_KINDS["python"].model_validate({"kind": "python", "function": "no_such_mod:f"})


def test_unknown_fields_rejected():
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        BUILTIN_KINDS["contains"].model_validate({"kind": "contains", "value": "a", "vlaue": "b"})
