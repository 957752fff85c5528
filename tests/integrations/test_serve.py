"""The OpenRLHF-protocol reward service: protocol, grouping, micro-batching, errors, overload."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from serving import free_port, server_process

from rewardplug import load_stack
from rewardplug.server import create_app

HERE = Path(__file__).resolve().parent


def python_stack(function: str = "rp_test_rewards:length", **kwargs):
    return load_stack(
        {
            "sources": [
                {"name": "len", "use": "python", "with": {"function": function, "kwargs": kwargs}}
            ],
        }
    )


def client(app) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


def body(prompts_responses, labels=None):
    prompts = [p for p, _ in prompts_responses]
    query = [p + r for p, r in prompts_responses]
    out = {"query": query, "prompts": prompts}
    if labels is not None:
        out["labels"] = labels
    return out


@pytest.mark.anyio
async def test_protocol_groups_and_prefix_stripping():
    app = create_app(python_stack())
    pairs = [
        ("Q1: ", "aaaa"),
        ("Q1: ", "aa"),
        ("Q1: ", "aaaa"),
        ("Q1: ", "a"),
        ("Question two? ", "bbbbbbbb"),
        ("Question two? ", "b"),
    ]
    async with client(app) as c:
        for path in ("/get_reward", "/"):
            r = await c.post(path, json=body(pairs))
            assert r.status_code == 200, r.text
            out = r.json()
            assert set(out) >= {"rewards", "scores", "extra_logs"}
            # The score is the length of the *response*: the prompt prefix was stripped.
            assert out["extra_logs"]["source/len"] == [4.0, 2.0, 4.0, 1.0, 8.0, 1.0]
            assert out["scores"] == [4.0, 2.0, 4.0, 1.0, 8.0, 1.0]
            # Each prompt is its own group: tier 0 is the best *within* each group.
            assert out["extra_logs"]["tier"] == [0.0, 1.0, 0.0, 2.0, 0.0, 1.0]
            assert out["extra_logs"]["n_tiers"] == [3.0, 3.0, 3.0, 3.0, 2.0, 2.0]
            assert out["rewards"][0] == out["rewards"][2] == 4.0
            assert out["extra_logs"]["abstained"] == [0.0] * 6
            assert out["extra_logs"]["prompt_not_found"] == [0.0] * 6


@pytest.mark.anyio
async def test_uncertain_scores_are_tied():
    app = create_app(python_stack("rp_test_rewards:noisy_length"))
    pairs = [("P", "x" * 10), ("P", "x" * 11), ("P", "x" * 30)]
    async with client(app) as c:
        out = (await c.post("/get_reward", json=body(pairs))).json()
    # 10 and 11 characters overlap in their draws: one tier, one reward; 30 is better.
    assert out["rewards"][0] == out["rewards"][1] == pytest.approx(10.5)
    assert out["rewards"][2] == 30.0


@pytest.mark.anyio
async def test_labels_become_references_and_abstentions_are_marked():
    app = create_app(python_stack("rp_test_rewards:contains_reference"), abstain_reward=-1.0)
    pairs = [("P", "the answer is 42"), ("P", "no idea"), ("P", "maybe 42"), ("P", "x")]
    labels = ["42", "42", json.dumps({"reference": "maybe"}), None]
    async with client(app) as c:
        out = (await c.post("/get_reward", json=body(pairs, labels))).json()
    assert out["extra_logs"]["source/len"][:3] == [1.0, 0.0, 1.0]
    # No label -> the function returns None -> the stack abstains; the protocol needs a number.
    assert out["rewards"][3] == -1.0
    assert out["extra_logs"]["abstained"] == [0.0, 0.0, 0.0, 1.0]
    assert out["reasons"][3] and "returned None" in out["reasons"][3]


@pytest.mark.anyio
async def test_prompt_not_in_query_is_reported():
    app = create_app(python_stack())
    async with client(app) as c:
        out = (
            await c.post(
                "/", json={"query": ["<s>PROMPT resp", "zzz"], "prompts": ["PROMPT ", "other"]}
            )
        ).json()
    assert out["extra_logs"]["source/len"] == [4.0, 3.0]
    assert out["extra_logs"]["prompt_not_found"] == [0.0, 1.0]


@pytest.mark.parametrize(
    ("payload", "status", "needle"),
    [
        (b"{not json", 400, "malformed JSON"),
        (json.dumps({"query": ["a", "b"], "prompts": ["a"]}).encode(), 422, "'prompts' has 1"),
        (
            json.dumps({"query": ["a"], "prompts": ["a"], "labels": ["x", "y"]}).encode(),
            422,
            "'labels' has 2",
        ),
        (json.dumps({"query": ["a"]}).encode(), 422, "'prompts' is missing"),
        (json.dumps({"query": "a", "prompts": "a"}).encode(), 422, "must be a list"),
        (json.dumps([1, 2]).encode(), 422, "JSON object"),
        (json.dumps({"query": [1], "prompts": ["a"]}).encode(), 422, "query[0]"),
        (json.dumps({"query": ["a"], "prompts": ["a"], "extra": 1}).encode(), 422, "unknown keys"),
        (
            json.dumps({"query": ["a"], "prompts": ["a"], "labels": [[1]]}).encode(),
            422,
            "labels[0]",
        ),
    ],
)
@pytest.mark.anyio
async def test_malformed_requests_get_4xx_with_a_message(payload, status, needle):
    app = create_app(python_stack())
    async with client(app) as c:
        r = await c.post(
            "/get_reward", content=payload, headers={"content-type": "application/json"}
        )
    assert r.status_code == status
    assert needle in r.json()["error"]


@pytest.mark.anyio
async def test_concurrent_requests_are_micro_batched_and_answered_separately():
    app = create_app(python_stack("rp_test_rewards:slow_length", delay=0.3), max_wait_ms=100)
    requests = [body([(f"prompt {i}", "y" * (i + 1)), (f"prompt {i}", "y")]) for i in range(8)]
    async with client(app) as c:
        answers = await asyncio.gather(*(c.post("/get_reward", json=b) for b in requests))
        health = (await c.get("/health")).json()
    for i, r in enumerate(answers):
        assert r.status_code == 200
        assert r.json()["extra_logs"]["source/len"] == [float(i + 1), 1.0]
    # Eight requests, far fewer scoring calls: they were merged into batches of whole requests.
    assert health["requests"] == 8
    assert health["batches"] <= 3
    assert health["largest_batch_requests"] >= 4
    assert health["samples"] == 16


@pytest.mark.anyio
async def test_a_request_gets_the_same_answer_alone_or_batched_with_others():
    app = create_app(python_stack("rp_test_rewards:noisy_length"), max_wait_ms=200)
    mine = body([("shared prompt ", "x" * n) for n in (3, 4, 9, 20)])
    others = [body([("shared prompt ", "y" * n) for n in (1, 30, 31)]) for _ in range(3)]
    async with client(app) as c:
        alone = (await c.post("/get_reward", json=mine)).json()
        together = await asyncio.gather(*(c.post("/", json=b) for b in [*others, mine]))
        assert (await c.get("/health")).json()["largest_batch_requests"] == 4
    # Same prompt text in other requests of the same batch: still separate groups.
    assert together[-1].json() == alone


@pytest.mark.anyio
async def test_max_batch_never_splits_a_request():
    app = create_app(python_stack(), max_batch=3, max_wait_ms=50)
    requests = [body([("p", "a"), ("p", "bb"), ("p", "ccc"), ("p", "dddd")]) for _ in range(3)]
    async with client(app) as c:
        answers = await asyncio.gather(*(c.post("/", json=b) for b in requests))
    batcher = app.state.batcher
    # Every batch holds whole requests of 4 samples (a request larger than max_batch goes alone).
    assert list(batcher.stats.batch_sizes) == [4, 4, 4]
    for r in answers:
        assert r.json()["extra_logs"]["tier"] == [3.0, 2.0, 1.0, 0.0]


@pytest.mark.anyio
async def test_overload_answers_503_and_keeps_serving():
    app = create_app(
        python_stack("rp_test_rewards:slow_length", delay=0.4), max_queue=8, max_wait_ms=1
    )
    requests = [body([(f"p{i}", "ab")] * 4) for i in range(6)]
    async with client(app) as c:
        answers = await asyncio.gather(*(c.post("/get_reward", json=b) for b in requests))
        codes = sorted(r.status_code for r in answers)
        assert codes.count(200) >= 2 and codes.count(503) >= 1, codes
        rejected = next(r for r in answers if r.status_code == 503)
        assert "overloaded" in rejected.json()["error"] and rejected.headers["retry-after"] == "1"
        too_big = await c.post("/get_reward", json=body([("p", "a")] * 9))
        assert too_big.status_code == 413 and "--max-queue" in too_big.json()["error"]
        # Once the queue drained, the service answers normally again.
        again = await c.post("/get_reward", json=body([("p", "abc")]))
        assert again.status_code == 200 and again.json()["rewards"] == [3.0]
        assert (await c.get("/health")).json()["admitted"] == 0


def test_real_socket_with_uvicorn_in_a_thread():
    import uvicorn

    port = free_port()
    app = create_app(python_stack())
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.05)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as c:
            health = c.get("/health").json()
            assert health["status"] == "ok" and health["sources"] == ["len"]
            r = c.post("/get_reward", json=body([("p ", "four"), ("p ", "sixsix")]))
            assert r.json()["rewards"] == [4.0, 6.0]
            assert c.post("/get_reward", content=b"[").status_code == 400
            assert c.get("/get_reward").status_code == 405
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_serve_process_binds_loopback(tmp_path):
    stack = tmp_path / "stack.yaml"
    stack.write_text(
        "sources:\n  - name: len\n    use: python\n    with: {function: 'rp_test_rewards:length'}\n"
    )
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
    }
    code = f"from rewardplug.server import serve; serve({str(stack)!r}, port={port})"
    with server_process([sys.executable, "-c", code], port, env):
        r = httpx.post(f"http://127.0.0.1:{port}/get_reward", json=body([("q", "abc")]))
        assert r.json()["rewards"] == [3.0]
        # Loopback only by default: the port is not open on the machine's other addresses.
        others = {a[4][0] for a in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET)}
        for address in others - {"127.0.0.1"}:
            with socket.socket() as s, pytest.raises(OSError):
                s.settimeout(1)
                s.connect((address, port))
