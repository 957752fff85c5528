"""A judge whose template shows ``{reference}`` needs one: such a sample is counted as missing
and abstains unsent -- it is never graded against an empty reference section."""

from __future__ import annotations

import pytest
from rewardplug_judge.prompts import Template
from rewardplug_judge.source import JudgeSource

import rewardplug
from rewardplug.types import Sample
from tests.chat_server import Reply, http_options, user_text

NEEDS_REFERENCE = """<!-- system -->
Grade the response against the reference answer.
<!-- user -->
{prompt}

## Reference answer
{reference}

## Response
{response}

End with `Rating: N`."""


def test_placeholders_outside_if_blocks_are_always_filled():
    always, conditional = Template("t", NEEDS_REFERENCE).placeholders()
    assert {"prompt", "reference", "response"} <= always and not conditional
    shipped = Template(
        "p",
        "<!-- a note: {reference} -->{prompt}<!-- if reference -->{reference}"
        "<!-- endif -->{response}",
    )
    always, conditional = shipped.placeholders()
    assert "reference" not in always and conditional == {"reference"}


def test_a_sample_without_the_reference_the_template_shows_abstains_unsent(serve, tmp_path):
    path = tmp_path / "graded.md"
    path.write_text(NEEDS_REFERENCE)
    server = serve(lambda body, s: Reply(texts=["Rating: 10"] * int(body.get("n") or 1)))
    source = JudgeSource(http_options("openai", server, tmp_path, prompt=str(path), samples=2))
    [spec] = source.inputs()
    assert (spec.field, spec.required) == ("reference", True)
    with_ref, without, empty = source.score(
        [
            Sample(prompt="2+2?", response="4", reference="4"),
            Sample(prompt="2+2?", response="5"),
            Sample(prompt="2+2?", response="5", reference=""),
        ]
    )
    assert with_ref.ok and with_ref.value == pytest.approx(1.0)
    for score in (without, empty):
        assert score.status == "abstain"
        assert "no `reference`" in score.reason and "graded.md" in score.reason
    assert len(server.requests) == 1  # only the sample with a reference was sent
    assert "## Reference answer\n" in user_text(server.requests[0])


def test_the_shipped_templates_take_a_reference_only_when_there_is_one(serve, tmp_path):
    server = serve(lambda body, s: Reply(texts=["Rating: 7"] * int(body.get("n") or 1)))
    source = JudgeSource(http_options("openai", server, tmp_path, samples=1))
    [spec] = source.inputs()
    assert (spec.field, spec.required) == ("reference", False)
    [score] = source.score([Sample(prompt="q", response="r")])
    assert score.ok


def test_the_stack_counts_samples_without_the_reference(serve, tmp_path):
    path = tmp_path / "graded.md"
    path.write_text(NEEDS_REFERENCE)
    server = serve(lambda body, s: Reply(texts=["Rating: 9"] * int(body.get("n") or 1)))
    options = http_options("openai", server, tmp_path, prompt=str(path), samples=1)
    stack = rewardplug.load_stack(
        {"sources": [{"name": "judge", "use": "llm_judge", "with": options}]}
    )
    rows = [
        {"group": "g", "prompt": "q", "response": "a", "reference": "a"},
        {"group": "g", "prompt": "q", "response": "b"},
    ]
    report = stack.check_inputs([Sample.model_validate(r) for r in rows])
    assert report.missing == {("judge", "reference"): 1}
    good, gap = stack.score(rows)
    assert good.status == "ok"
    assert gap.status != "ok" and gap.reward is None  # abstains (on_abstain: abstain): masked
    assert stack.missing_inputs[("judge", "reference")] == 1
    stack.close()
