"""``rewardplug serve --group-size``: groups assembled across one-sample requests (OpenRLHF >= 0.9.1).

The last test drives OpenRLHF's own HTTP client (``SingleTurnAgentExecutor``, installed from PyPI
with ``--no-deps``) against a real ``rewardplug serve`` process.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import sys
import time
from pathlib import Path

import httpx
import pytest
from serving import free_port, server_process

from rewardplug import load_stack
from rewardplug.integrations.openrlhf import parse_request
from rewardplug.server import SINGLETON_WARNING, create_app
from tests.frameworks import require

HERE = Path(__file__).resolve().parent
NOISY = {
    "sources": [
        {"name": "len", "use": "python", "with": {"function": "rp_test_rewards:noisy_length"}}
    ]
}
PROMPTS = ["Q1: ", "Question two? ", "third: "]
#: lengths chosen so that each group has ties (within 2) and confident differences
LENGTHS = [[4, 5, 9, 20], [1, 2, 3, 12], [7, 7, 30, 31]]


def one_sample_bodies(labels: bool = False) -> list[dict]:
    out = []
    for p, lengths in zip(PROMPTS, LENGTHS, strict=True):
        for n in lengths:
            body = {"query": [p + "x" * n], "prompts": [p]}
            if labels:
                body["labels"] = [json.dumps({"reference": "x", "group": f"g-{p}"})]
            out.append(body)
    return out


def whole_group_rewards(stack, bodies: list[dict]) -> list[dict]:
    """The answer each one-sample request should get: its group scored in one call."""
    merged = {k: [v for b in bodies for v in b[k]] for k in bodies[0]}
    samples, _ = parse_request(merged, across_requests=True)
    by_group: dict[str, list] = {}
    for s in samples:
        by_group.setdefault(s.group, []).append(s)
    scored = {}
    for members in by_group.values():
        for r in stack.score(members):
            scored[r.id] = r
    return [scored[s.id] for s in samples]


def client(app) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


@pytest.mark.anyio
@pytest.mark.parametrize("labels", [False, True])
async def test_one_sample_requests_in_any_order_get_whole_group_rewards(labels):
    stack = load_stack(NOISY)
    bodies = one_sample_bodies(labels)
    want = whole_group_rewards(stack, bodies)
    order = list(range(len(bodies)))
    random.Random(7).shuffle(order)
    app = create_app(stack, group_size=4, group_timeout_s=30)
    async with client(app) as c:
        answers = await asyncio.gather(*(c.post("/get_reward", json=bodies[i]) for i in order))
        health = (await c.get("/health")).json()
    got = {i: a.json() for i, a in zip(order, answers, strict=True)}
    for i, w in enumerate(want):
        out = got[i]
        assert out["rewards"] == [w.reward]
        assert out["extra_logs"]["tier"] == [float(w.tier)]
        assert out["extra_logs"]["n_tiers"] == [float(w.n_tiers)]
        assert out["extra_logs"]["group_size"] == [4.0]
        assert out["extra_logs"]["partial_group"] == [0.0]
    # the groups really have several tiers: tie-grouping was not a no-op
    assert {w.n_tiers for w in want} == {2, 3}
    assert health["groups"]["groups_complete"] == 3 and health["groups"]["held"] == 0


@pytest.mark.anyio
async def test_without_group_size_singletons_warn_once(capsys):
    app = create_app(load_stack(NOISY))
    async with client(app) as c:
        for body in one_sample_bodies()[:3]:
            out = (await c.post("/get_reward", json=body)).json()
            assert out["extra_logs"]["group_size"] == [1.0]
        assert (await c.get("/health")).json()["single_member_groups_warning"] is True
    assert capsys.readouterr().err.count(SINGLETON_WARNING) == 1


@pytest.mark.anyio
async def test_an_incomplete_group_is_answered_at_its_deadline_and_says_so():
    stack = load_stack(NOISY)
    bodies = one_sample_bodies()[:3]  # 3 of the first prompt's 4 samples
    app = create_app(stack, group_size=4, group_timeout_s=0.3)
    async with client(app) as c:
        start = time.monotonic()
        answers = await asyncio.gather(*(c.post("/get_reward", json=b) for b in bodies))
        waited = time.monotonic() - start
    assert 0.25 < waited < 10
    want = whole_group_rewards(stack, bodies)
    for a, w in zip(answers, want, strict=True):
        out = a.json()
        assert out["rewards"] == [w.reward]
        assert out["extra_logs"]["partial_group"] == [1.0]
        assert out["extra_logs"]["group_size"] == [3.0]


@pytest.mark.anyio
async def test_grouped_mode_bad_input_and_overload():
    app = create_app(
        load_stack(NOISY),
        group_size=4,
        group_timeout_s=2,
        max_open_groups=1,
        admission_timeout_s=0.2,
    )
    async with client(app) as c:
        empty = await c.post("/get_reward", json={"query": [], "prompts": [], "labels": []})
        assert empty.status_code == 200 and empty.json()["rewards"] == []
        bad = await c.post(
            "/get_reward", json={"query": ["pa"], "prompts": ["p"], "labels": [{"group": [1]}]}
        )
        assert bad.status_code == 422 and "labels[0].group" in bad.json()["error"]
        # one group is open: a new group waits for room, then is refused before admission ...
        held = [
            asyncio.ensure_future(c.post("/get_reward", json={"query": ["p0"], "prompts": ["p"]}))
        ]
        await asyncio.sleep(0.1)
        full = await c.post("/get_reward", json={"query": ["qz"], "prompts": ["q"]})
        assert full.status_code == 503 and full.headers["retry-after"] == "1"
        # ... while the started group's later members are always admitted, and it completes
        held += [
            asyncio.ensure_future(
                c.post("/get_reward", json={"query": [f"p{n}"], "prompts": ["p"]})
            )
            for n in range(1, 4)
        ]
        answers = await asyncio.gather(*held)
        assert [r.status_code for r in answers] == [200] * 4
        assert all(r.json()["extra_logs"]["partial_group"] == [0.0] for r in answers)


def test_openrlhf_client_one_sample_per_request_against_rewardplug_serve(tmp_path):
    """OpenRLHF's own client posts one sample per request (as its agent executor does)."""
    agent = require("openrlhf.utils.agent")
    stack_file = tmp_path / "stack.yaml"
    stack_file.write_text(json.dumps(NOISY))
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
    }
    cmd = [sys.executable, "-m", "rewardplug", "serve", str(stack_file), "--port", str(port)]
    with server_process([*cmd, "--group-size", "4", "--group-timeout", "30"], port, env) as url:
        executor = agent.SingleTurnAgentExecutor(f"{url}/get_reward")
        bodies = one_sample_bodies(labels=True)
        order = list(range(len(bodies)))
        random.Random(3).shuffle(order)

        async def fetch_all():
            # exactly the call SingleTurnAgentExecutor.execute makes for each generated sample
            return await asyncio.gather(
                *(
                    executor._fetch_rewards_via_http(
                        bodies[i]["query"], bodies[i]["prompts"], bodies[i]["labels"]
                    )
                    for i in order
                )
            )

        # one answer per reward server (one server here), as the executor's rewards_info_list
        answers = {i: a[0] for i, a in zip(order, asyncio.run(fetch_all()), strict=True)}
        want = whole_group_rewards(load_stack(NOISY), bodies)
        for i, w in enumerate(want):
            assert answers[i]["rewards"] == [w.reward]
            assert answers[i]["extra_logs"]["tier"] == [float(w.tier)]
            assert answers[i]["extra_logs"]["group_size"] == [4.0]
        assert {w.n_tiers for w in want} == {2, 3}


