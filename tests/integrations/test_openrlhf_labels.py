"""What OpenRLHF sends besides the response: end-of-turn markers, eval labels, group sizes, fills.

OpenRLHF decodes prompt + response with ``skip_special_tokens=False`` (the response ends with the
chat template's end-of-turn text), runs evaluation with its own ``--eval.n_samples_per_prompt``
(4 by default, unlike training's n), and needs a number for every sample.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from serving import free_port, server_process
from test_serve_groups import NOISY, whole_group_rewards

from rewardplug import load_stack
from rewardplug.cli import cli
from rewardplug.integrations.openrlhf import (
    DEFAULT_STRIP_SUFFIXES,
    parse_request,
    read_request,
    strip_end_markers,
)
from rewardplug.server import create_app
from tests.frameworks import require

HERE = Path(__file__).resolve().parent


def client(app) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


def one(prompt: str, response: str, label=None) -> dict:
    body = {"query": [prompt + response], "prompts": [prompt]}
    if label is not None:
        body["labels"] = [label if isinstance(label, str) else json.dumps(label)]
    return body


# -- end-of-turn markers -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("def f(): pass<|im_end|>", "def f(): pass"),
        ("x\n<|im_end|>\n<|endoftext|>\n", "x"),  # repeatedly, with the whitespace around them
        ("answer <|eot_id|>", "answer"),
        ("ok</s>", "ok"),
        ("ok<end_of_turn>\n", "ok"),
        ("a<|im_end|>b", "a<|im_end|>b"),  # only at the end
        ("keeps trailing space  ", "keeps trailing space  "),  # no marker: unchanged
        ("</s></s>", ""),
    ],
)
def test_strip_end_markers(text, want):
    assert strip_end_markers(text) == want


def test_strip_end_markers_custom_and_off():
    assert strip_end_markers("x<END>", ("<END>",)) == "x"
    assert strip_end_markers("x<|im_end|>", ("<END>",)) == "x<|im_end|>"
    assert strip_end_markers("x<|im_end|>", ()) == "x<|im_end|>"
    assert "<|im_end|>" in DEFAULT_STRIP_SUFFIXES


CODE_STACK = {
    "sources": [
        {"name": "tests", "use": "test_cases", "with": {"workers": 1, "timeout_s": 5}},
        # the response's length: shows the exact text the sources see
        {
            "name": "len",
            "use": "python",
            "weight": 0,
            "with": {"function": "rp_test_rewards:length"},
        },
    ]
}
ADD_TESTS = {
    "tests": {
        "kind": "call",
        "entry_point": "add",
        "cases": [{"args": [1, 2], "expected": 3}, {"args": [2, 2], "expected": 4}],
    }
}


@pytest.mark.slow
@pytest.mark.anyio
@pytest.mark.parametrize("strip", [True, False])
async def test_an_unfenced_function_with_im_end_scores_by_its_tests(strip):
    """As OpenRLHF sends it: the decoded response ends with ``<|im_end|>``."""
    prompt = "<|im_start|>user\nWrite add(a, b).<|im_end|>\n<|im_start|>assistant\n"
    code = "def add(a, b):\n    return a + b"
    stack = load_stack(CODE_STACK)
    app = create_app(stack, strip_suffixes=DEFAULT_STRIP_SUFFIXES if strip else ())
    try:
        async with client(app) as c:
            r = await c.post("/get_reward", json=one(prompt, code + "\n<|im_end|>", ADD_TESTS))
            health = (await c.get("/health")).json()
    finally:
        stack.close()
    out = r.json()
    if strip:
        assert out["extra_logs"]["source/tests"] == [1.0]
        assert out["extra_logs"]["source/len"] == [float(len(code))]  # what the source saw
        assert health["end_markers_stripped"] == 1
    else:  # the marker is run as code: a syntax error
        assert out["extra_logs"]["source/tests"] == [0.0]
        assert out["extra_logs"]["source/len"] == [float(len(code + "\n<|im_end|>"))]


# -- labels: split and group_size ----------------------------------------------------------------


def test_labels_mark_evaluation_and_group_size():
    labels = [
        json.dumps({"split": "test"}),  # only a control key: still an object, not a reference
        {"split": "Validation", "reference": "r"},
        {"split": "train", "group_size": 2},
        json.dumps({"group_size": "4", "uid": 7}),
        "plain reference",
        None,
    ]
    body = {"query": ["p a"] * 6, "prompts": ["p "] * 6, "labels": labels}
    parsed = read_request(body, across_requests=True)
    assert parsed.evaluation == [True, True, False, False, False, False]
    assert parsed.group_sizes == [None, None, 2, 4, None, None]
    s = parsed.samples
    assert s[0].reference is None and s[0].metadata == {"split": "test"}
    assert s[4].reference == "plain reference"
    # evaluation samples never share a group with training samples of the same prompt
    assert s[0].group == s[1].group == f"eval:{s[5].group}"
    assert s[3].group == "uid:7"
    # one request or many: the same groups and ids
    assert [x.id for x in s] == [x.id for x in parse_request(body, across_requests=True)[0]]


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("label", "needle"),
    [
        ({"group_size": 0}, "labels[0].group_size"),
        ({"group_size": True}, "labels[0].group_size"),
        ({"split": 3}, "labels[0].split"),
        ({"group_size": 40}, "more than --max-held 32"),
    ],
)
async def test_bad_label_controls_are_422(label, needle):
    app = create_app(load_stack(NOISY), group_size=4, max_held=32)
    async with client(app) as c:
        r = await c.post("/get_reward", json=one("p", "xx", label))
    assert r.status_code == 422 and needle in r.json()["error"]


def bodies_for(prompts, lengths, label) -> list[dict]:
    return [one(p, "x" * n, label) for p in prompts for n in lengths]


async def timed_posts(c, bodies) -> list[tuple[float, dict]]:
    async def post(b):
        start = time.monotonic()
        r = await c.post("/get_reward", json=b)
        assert r.status_code == 200, r.text
        return time.monotonic() - start, r.json()

    return await asyncio.gather(*(post(b) for b in bodies))


@pytest.mark.anyio
@pytest.mark.parametrize("how", ["--eval-group-size", "label group_size"])
async def test_eval_groups_of_four_are_answered_without_waiting_the_deadline(how):
    """Training n = 8, eval n = 4 (OpenRLHF's default): eval groups complete at 4."""
    stack = load_stack(NOISY)
    if how == "--eval-group-size":
        app = create_app(stack, group_size=8, group_timeout_s=30, eval_group_size=4)
        label = {"split": "test"}
    else:
        app = create_app(stack, group_size=8, group_timeout_s=30)
        label = {"split": "test", "group_size": 4}
    prompts = ["E1: ", "E2: ", "E3: "]
    evals = bodies_for(prompts, [3, 4, 9, 20], label)
    # training samples of the same prompts, in flight at the same time: separate groups of 8
    train = bodies_for(prompts[:1], [1, 2, 3, 4, 5, 6, 7, 30], None)
    async with client(app) as c:
        answers = await timed_posts(c, evals + train)
        health = (await c.get("/health")).json()
    want = whole_group_rewards(stack, evals) + whole_group_rewards(stack, train)
    for (took, out), w in zip(answers, want, strict=True):
        assert took < 5  # not the 30 s deadline
        assert out["rewards"] == [w.reward]
        assert out["extra_logs"]["partial_group"] == [0.0]
    assert [a[1]["extra_logs"]["group_size"] for a in answers] == [[4.0]] * 12 + [[8.0]] * 8
    assert health["groups"]["groups_complete"] == 4 and health["evaluation_samples"] == 12


@pytest.mark.anyio
async def test_eval_samples_without_an_eval_size_are_groups_of_one():
    stack = load_stack(NOISY)
    app = create_app(stack, group_size=8, group_timeout_s=30)
    async with client(app) as c:
        answers = await timed_posts(c, bodies_for(["E: "], [3, 4, 20], {"split": "eval"}))
    for took, out in answers:
        assert took < 5
        assert out["extra_logs"]["group_size"] == [1.0]
        assert out["rewards"] == out["scores"]  # a group of one: its raw score


def test_eval_labels_through_openrlhf_client_and_serve_flags(tmp_path):
    """``serve --group-size 8 --eval-group-size 4``, OpenRLHF's own client, labels marked test."""
    agent = require("openrlhf.utils.agent")
    stack_file = tmp_path / "stack.yaml"
    stack_file.write_text(json.dumps(NOISY))
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
    }
    cmd = [sys.executable, "-m", "rewardplug", "serve", str(stack_file), "--port", str(port)]
    cmd += ["--group-size", "8", "--eval-group-size", "4", "--group-timeout", "30"]
    label = json.dumps({"reference": "x", "split": "test"})  # as a dataset's label column holds it
    bodies = bodies_for(["Q1: ", "Q2: "], [3, 4, 9, 20], label)
    with server_process(cmd, port, env) as url:
        executor = agent.SingleTurnAgentExecutor(f"{url}/get_reward")

        async def fetch(b):
            start = time.monotonic()
            got = await executor._fetch_rewards_via_http(b["query"], b["prompts"], b["labels"])
            return time.monotonic() - start, got[0]

        async def fetch_all():
            return await asyncio.gather(*(fetch(b) for b in bodies))

        answers = asyncio.run(fetch_all())
        health = httpx.get(f"{url}/health").json()
    want = whole_group_rewards(load_stack(NOISY), bodies)
    for (took, out), w in zip(answers, want, strict=True):
        assert took < 5, took
        assert out["rewards"] == [w.reward]
        assert out["extra_logs"]["group_size"] == [4.0]
        assert out["extra_logs"]["partial_group"] == [0.0]
    assert all(w.n_tiers == 3 for w in want)  # tie-grouped among the 4: 3 and 4 tie
    assert health["groups"]["eval_group_size"] == 4 and health["groups"]["groups_partial"] == 0


