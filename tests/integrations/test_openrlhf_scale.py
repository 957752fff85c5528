"""OpenRLHF's default rollout size through its own client against a real ``rewardplug serve``.

OpenRLHF 0.11 defaults to ``--rollout.batch_size 1024``; with ``--rollout.n_samples_per_prompt 8``
its ``SingleTurnAgentExecutor`` has 8,192 one-sample reward requests in flight, each a new aiohttp
session (one socket each), 180 s timeout, 5 tries, then the sample's reward is None. Here 7,168 of
them (7 members of every group) go out at once; the 1,024 last members follow a few seconds after
the server holds all the others. Every request must get its whole group's reward: none None, none
partial, none refused, none re-sent.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import resource
import sys
import time
from pathlib import Path

import aiohttp
import pytest
from serving import free_port, raise_open_files, server_process
from test_serve_groups import NOISY, whole_group_rewards

from rewardplug import load_stack
from tests.frameworks import require

HERE = Path(__file__).resolve().parent
PROMPTS, N = 1024, 8
IN_FLIGHT = PROMPTS * N
#: sockets per process: one per in-flight request, plus headroom
OPEN_FILES = IN_FLIGHT + 1024
LATE_AFTER_S = 3.0


def rollout(seed: int = 0) -> list[dict]:
    """1,024 prompts x 8 one-sample bodies, as OpenRLHF's executor sends them (group by group)."""
    rng = random.Random(seed)
    bodies = []
    for p in range(PROMPTS):
        prompt = f"<|im_start|>user\nproblem {p}: write it<|im_end|>\n<|im_start|>assistant\n"
        label = json.dumps({"reference": f"answer {p}"})
        for _ in range(N):
            # lengths in a narrow band: ties (within 2 characters) and clear differences
            response = "x" * rng.randint(1, 24) + "<|im_end|>"
            body = {"query": [prompt + response], "prompts": [prompt], "labels": [label]}
            bodies.append(body)
    return bodies


async def health(url: str) -> dict:
    async with aiohttp.ClientSession() as s, s.get(f"{url}/health") as r:
        return await r.json()


@pytest.mark.slow
def test_openrlhf_default_rollout_8192_in_flight_late_members(tmp_path):
    agent = require("openrlhf.utils.agent")
    soft_before = resource.getrlimit(resource.RLIMIT_NOFILE)
    if raise_open_files(OPEN_FILES) < OPEN_FILES:
        pytest.skip(
            f"RLIMIT_NOFILE hard limit {soft_before[1]} < {OPEN_FILES}: cannot hold 8,192 sockets"
        )
    stack_file = tmp_path / "stack.yaml"
    stack_file.write_text(json.dumps(NOISY))
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
    }
    cmd = [sys.executable, "-m", "rewardplug", "serve", str(stack_file), "--port", str(port)]
    cmd += ["--group-size", str(N), "--group-timeout", "60"]
    bodies = rollout()
    late = set(range(N - 1, IN_FLIGHT, N))  # the last member of every group
    early = [i for i in range(IN_FLIGHT) if i not in late]
    random.Random(1).shuffle(early)
    stderr: list[str] = []
    try:
        with server_process(cmd, port, env, open_files=OPEN_FILES, stderr_lines=stderr) as url:
            executor = agent.SingleTurnAgentExecutor(f"{url}/get_reward")
            answers: dict[int, dict | None] = {}
            took: dict[int, float] = {}

            async def fetch(i: int) -> None:
                b = bodies[i]
                start = time.monotonic()
                try:  # as SingleTurnAgentExecutor.execute: a failure leaves the reward None
                    got = await executor._fetch_rewards_via_http(
                        b["query"], b["prompts"], b["labels"]
                    )
                    answers[i] = got[0] if got else None
                except Exception:
                    answers[i] = None
                took[i] = time.monotonic() - start

            async def run() -> tuple[dict, dict, float]:
                start = time.monotonic()
                tasks = [asyncio.create_task(fetch(i)) for i in early]
                while (await health(url))["groups"]["held"] < len(early):
                    assert time.monotonic() - start < 60, "the first 7,168 did not all arrive"
                    await asyncio.sleep(0.25)
                held = await health(url)
                await asyncio.sleep(LATE_AFTER_S)
                tasks += [asyncio.create_task(fetch(i)) for i in sorted(late)]
                await asyncio.gather(*tasks)
                return held, await health(url), time.monotonic() - start

            held, after, wall = asyncio.run(run())
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, soft_before)

    # while the late members had not come: every early sample held, no group complete
    assert held["groups"]["held"] == len(early) and held["groups"]["groups_complete"] == 0
    assert held["groups"]["open"] == PROMPTS
    missing = [i for i in range(IN_FLIGHT) if answers.get(i) is None]
    assert not missing, f"{len(missing)} rewards are None"
    partial = [i for i, a in answers.items() if a["extra_logs"]["partial_group"] != [0.0]]
    assert not partial
    # every request went out once (no retry), every group completed whole
    groups = after["groups"]
    assert after["requests"] == after["samples"] == IN_FLIGHT, after
    assert groups["groups_complete"] == PROMPTS and groups["groups_partial"] == 0
    assert groups["rejected"] == 0 and groups["waited_for_room"] == 0 and groups["held"] == 0
    assert after["end_markers_stripped"] == IN_FLIGHT
    # every reward is the whole group's reward (Stack.score on the group in one call)
    want = whole_group_rewards(load_stack(NOISY), bodies)
    for i, w in enumerate(want):
        got = answers[i]
        assert got["rewards"] == [w.reward], i
        assert got["extra_logs"]["tier"] == [float(w.tier)]
        assert got["extra_logs"]["group_size"] == [float(N)]
        assert got["extra_logs"]["reward_mask"] == [1.0]
    assert len({w.n_tiers for w in want}) > 1  # tie-grouping was not a no-op
    # the late members were answered promptly once they came; the others waited for them
    slowest_late = max(took[i] for i in late)
    print(
        f"\n8,192 in flight: wall {wall:.1f} s, early p50 "
        f"{sorted(took[i] for i in early)[len(early) // 2]:.1f} s, slowest late {slowest_late:.1f} s"
    )
    assert slowest_late < 30
    assert not any("Traceback" in line for line in stderr), "".join(stderr)
