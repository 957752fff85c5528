"""NeMo RL: rewardplug's environment called as NeMo RL's synchronous rollout calls it.

NeMo RL is not installable here (``nemo-rl`` on PyPI is NVIDIA's empty placeholder; NeMo RL installs
from its repository with GPU dependencies), so its own code does not run. These tests follow its
calling convention, read from its source (``nemo_rl/experience/rollouts.py``: ``calculate_rewards``,
``nemo_rl/environments/interfaces.py``, ``nemo_rl/environments/utils.py``: ``create_env``,
``nemo_rl/algorithms/utils.py``: ``calculate_baseline_and_std_per_prompt``): the batch is GRPO's
``repeat_interleave``-d one (each prompt's G samples contiguous, their ``extra_env_info`` shared),
``step`` gets the ``role`` / ``content`` of each message log and that metadata, and its six return
fields are unpacked by position; the environment is a Ray actor made with ``.options(runtime_env=
...).remote(env_config)``.
"""

from __future__ import annotations

import logging
import os
import random
from pathlib import Path
from typing import Any

import pytest

from rewardplug.integrations import nemo_rl, verl
from rewardplug.stack import load_stack

HERE = Path(__file__).resolve().parent
STACK = (
    "sources:\n"
    "  - name: len\n    use: python\n    with: {function: 'rp_test_rewards:noisy_length'}\n"
    "  - name: ref\n    use: python\n    with: {function: 'test_nemo_rl:needs_reference'}\n"
)
G = 8


def needs_reference(completions: list[str], **columns: Any) -> list[float | None]:
    """1.0 / 0.0: whether the reference occurs in the completion; None (abstain) without one."""
    refs = columns.get("reference") or [None] * len(completions)
    return [None if r is None else float(r in c) for c, r in zip(completions, refs, strict=True)]


@pytest.fixture
def stack_file(tmp_path):
    path = tmp_path / "stack.yaml"
    path.write_text(STACK)
    nemo_rl._warned.clear()
    yield str(path)
    verl.clear_cache()


def grpo_batch(prompts: int, rng: random.Random) -> tuple[list[Any], list[Any]]:
    """Message logs and metadata as ``calculate_rewards`` hands them to ``step``: each prompt
    ``repeat_interleave``-d G times (one metadata dict shared by its repeats), the assistant's
    response appended after the prompt."""
    logs, infos = [], []
    for p in range(prompts):
        info = {"ground_truth": "x", "rewardplug_group": p}
        for _ in range(G):
            logs.append(
                [
                    {"role": "system", "content": "Answer briefly."},
                    {"role": "user", "content": f"Problem {p}"},
                    {"role": "assistant", "content": "x" * rng.randint(3, 40)},
                ]
            )
            infos.append(info)
    return logs, infos


def calculate_rewards(env: Any, logs: list[Any], infos: list[Any]) -> tuple[Any, ...]:
    """What NeMo RL's ``calculate_rewards`` does with one environment's share of the batch."""
    to_env = [[{k: m[k] for k in ("role", "content")} for m in log] for log in logs]
    result = env.step(to_env, infos)
    observations, metadata, next_stop, rewards, terminateds, answers = result
    assert len(observations) == len(metadata) == len(next_stop) == len(answers) == len(logs)
    assert rewards.shape == terminateds.shape == (len(logs),)
    assert bool(terminateds.all())  # single turn: every episode ends
    assert all(o["role"] == "environment" for o in observations)
    return rewards, metadata


