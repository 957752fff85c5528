"""The ``steps`` source: splitting, draw-wise aggregation against a plain loop, real GSM8K
solutions, a tiny real process reward model on prefixes, and a judge grading each step."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from rewardplug_compose.steps import split_steps

import rewardplug
from rewardplug.types import Sample
from tests.chat_server import Reply, http_options, user_text

FN = "tests.rewardplug_compose.step_rewards"


def steps_stack(function="half_length", **options):
    inner = {"use": "python", "with": {"function": f"{FN}:{function}"}}
    return rewardplug.load_stack(
        {"sources": [{"name": "steps", "use": "steps", "with": {"source": inner, **options}}]}
    )


# -- splitting ---------------------------------------------------------------------------------


def test_split_modes():
    text = "Step 1: a\nb\n\n  Step 2: c  \n\n\nStep 3: d"
    assert [text[a:b] for a, b in split_steps(text, "paragraph")] == [
        "Step 1: a\nb",
        "Step 2: c",
        "Step 3: d",
    ]
    assert [text[a:b] for a, b in split_steps(text, "line")] == [
        "Step 1: a",
        "b",
        "Step 2: c",
        "Step 3: d",
    ]
    # a zero-width separator keeps the marker with its step
    assert [text[a:b] for a, b in split_steps(text, r"(?=Step \d+:)")] == [
        "Step 1: a\nb",
        "Step 2: c",
        "Step 3: d",
    ]
    assert split_steps(" \n\n \n", "paragraph") == []


@given(st.text(alphabet="ab \n\t", max_size=40), st.sampled_from(["paragraph", "line", "b+"]))
def test_steps_are_stripped_ordered_and_cover_every_non_space(text, split):
    spans = split_steps(text, split)
    covered = set()
    for j, (a, b) in enumerate(spans):
        nxt = spans[j + 1] if j + 1 < len(spans) else None
        piece = text[a:b]
        assert piece and piece == piece.strip()
        assert nxt is None or b <= nxt[0]
        covered.update(range(a, b))
    separators = {
        i
        for m in re.finditer({"paragraph": r"\n[ \t]*\n", "line": r"\n"}.get(split, split), text)
        for i in range(m.start(), m.end())
    }
    for i, ch in enumerate(text):
        if not ch.isspace() and i not in separators:
            assert i in covered


# -- aggregating -------------------------------------------------------------------------------

RESPONSE = "one\ntwo two\nthree three three"


@pytest.mark.parametrize("aggregate", ["min", "mean", "last", "product"])
@pytest.mark.parametrize("prefix", [True, False])
def test_aggregate_draw_by_draw_matches_a_plain_loop(aggregate, prefix):
    stack = steps_stack(split="line", aggregate=aggregate, prefix=prefix)
    score = stack.score([{"prompt": "p", "response": RESPONSE}])[0].sources["steps"]
    spans = split_steps(RESPONSE, "line")
    texts = [RESPONSE[:b] if prefix else RESPONSE[a:b] for a, b in spans]
    values = np.array([len(t) / 2 for t in texts])
    fn = {"min": np.min, "mean": np.mean, "last": lambda x: x[-1], "product": np.prod}[aggregate]
    assert score.value == pytest.approx(float(fn(values)))
    assert len(score.draws) == 2
    listed = score.detail["steps"]
    assert [(s["start"], s["end"]) for s in listed] == spans
    assert [s["text"] for s in listed] == ["one", "two two", "three three three"]
    assert [s["value"] for s in listed] == pytest.approx(values.tolist())
    assert all(s["std"] == pytest.approx(np.std([0, 1], ddof=1)) for s in listed)
    # each draw aggregates one draw (lower or upper) of every step
    lows, highs = values - 0.5, values + 0.5
    assert fn(lows) - 1e-9 <= min(score.draws) <= max(score.draws) <= fn(highs) + 1e-9


def test_no_steps_abstains_and_too_many_steps_abstains():
    stack = steps_stack(split="line", max_steps=2)
    with pytest.warns(UserWarning, match="could not score 2 of 2"):
        empty, many = stack.score(
            [{"prompt": "p", "response": "  \n \n"}, {"prompt": "p", "response": "a\nb\nc"}]
        )
    assert empty.sources["steps"].status == "abstain"
    assert "no steps after splitting on 'line'" in empty.reason
    assert "more than max_steps (2)" in many.reason


def test_an_unscorable_step_abstains_or_is_skipped():
    rows = [{"prompt": "p", "response": "costs 3\nno number here\nso 7", "reference": "3 and 7"}]
    with pytest.warns(UserWarning, match="could not score 1 of 1"):
        strict = steps_stack("reference_numbers", split="line", prefix=False).score(rows)[0]
    assert strict.reward is None
    assert "1 of 3 steps could not be scored; step 1 (characters 8-22)" in strict.reason
    lenient = steps_stack(
        "reference_numbers", split="line", prefix=False, on_step_abstain="skip"
    ).score(rows)[0]
    assert lenient.status == "ok" and lenient.sources["steps"].detail["skipped"] == [1]
    assert lenient.sources["steps"].value == pytest.approx(1.0)


def test_bad_split_and_bad_inner_source_fail_at_load():
    with pytest.raises(rewardplug.StackError, match=r"split '\(\[' is not 'paragraph'"):
        steps_stack(split="([")
    with pytest.raises(rewardplug.StackError, match=r"source\.with\.functon"):
        rewardplug.load_stack(
            {
                "sources": [
                    {
                        "name": "s",
                        "use": "steps",
                        "with": {"source": {"use": "python", "with": {"functon": "a:b"}}},
                    }
                ]
            }
        )
    with pytest.raises(rewardplug.StackError, match="'min', 'mean', 'last' or 'product'"):
        steps_stack(aggregate="max")


# -- real GSM8K solutions ----------------------------------------------------------------------


def gsm8k_rows(shared_data, n):
    rows = []
    with open(shared_data / "gsm8k" / "example_model_solutions.jsonl") as fh:
        for line, _ in zip(fh, range(n), strict=False):
            item = json.loads(line)
            for model in (
                "6b_finetuning",
                "6b_verification",
                "175b_finetuning",
                "175b_verification",
            ):
                rows.append(
                    {
                        "prompt": item["question"],
                        "response": item[model]["solution"],
                        "reference": item["ground_truth"],
                        "is_correct": item[model]["is_correct"],
                    }
                )
    return rows


def test_real_gsm8k_solutions_split_into_lines_and_scored_per_step(shared_data):
    rows = gsm8k_rows(shared_data, 10)
    stack = steps_stack("reference_numbers", split="line", prefix=False, on_step_abstain="skip")
    rewards = stack.score(rows)
    checked = 0
    for row, reward in zip(rows, rewards, strict=True):
        lines = [ln.strip() for ln in row["response"].split("\n") if ln.strip()]
        score = reward.sources["steps"]
        if not score.ok:
            continue
        steps = score.detail["steps"]
        assert [s["text"] for s in steps] == lines  # every solution line is one step
        known = set(re.findall(r"-?\d+(?:\.\d+)?", row["reference"]))
        expect = []
        for line in lines:
            found = re.findall(r"-?\d+(?:\.\d+)?", line)
            if found:
                expect.append(sum(n in known for n in found) / len(found))
        assert score.value == pytest.approx(min(expect))
        checked += 1
    assert checked >= 30
    # steps that agree with the reference's numbers go with correct answers on average
    ok = [r for r in rewards if r.status == "ok"]
    right = np.mean(
        [
            r.raw
            for r, row in zip(rewards, rows, strict=True)
            if r.status == "ok" and row["is_correct"]
        ]
    )
    wrong = np.mean(
        [
            r.raw
            for r, row in zip(rewards, rows, strict=True)
            if r.status == "ok" and not row["is_correct"]
        ]
    )
    assert len(ok) >= 30 and right > wrong


# -- a tiny real process reward model on prefixes ----------------------------------------------


@pytest.mark.slow
def test_neural_rm_scores_each_prefix_with_mc_dropout(rm_pair):
    from rewardplug_neural.rm_source import NeuralRMSource

    model = str(rm_pair[0])
    inner = {"use": "neural_rm", "with": {"model": model, "mc_samples": 4, "device": "cpu"}}
    stack = rewardplug.load_stack(
        {
            "sources": [
                {
                    "name": "prm",
                    "use": "steps",
                    "with": {"source": inner, "split": "line", "aggregate": "min"},
                }
            ]
        }
    )
    question = "Tom has 3 apples and buys 4 more. How many?"
    response = "He starts with 3 apples.\nHe buys 4 more, 3 + 4 = 7.\nThe answer is 7."
    score = stack.score([{"prompt": question, "response": response}])[0].sources["prm"]
    prefixes = [response[:b] for _, b in split_steps(response, "line")]
    direct = NeuralRMSource(model=model, mc_samples=4, device="cpu").score(
        [Sample(prompt=question, response=p) for p in prefixes]
    )
    steps = score.detail["steps"]
    assert [s["value"] for s in steps] == pytest.approx([d.value for d in direct], abs=1e-5)
    assert [s["std"] for s in steps] == pytest.approx([d.std for d in direct], abs=1e-5)
    assert score.value == pytest.approx(min(d.value for d in direct), abs=1e-5)
    assert len(score.draws) == 4 and score.std > 0
    # each draw is the minimum over steps of one of each step's MC-dropout draws
    lo = min(min(d.draws) for d in direct)
    hi = min(max(d.draws) for d in direct)
    assert all(lo - 1e-5 <= x <= hi + 1e-5 for x in score.draws)


# -- an LLM judge grading each step ------------------------------------------------------------


def test_a_judge_grades_each_step_over_http(serve, tmp_path):
    def responder(body, server):
        text = user_text(body)
        grade = 2 if "= 8" in text else 9  # the judge spots the wrong sum
        return Reply(texts=[f"Rating: {grade}" for _ in range(int(body.get("n") or 1))])

    server = serve(responder)
    judge = {"use": "llm_judge", "with": http_options("openai", server, tmp_path, samples=3)}
    stack = rewardplug.load_stack(
        {
            "sources": [
                {
                    "name": "steps",
                    "use": "steps",
                    "with": {"source": judge, "split": "line", "prefix": False, "aggregate": "min"},
                }
            ],
            "discretize": {"confidence": 0.9},
        }
    )
    rows = [
        {"prompt": "3 + 4?", "response": "Add them.\n3 + 4 = 7.\nThe answer is 7."},
        {"prompt": "3 + 4?", "response": "Add them.\n3 + 4 = 8.\nThe answer is 8."},
    ]
    good, bad = stack.score(rows)
    assert len(server.requests) == 6  # one request (n = 3) per step
    assert [s["value"] for s in bad.sources["steps"].detail["steps"]] == pytest.approx(
        [8 / 9, 1 / 9, 8 / 9]
    )
    assert bad.sources["steps"].value == pytest.approx(1 / 9)
    assert good.sources["steps"].value == pytest.approx(8 / 9)
    assert good.reward > bad.reward and good.tier == 0 and bad.tier == 1


def test_steps_are_batch_independent_async_and_picklable():
    import asyncio
    import pickle

    inner = {"use": "python", "with": {"function": f"{FN}:length"}, "noise": {"std": 1.0}}
    spec = {"sources": [{"name": "s", "use": "steps", "with": {"source": inner, "split": "line"}}]}
    rows = [
        {"prompt": "p", "response": "a\nbb\nccc"},
        {"prompt": "p", "response": "dddd\ne"},
        {"prompt": "q", "response": "one line"},
    ]
    stack = rewardplug.load_stack(spec)
    together = [r.sources["s"].draws for r in stack.score(rows)]
    assert all(len(d) == 32 for d in together)  # the inner source's noise draws, aggregated
    assert [stack.score([row])[0].sources["s"].draws for row in rows] == together
    asynced = asyncio.run(rewardplug.load_stack(spec).ascore(rows))
    assert [r.sources["s"].draws for r in asynced] == together
    clone = pickle.loads(pickle.dumps(stack.sources["s"]))
    assert [s.draws for s in clone.score([Sample(**r) for r in rows])] == together