@pytest.mark.anyio
async def test_the_fastapi_route_answers_like_the_fast_path():
    service = create_app(load_stack(NOISY))
    body = {"query": ["Q1: xxxx", "Q1: x", "Q1: xxxxxxxxxxxxx"], "prompts": ["Q1: "] * 3}
    async with client(service) as fast, client(service.fastapi) as plain:
        a = await fast.post("/get_reward", json=body)
        b = await plain.post("/get_reward", json=body)
        assert a.status_code == b.status_code == 200
        assert a.json() == b.json()
        bad_a = await fast.post("/", content=b"[")
        bad_b = await plain.post("/", content=b"[")
        assert bad_a.status_code == bad_b.status_code == 400
        assert bad_a.json() == bad_b.json()
        # everything else is FastAPI's
        assert (await fast.get("/get_reward")).status_code == 405
        assert (await fast.get("/health")).json()["sources"] == ["len"]


@pytest.mark.anyio
async def test_an_oversized_body_is_refused_not_buffered(monkeypatch):
    service = create_app(load_stack(NOISY))
    monkeypatch.setattr(type(service), "MAX_BODY_BYTES", 1000)
    big = {"query": ["p" + "x" * 2000], "prompts": ["p"]}
    async with client(service) as c:
        r = await c.post("/get_reward", json=big)
        assert r.status_code == 413 and "1000 bytes" in r.json()["error"]
        ok = await c.post("/get_reward", json={"query": ["pxx"], "prompts": ["p"]})
        assert ok.status_code == 200