# -- the fill value --------------------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("grouped", [False, True])
async def test_filled_rewards_are_masked_counted_and_warned_once(grouped, capsys):
    stack = load_stack(
        {
            "sources": [
                {
                    "name": "ref",
                    "use": "python",
                    "with": {"function": "rp_test_rewards:contains_reference"},
                }
            ]
        }
    )
    app = create_app(stack, abstain_reward=-1.0, group_size=1 if grouped else None)
    async with client(app) as c:
        # no label -> no reference -> the function returns None -> the stack abstains
        a = (await c.post("/get_reward", json=one("p", "42"))).json()
        b = (await c.post("/get_reward", json=one("p", "42", "42"))).json()
        d = (await c.post("/get_reward", json=one("q", "7"))).json()
        health = (await c.get("/health")).json()
    assert a["rewards"] == [-1.0] and a["extra_logs"]["reward_mask"] == [0.0]
    assert a["extra_logs"]["abstained"] == [1.0]
    assert b["rewards"] == [1.0] and b["extra_logs"]["reward_mask"] == [1.0]
    assert d["extra_logs"]["reward_mask"] == [0.0]
    assert health["filled"] == 2 and health["abstain_reward"] == -1.0
    err = capsys.readouterr().err
    assert err.count("fill value -1.0") == 1 and "reward_mask" in err