def test_step_discretizes_each_group_of_the_batch_whole(stack_file, caplog):
    rng = random.Random(30)
    logs, infos = grpo_batch(37, rng)
    # one sample without a reference (its source abstains), one prompt with only 5 samples
    infos[5 * G + 3] = {"rewardplug_group": 5}
    logs += [
        [{"role": "user", "content": "Short"}, {"role": "assistant", "content": "y" * n}]
        for n in (4, 9, 14, 19, 24)
    ]
    infos += [{"ground_truth": "y", "rewardplug_group": 99}] * 5
    env = nemo_rl.GroupedEnvironment({"stack": stack_file, "group_size": G})
    with caplog.at_level(logging.WARNING, logger="rewardplug.integrations.nemo_rl"):
        rewards, metadata = calculate_rewards(env, logs, infos)
    assert len(logs) == 301

    stack = load_stack(stack_file)
    groups: dict[Any, list[int]] = {}
    for i, info in enumerate(infos):
        groups.setdefault(info["rewardplug_group"], []).append(i)
    for key, rows in groups.items():
        want = stack.score([nemo_rl.nemo_rl_sample(logs[i], infos[i]) for i in rows])
        scored = [w.reward for w in want if w.reward is not None]
        for i, w in zip(rows, want, strict=True):
            details = metadata[i]["rewardplug"]
            assert details["tier"] == w.tier and details["group_size"] == len(rows)
            assert details["partial_group"] is (key == 99)
            if w.reward is None:  # the abstention: its group's mean, an advantage of exactly 0
                assert i == 5 * G + 3 and details["abstained"] is True
                assert float(rewards[i]) == pytest.approx(sum(scored) / len(scored))
                group = rewards[rows]
                assert float(rewards[i] - group.mean()) == pytest.approx(0.0, abs=1e-5)
            else:
                assert float(rewards[i]) == pytest.approx(w.reward)
    assert any(len(set(rewards[rows].tolist())) < len(rows) for rows in groups.values())
    assert "group_size=8" in caplog.text and "its group's mean" in caplog.text


def test_groups_by_prompt_without_a_group_key_and_fixed_fill(stack_file):
    # NeMo RL's own data processors put no index in extra_env_info: the prompt is the key
    logs = [
        [{"role": "user", "content": f"p{p}"}, {"role": "assistant", "content": "x" * (3 + 9 * k)}]
        for p in range(2)
        for k in range(3)
    ]
    infos = [{"ground_truth": "x"}] * 5 + [{}]
    env = nemo_rl.GroupedEnvironment({"stack": stack_file, "abstain_reward": -1.0})
    rewards, metadata = calculate_rewards(env, logs, infos)
    assert [m["rewardplug"]["group_size"] for m in metadata] == [3] * 6
    assert float(rewards[5]) == -1.0 and metadata[5]["rewardplug"]["abstained"] is True
    stack = load_stack(stack_file)
    want = stack.score(
        [nemo_rl.nemo_rl_sample(lg, i) for lg, i in zip(logs[:3], infos[:3], strict=True)]
    )
    assert rewards[:3].tolist() == pytest.approx([w.reward for w in want])


def test_one_sample_per_call_is_a_group_of_one(stack_file, caplog):
    # NeMo RL's asynchronous rollout calls step one sample at a time
    env = nemo_rl.GroupedEnvironment({"stack": stack_file, "group_size": G})
    log_ = [{"role": "user", "content": "p"}, {"role": "assistant", "content": "x" * 10}]
    with caplog.at_level(logging.WARNING, logger="rewardplug.integrations.nemo_rl"):
        rewards, metadata = calculate_rewards(env, [log_], [{"ground_truth": "x"}])
    assert metadata[0]["rewardplug"]["group_size"] == 1
    assert float(rewards[0]) == metadata[0]["rewardplug"]["raw"]  # its combined raw score
    assert "tie-grouping does nothing" in caplog.text


def test_missing_stack_says_where_to_put_it(monkeypatch):
    monkeypatch.delenv(nemo_rl.STACK_ENV, raising=False)
    with pytest.raises(ValueError, match=nemo_rl.STACK_ENV):
        nemo_rl.GroupedEnvironment({})


@pytest.mark.slow
def test_the_ray_actor_as_create_env_makes_it(stack_file):
    ray = pytest.importorskip("ray")
    if ray.is_initialized():
        ray.shutdown()
    path = os.pathsep.join(p for p in (str(HERE), os.environ.get("PYTHONPATH", "")) if p)
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    try:
        actor_class = nemo_rl.RewardplugEnvironment  # what hydra's get_object finds by its name
        env = actor_class.options(runtime_env={"env_vars": {"PYTHONPATH": path}}).remote(
            {"stack": stack_file, "group_size": 2}
        )
        logs = [
            [{"role": "user", "content": "p"}, {"role": "assistant", "content": "x" * n}]
            for n in (5, 6, 30)
        ]
        infos = [{"ground_truth": "x", "rewardplug_group": 0}] * 2 + [{"rewardplug_group": 1}]
        out = ray.get(env.step.remote(logs, infos))
        rewards = out[3]
        assert rewards[0] == rewards[1]  # 5 and 6 characters: not confidently different
        assert out[1][2]["rewardplug"]["abstained"] is True and float(rewards[2]) == 0.0
    finally:
        ray.shutdown()
