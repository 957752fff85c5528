"""NeMo Gym: rewardplug's resources server, built on NeMo Gym 0.7.0's own ``SimpleResourcesServer``
and served by its own ``setup_webserver`` (its ``/verify`` route with its judge failsafe and
tracing wrappers) with uvicorn on 127.0.0.1.

``make frameworks`` installs ``nemo-gym`` 0.7.0 from PyPI into ``.frameworks/nemo_gym``. Requests
are made as NeMo Gym's ``simple_agent`` makes them (the task row, with the collector's
``_ng_task_index`` / ``_ng_rollout_index``, and the model's ``response`` as NeMo Gym's own
``NeMoGymResponse`` serializes it), many in flight at once and out of order; answers are checked
with NeMo Gym's own ``BaseVerifyResponse``, failure vocabulary and ``select_measured``.
"""

from __future__ import annotations

import asyncio
import random
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest.mock import MagicMock

import httpx
import pytest

from rewardplug.integrations import nemo_gym as ng
from rewardplug.integrations import verl
from rewardplug.stack import load_stack
from tests.frameworks import require
from tests.integrations.serving import free_port

STACK = (
    "sources:\n"
    "  - name: len\n    use: python\n    with: {function: 'rp_test_rewards:noisy_length'}\n"
    "  - name: ref\n    use: python\n    with: {function: 'test_nemo_gym:needs_reference'}\n"
)
BROKEN = (
    "sources:\n  - name: bad\n    use: python\n    with: {function: 'rp_test_rewards:broken'}\n"
)
G = 8
FILL = -1.0


def needs_reference(completions: list[str], **columns: Any) -> list[float | None]:
    """1.0 / 0.0: whether the reference occurs in the completion; None (abstain) without one."""
    refs = columns.get("reference") or [None] * len(completions)
    return [None if r is None else float(r in c) for c, r in zip(completions, refs, strict=True)]


@pytest.fixture(scope="module")
def gym() -> Any:
    return require("nemo_gym.base_resources_server")


def response_json(rid: str, text: str) -> dict[str, Any]:
    """A policy model's answer as NeMo Gym serializes it (its own response model)."""
    from nemo_gym.openai_utils import (
        NeMoGymResponse,
        NeMoGymResponseOutputMessage,
        NeMoGymResponseOutputText,
    )

    message = NeMoGymResponseOutputMessage(
        id=f"msg_{rid}",
        content=[NeMoGymResponseOutputText(annotations=[], text=text, type="output_text")],
        role="assistant",
        status="completed",
        type="message",
    )
    response = NeMoGymResponse(
        id=rid,
        created_at=0.0,
        model="policy",
        object="response",
        output=[message],
        parallel_tool_calls=False,
        tool_choice="none",
        tools=[],
    )
    return response.model_dump(mode="json")


def row(task: int, rollout: int, text: str, answer: str | None = "x") -> dict[str, Any]:
    """What the simple agent posts to /verify: the task row plus the model's response."""
    body: dict[str, Any] = {
        "responses_create_params": {
            "input": [{"role": "user", "content": f"Write something for task {task}."}]
        },
        "agent_ref": {"name": "rewardplug_simple_agent"},
        "_ng_task_index": task,
        "_ng_rollout_index": rollout,
        "response": response_json(f"resp_{task}_{rollout}", text),
    }
    if answer is not None:
        body["expected_answer"] = answer
    return body


class Served:
    """rewardplug's resources server (NeMo Gym's app) under uvicorn on 127.0.0.1."""

    def __init__(self, server: Any):
        import uvicorn

        self.server = server
        self.port = free_port()
        config = uvicorn.Config(
            server.setup_webserver(), host="127.0.0.1", port=self.port, log_level="warning"
        )
        self.uvicorn = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.uvicorn.run, daemon=True)
        self.stack: Any = None  # the same stack, loaded apart: what the answers must equal

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.uvicorn.started:
            assert time.monotonic() < deadline, "the resources server did not start"
            time.sleep(0.02)
        return f"http://127.0.0.1:{self.port}"

    def __exit__(self, *_: Any) -> None:
        self.uvicorn.should_exit = True
        self.thread.join(timeout=30)


@pytest.fixture
def serve(gym, tmp_path) -> Iterator[Any]:
    from nemo_gym.server_utils import ServerClient

    def start(stack: str = STACK, **config: Any) -> Served:
        path = tmp_path / "stack.yaml"
        path.write_text(stack)
        settings = dict(num_rollouts_per_prompt=G, group_timeout_s=3.0, abstain_reward=FILL)
        cfg = ng.RewardplugResourcesServerConfig(
            host="127.0.0.1",
            port=0,
            entrypoint="app.py",
            name="rewardplug",
            stack=str(path),
            **{**settings, **config},
        )
        # NeMo Gym's own tests build servers so: the client talks to other Gym servers only
        server = ng.RewardplugResourcesServer(
            config=cfg, server_client=MagicMock(spec=ServerClient)
        )
        served = Served(server)
        served.stack = load_stack(path)
        return served

    yield start
    verl.clear_cache()


