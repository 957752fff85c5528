"""TRL on several processes: groups split across ranks still get single-process rewards.

Two real CPU processes (torch.distributed, gloo) call the stack's TRL reward function, each with
its contiguous slice of the global batch -- what ``GRPOTrainer`` does on every rank -- and the
slice boundary cuts a group in two. With G (given, or read from a real trainer) the groups are
blocks of G of the global batch, so a prompt repeated across the ranks is still two groups.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from serving import free_port
from trl_helpers import blockwise

torch = pytest.importorskip("torch")

HERE = Path(__file__).resolve().parent
STACK = {
    "sources": [
        {"name": "len", "use": "python", "with": {"function": "rp_test_rewards:noisy_length"}}
    ],
}
# 3 prompts x 4 generations = 12 completions; ranks get 6 each, so the 2nd group is split 2 | 2
PROMPTS = [p for p in ("P1 ", "P2 ", "P3 ") for _ in range(4)]
COMPLETIONS = ["x" * n for n in (4, 5, 9, 20, 1, 2, 3, 12, 7, 7, 30, 31)]
GOLD = [str(i) for i in range(12)]
# with G = 4: "P1 " twice in a row, two groups (the second split 2 | 2 across the ranks)
REPEATED = [p for p in ("P1 ", "P1 ", "P3 ") for _ in range(4)]
#: the stack of trl_two_processes.py
STACK_TWO = STACK


def _worker(
    rank: int,
    world: int,
    port: int,
    out_dir: str,
    asynchronous: bool,
    prompts: list[str],
    num_generations: int | None,
) -> None:
    sys.path.insert(0, str(HERE))
    import asyncio

    import torch.distributed as dist

    from rewardplug import load_stack

    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world
    )
    try:
        stack = load_stack(STACK)
        make = stack.as_async_trl_reward if asynchronous else stack.as_trl_reward
        fn = make(num_generations=num_generations)
        per = len(COMPLETIONS) // world
        part = slice(rank * per, (rank + 1) * per)
        logged: list = []
        kwargs = dict(
            prompts=prompts[part],
            completions=COMPLETIONS[part],
            completion_ids=None,
            gold=GOLD[part],
            log_metric=lambda k, v: logged.append((k, v)),
        )
        rewards = asyncio.run(fn(**kwargs)) if asynchronous else fn(**kwargs)
        Path(out_dir, f"rank{rank}.json").write_text(
            json.dumps({"rewards": rewards, "logged": logged})
        )
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize(
    ("asynchronous", "num_generations"), [(False, None), (True, None), (True, 4)]
)
def test_two_processes_get_the_single_process_rewards(tmp_path, asynchronous, num_generations):
    import torch.multiprocessing as mp

    from rewardplug import load_stack

    prompts = PROMPTS if num_generations is None else REPEATED
    env = os.environ.get("PYTHONPATH", "")
    os.environ["PYTHONPATH"] = os.pathsep.join([str(HERE), env])
    try:
        mp.spawn(
            _worker,
            args=(2, free_port(), str(tmp_path), asynchronous, prompts, num_generations),
            nprocs=2,
            join=True,
        )
    finally:
        os.environ["PYTHONPATH"] = env
    got = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    rewards = got[0]["rewards"] + got[1]["rewards"]

    single = load_stack(STACK).as_trl_reward(num_generations=num_generations)(
        prompts=prompts, completions=COMPLETIONS, completion_ids=None, gold=GOLD
    )
    assert rewards == single
    # each group of 4 is discretized as a whole, the split one included
    assert rewards == blockwise(load_stack(STACK), prompts, COMPLETIONS, 4)
    # the split group really is tie-grouped as a whole: 2 and 3 tie with 1, 12 stands apart
    assert rewards[4] == rewards[5] == rewards[6] != rewards[7]
    # what each half alone would have got differs (the bug this guards against)
    alone = load_stack(STACK).as_trl_reward()(
        prompts=PROMPTS[:6], completions=COMPLETIONS[:6], completion_ids=None, gold=GOLD[:6]
    )
    assert alone[4:6] != single[4:6]
    if num_generations is not None:
        # grouped by prompt, the repeated prompt's two groups would have been one pool of 8
        pooled = load_stack(STACK).as_trl_reward()(prompts=prompts, completions=COMPLETIONS)
        assert pooled[:8] != rewards[:8]
    # both ranks logged tiers of whole groups
    for part in got:
        tiers = dict(part["logged"])["rewards/rewardplug/n_tiers/mean"]
        assert tiers > 1


@pytest.mark.slow
def test_a_real_grpo_trainer_on_two_processes(tmp_path):
    """torchrun, 2 CPU processes, a real GRPOTrainer whose groups of 4 are split 2 | 2."""
    import subprocess

    pytest.importorskip("trl")
    from rewardplug import load_stack

    script = HERE / "trl_two_processes.py"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(HERE.parents[1]), os.environ.get("PYTHONPATH", "")]),
        "HF_HUB_OFFLINE": "1",
        "WANDB_DISABLED": "true",
        "OMP_NUM_THREADS": "1",
    }
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2"]
    cmd += ["--master_port", str(free_port()), str(script), str(tmp_path)]
    run = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=540)
    assert run.returncode == 0, run.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert len(ranks[0]) == len(ranks[1]) == 2  # two steps, one reward call each per rank
    reference = load_stack(json.loads(json.dumps(STACK_TWO)))
    for step, (call0, call1) in enumerate(zip(*ranks, strict=True)):
        assert call0["training"] and call1["training"]
        prompts = call0["prompts"] + call1["prompts"]
        completions = call0["completions"] + call1["completions"]
        # TRL gave each rank 6 of the 12: the second group of 4 is split 2 | 2
        assert len(call0["prompts"]) == len(call1["prompts"]) == 6
        # G = 4 was read from the trainer: every block of 4 scored alone, as one process would
        assert call0["rewards"] + call1["rewards"] == blockwise(reference, prompts, completions, 4)
        if step == 0:
            # the dataset's repeated first prompt: 8 completions of it, two groups of 4
            assert prompts[:8] == [prompts[0]] * 8 and prompts[8] != prompts[0]