# -- admission in grouped mode ---------------------------------------------------------------------


@pytest.mark.anyio
async def test_max_queue_does_not_cap_grouped_requests():
    app = create_app(load_stack(NOISY), group_size=4, max_queue=2, max_held=8)
    body = {"query": [f"p{'x' * n}" for n in range(4)], "prompts": ["p"] * 4}
    async with client(app) as c:
        ok = await c.post("/get_reward", json=body)  # 4 samples > max_queue 2: still admitted
        too_big = await c.post("/get_reward", json={"query": ["pa"] * 9, "prompts": ["p"] * 9})
        health = (await c.get("/health")).json()
    assert ok.status_code == 200 and ok.json()["extra_logs"]["group_size"] == [4.0] * 4
    assert too_big.status_code == 413 and "--max-held 8" in too_big.json()["error"]
    assert health["mode"] == "grouped" and health["max_queue"] is None
    assert health["groups"]["max_held"] == 8 and health["requests"] == 1


def test_serve_flag_combinations_are_checked(tmp_path):
    stack = tmp_path / "s.yaml"
    stack.write_text(json.dumps(NOISY))
    runner = CliRunner()
    r = runner.invoke(cli, ["serve", str(stack), "--eval-group-size", "4"])
    assert r.exit_code == 2 and "--eval-group-size only applies with --group-size" in r.output
    r = runner.invoke(cli, ["serve", str(stack), "--max-held", "9"])
    assert r.exit_code == 2 and "--max-held only applies" in r.output
    r = runner.invoke(cli, ["serve", str(stack), "--no-strip-suffix", "--strip-suffix", "x"])
    assert r.exit_code == 2 and "contradict" in r.output


def test_serve_warns_when_its_timeouts_outlast_openrlhf_client(tmp_path):
    """--admission-timeout + --group-timeout must stay under OpenRLHF's 180 s per attempt."""
    stack_file = tmp_path / "stack.yaml"
    stack_file.write_text(json.dumps(NOISY))
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
    }
    base = [sys.executable, "-m", "rewardplug", "serve", str(stack_file), "--group-size", "8"]
    for extra, warns in ((["--group-timeout", "100"], True), ([], False)):
        port = free_port()
        lines: list[str] = []
        with server_process([*base, "--port", str(port), *extra], port, env, stderr_lines=lines):
            pass
        text = "".join(lines)
        assert ("OpenRLHF's 180 s client timeout" in text) == warns, text
        assert "groups of 8 assembled across requests" in text