async def post_all(url: str, bodies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    limits = httpx.Limits(max_connections=len(bodies))
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:
        answers = await asyncio.gather(*(client.post("/verify", json=b) for b in bodies))
    for a in answers:
        assert a.status_code == 200, a.text
    return [a.json() for a in answers]


def expected(stack: Any, bodies: list[dict[str, Any]]) -> list[Any]:
    """Scoring the whole group at once with the stack, from the requests as the server reads
    them (NeMo Gym's request model fills the Responses API defaults)."""
    request = ng.RewardplugVerifyRequest
    data = [request.model_validate(b).model_dump() for b in bodies]
    key = ng.group_key(data[0])
    assert all(ng.group_key(d) == key for d in data)
    return stack.score([ng.gym_sample(d, key) for d in data])


def test_verify_discretizes_whole_groups_across_requests(serve, gym):
    from nemo_gym.base_resources_server import BaseVerifyResponse
    from nemo_gym.failure_kinds import is_namespaced, is_registered
    from nemo_gym.reward_profile import select_measured

    rng = random.Random(30)
    groups: dict[int, list[dict[str, Any]]] = {}
    for task in range(37):  # 37 whole groups of 8 ...
        groups[task] = [
            row(task, r, "x" * rng.randint(3, 40), answer=None if (task, r) == (5, 3) else "x")
            for r in range(G)
        ]
    groups[99] = [row(99, r, "y" * (4 + 5 * r)) for r in range(4)]  # ... and one never complete
    bodies = [b for g in groups.values() for b in g]
    assert len(bodies) == 300
    order = list(range(len(bodies)))
    rng.shuffle(order)

    served = serve()
    start = time.monotonic()
    with served as url:
        shuffled = asyncio.run(post_all(url, [bodies[i] for i in order]))
    elapsed = time.monotonic() - start
    answers = [None] * len(bodies)
    for i, a in zip(order, shuffled, strict=True):
        answers[i] = a
    by_task: dict[int, list[dict[str, Any]]] = {}
    for a in answers:
        BaseVerifyResponse.model_validate(a)  # NeMo Gym's own schema
        by_task.setdefault(a["_ng_task_index"], []).append(a)
    assert elapsed < 30

    for task, members in groups.items():
        got = sorted(by_task[task], key=lambda a: a["_ng_rollout_index"])
        want = expected(served.stack, members)
        for a, w in zip(got, want, strict=True):
            assert a["rewardplug"]["raw"] == pytest.approx(w.raw)
            assert a["rewardplug"]["tier"] == w.tier
            if w.reward is None:  # the abstaining rollout: typed, masked, never an untyped 0.0
                assert (task, a["_ng_rollout_index"]) == (5, 3)
                assert a["mask_sample"] is True and a["instance_config"]["mask_sample"] is True
                assert a["failure_kind"] == ng.ABSTAINED and is_namespaced(a["failure_kind"])
                assert "ref" in a["failure_reason"]
                assert a["reward"] == FILL and a["rewardplug"]["abstained"] is True
            else:
                assert a["reward"] == pytest.approx(w.reward)
                assert a["mask_sample"] is False
        n = len(members)
        assert all(a["rewardplug"]["group_size"] == n for a in got)
        partial = task == 99
        assert all(a["rewardplug"]["partial_group"] is partial for a in got)
        if partial:  # discretized with its 4 members at the deadline, the reward still valid
            assert {a["failure_kind"] for a in got} == {ng.COHORT_INCOMPLETE}
            assert is_registered(ng.COHORT_INCOMPLETE)
            assert all(a["mask_sample"] is False for a in got)
        elif task != 5:
            assert all(a["failure_kind"] is None for a in got)
    # the tie-grouping is real: some group has members sharing a reward
    assert any(len({a["reward"] for a in by_task[t]}) < G for t in range(37))

    # NeMo Gym's metrics leave the masked rollout out of the quality set, and only it
    rows = [{k: b[k] for k in ("_ng_task_index", "_ng_rollout_index")} for b in bodies]
    measured_rows, measured, masked, _ = select_measured(rows, answers)
    assert [(m["_ng_task_index"], m["_ng_rollout_index"]) for m in masked] == [(5, 3)]
    assert len(measured) == len(measured_rows) == 299


def test_a_resent_request_gets_the_same_answer_and_joins_once(serve):
    members = [row(7, 0, "x" * 5), row(7, 1, "x" * 30)]
    with serve(num_rollouts_per_prompt=2, group_timeout_s=30.0) as url:
        # the first member twice (a connection dropped and NeMo Gym's client resent it)
        first, again, second = asyncio.run(post_all(url, [members[0], members[0], members[1]]))
        later = asyncio.run(post_all(url, [members[0]]))[0]  # resent after it was answered
    assert first == again == later
    assert first["rewardplug"]["group_size"] == 2 and not first["rewardplug"]["partial_group"]
    assert second["rewardplug"]["tier"] == 0 and first["rewardplug"]["tier"] == 1


def test_group_keys_follow_nemo_gyms_cohort_fields(gym):
    base = row(3, 0, "a")
    assert ng.group_key(base).startswith("task:3:")
    assert ng.group_key({**base, "_ng_task_index": 4}) != ng.group_key(base)
    other_prompt = {**base, "responses_create_params": {"input": "another prompt"}}
    assert ng.group_key(other_prompt) != ng.group_key(base)
    named = {**base, "_ng_group_id": "g-1", "_ng_group_attempt": 2}
    assert ng.group_key(named) == "group:g-1:2"
    untracked = {k: v for k, v in base.items() if not k.startswith("_ng_")}
    assert ng.group_key(untracked).startswith("prompt:")
    sample = ng.gym_sample({**base, "verifier_metadata": {"tests": {"kind": "io", "cases": []}}})
    assert sample.reference == "x" and sample.tests == {"kind": "io", "cases": []}
    assert sample.response == "a" and sample.prompt[0]["role"] == "user"


@pytest.mark.filterwarnings("ignore:source 'bad' could not score")
def test_a_group_that_cannot_be_scored_is_a_typed_failure(serve):
    bodies = [row(1, r, "z" * (r + 3)) for r in range(2)]
    with serve(BROKEN, num_rollouts_per_prompt=2) as url:
        answers = asyncio.run(post_all(url, bodies))
    for a in answers:
        assert a["mask_sample"] is True and a["instance_config"]["mask_sample"] is True
        assert a["failure_kind"] in (ng.VERIFIER_ERROR, ng.ABSTAINED)
        assert "broken" in a["failure_reason"]
        assert a["reward"] == FILL


def test_config_refuses_several_workers_and_a_missing_stack(gym, monkeypatch):
    from pydantic import ValidationError

    common = dict(host="127.0.0.1", port=0, entrypoint="app.py", num_rollouts_per_prompt=8)
    with pytest.raises(ValidationError, match="num_workers: 1"):
        ng.RewardplugResourcesServerConfig(**common, num_workers=4)
    with pytest.raises(ValidationError):
        ng.RewardplugResourcesServerConfig(host="127.0.0.1", port=0, entrypoint="app.py")
    monkeypatch.delenv(ng.STACK_ENV, raising=False)
    from nemo_gym.server_utils import ServerClient

    cfg = ng.RewardplugResourcesServerConfig(**common)
    with pytest.raises(ValueError, match=ng.STACK_ENV):
        ng.RewardplugResourcesServer(config=cfg, server_client=MagicMock(spec=ServerClient))


def test_the_documented_server_folder_and_config(gym):
    """docs/integrations.md's app.py and config block, read with NeMo Gym's own models."""
    import yaml
    from nemo_gym.config_types import ModelServerRef, ResourcesServerRef

    text = (Path(__file__).resolve().parents[2] / "docs" / "integrations.md").read_text()
    section = text[text.index("### NeMo Gym: a resources server") :]
    app = re.search(r"```python\n# app.py\n(.*?)```", section, re.S)
    block = re.search(r"```yaml\n# configs/rewardplug.yaml\n(.*?)```", section, re.S)
    assert app and block
    namespace: dict[str, Any] = {"__name__": "app"}
    exec(compile(app.group(1), "app.py", "exec"), namespace)  # imports, does not start a server
    assert namespace["RewardplugResourcesServer"] is ng.RewardplugResourcesServer

    config = yaml.safe_load(block.group(1))
    server = config["rewardplug_resources_server"]["resources_servers"]["rewardplug"]
    cfg = ng.RewardplugResourcesServerConfig(
        host="127.0.0.1", port=0, name="rewardplug_resources_server", **server
    )
    assert cfg.num_rollouts_per_prompt == 16 and cfg.entrypoint == "app.py"
    agent = config["rewardplug_simple_agent"]["responses_api_agents"]["simple_agent"]
    assert ResourcesServerRef(**agent["resources_server"]).name in config
    ModelServerRef(**agent["model_server"])


def test_a_task_row_may_set_its_group_size(serve):
    # e.g. a validation set generated once per task (NeMo RL val_num_generations_per_prompt: 1)
    body = {**row(11, 0, "x" * 9), ng.GROUP_SIZE_FIELD: 1}
    start = time.monotonic()
    with serve(group_timeout_s=600.0) as url:
        (answer,) = asyncio.run(post_all(url, [body]))
    assert time.monotonic() - start < 60  # answered at once, not at the 600 s deadline
    assert answer["rewardplug"]["group_size"] == 1 and not answer["rewardplug"]["partial_group"]
    assert answer["failure_kind"] is None and answer["mask_sample"] is False
