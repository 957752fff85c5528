"""Sample / Score / Reward: the data contract."""

from __future__ import annotations

import math

import pytest
from pydantic import ValidationError

from rewardplug import Sample, Score


def test_unknown_fields_go_to_metadata_and_back():
    s = Sample(prompt="2+2?", response="4", gold=4, difficulty="easy")
    assert s.metadata == {"gold": 4, "difficulty": "easy"}
    assert s.field("gold") == 4 and s.field("response") == "4"


def test_group_defaults_to_prompt_hash_and_ids_are_stable():
    a = Sample(prompt="p", response="x")
    b = Sample(prompt="p", response="y")
    c = Sample(prompt="q", response="x")
    assert a.group == b.group != c.group
    assert a.id != b.id and a.id == Sample(prompt="p", response="x").id
    chat = [{"role": "user", "content": "p"}]
    assert Sample(prompt=chat, response="x").group == Sample(prompt=list(chat), response="z").group


def test_chat_completion_becomes_text_and_int_ids_become_strings():
    s = Sample(id=7, prompt="p", response=[{"role": "assistant", "content": "hello"}])
    assert s.response == "hello" and s.id == "7"


def test_response_is_required():
    with pytest.raises(ValidationError, match="response"):
        Sample(prompt="p")


def test_score_draws_value_and_std():
    s = Score.of(draws=[1.0, 2.0, 3.0])
    assert s.value == 2.0 and s.std == pytest.approx(1.0)
    single = Score.of(0.7)
    assert single.draws == [0.7] and single.std == 0.0


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_scores_abstain_with_reason(bad):
    s = Score.of(value=bad)
    assert s.status == "abstain" and "non-finite" in s.reason
    s = Score.of(draws=[0.1, bad])
    assert s.status == "abstain"


def test_abstain_needs_no_value_and_keeps_reason():
    s = Score.abstain("no reference", hint="add one")
    assert s.value is None and s.reason == "no reference" and s.detail["hint"] == "add one"
    assert Score(status="error").reason  # a reason is always filled in


def test_trusted_instances_equal_validated_ones():
    """The hot paths' unvalidated constructor builds the same objects validation would."""
    from rewardplug.types import Reward, trusted

    score = trusted(Score, {"value": 0.5, "draws": [0.5], "status": "ok", "detail": {}})
    assert score == Score(value=0.5) and score.std == 0.0 and score.ok
    assert score.model_dump() == Score(value=0.5).model_dump()
    fields = dict(
        id="a", group="g", reward=1.0, raw=0.5, std=0.0, tier=0, n_tiers=1, status="ok",
        reason=None, group_size=1, partial=False, sources={"s": score},
    )  # fmt: skip
    fast, checked = trusted(Reward, dict(fields)), Reward(**fields)
    assert fast == checked
    assert fast.row_fields() == checked.row_fields()
    assert fast.model_fields_set == checked.model_fields_set | {"reason", "partial"}


# -- sample_from: the fast path for plain rows equals model_validate ---------------------------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from rewardplug.types import sample_from  # noqa: E402

text = st.one_of(st.just(""), st.text(max_size=8), st.just("\ud800 lone surrogate"))
plain_value = {
    "id": text,
    "group": text,
    "prompt": text,
    "response": text,
    "reference": st.one_of(st.none(), text),
}
other_value = st.one_of(
    st.integers(),
    st.booleans(),
    st.none(),
    st.lists(st.fixed_dictionaries({"role": st.just("assistant"), "content": text}), max_size=2),
    st.dictionaries(st.sampled_from(["content", "x"]), text, max_size=2),
)


@st.composite
def rows(draw):
    keys = draw(st.sets(st.sampled_from([*plain_value, "metadata", "tests", "extra_column"])))
    row = {}
    for key in keys:
        plain = key in plain_value and draw(st.booleans() | st.just(True))
        row[key] = draw(plain_value[key] if plain else other_value)
    return row


def _same(row):
    try:
        want = Sample.model_validate(row)
    except ValidationError as exc:
        with pytest.raises(ValidationError) as got:
            sample_from(row)
        assert got.value.errors(include_context=False) == exc.errors(include_context=False)
        return
    got = sample_from(row)
    assert type(got) is Sample
    assert got == want
    assert got.model_dump() == want.model_dump()
    assert got.model_fields_set == want.model_fields_set
    assert _json(got) == _json(want)


def _json(sample):
    try:
        return sample.model_dump_json()
    except ValueError as exc:  # a lone surrogate cannot be written as UTF-8, either way
        return type(exc).__name__


@settings(max_examples=400, deadline=None)
@given(rows())
def test_sample_from_equals_model_validate(row):
    _same(row)


def test_sample_from_plain_rows_skip_validation_and_others_do_not(monkeypatch):
    """The fast path is taken for a plain row (so the test above compares two code paths)."""
    calls = []
    real = Sample.model_validate.__func__

    def spy(cls, data, **kw):
        calls.append(data)
        return real(cls, data, **kw)

    monkeypatch.setattr(Sample, "model_validate", classmethod(spy))
    sample_from({"id": "1", "prompt": "p", "response": "r", "reference": None})
    assert calls == []
    sample_from({"id": 1, "response": "r"})  # an int id is converted: validation runs
    sample_from({"response": "r", "column": 3})  # an unknown column goes to metadata
    assert len(calls) == 2


def test_a_non_object_metadata_is_a_validation_error_naming_it():
    """It used to be a bare TypeError from dict(1), which a JSONL load did not catch."""
    with pytest.raises(ValidationError, match="metadata must be an object, got int"):
        Sample.model_validate({"response": "r", "metadata": 1, "column": 2})
