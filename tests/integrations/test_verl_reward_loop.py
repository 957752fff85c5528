"""verl >= 0.9's reward loop, run from verl's own code (``pip install --no-deps verl``).

verl's ``load_reward_manager`` loads ``rewardplug.integrations.verl.RewardManager`` from its file
(``source=importlib``); ``run_single`` is called once per sample, concurrently and in shuffled
order, as ``RewardLoopWorker`` does -- in one process, and across two real ``RewardLoopWorker``
Ray actors with each sample sent to a random one, as verl's agent loop does. Every sample must
get the reward of its whole ``uid`` group scored at once. ``RayPPOTrainer._balance_batch`` (real)
reorders a real ``DataProto`` before the legacy batch function, which must still group by uid.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import uuid
from pathlib import Path

import pytest

from rewardplug import Sample, load_stack
from tests.frameworks import require

HERE = Path(__file__).resolve().parent
VERL_FILE = Path(__file__).resolve().parents[2] / "rewardplug" / "integrations" / "verl.py"
STACK = {
    "sources": [
        {"name": "len", "use": "python", "with": {"function": "rp_test_rewards:noisy_length"}}
    ],
}
# response lengths per prompt (rollout.n = 4): ties within 2 characters, confident gaps beyond
GROUPS = [[4, 5, 9, 20], [1, 2, 3, 12], [7, 7, 30, 31]]
N = 4
WORDS = ["<pad>", "<eos>", "<unk>", "what", "is", "the", "answer"] + ["x" * k for k in range(1, 41)]


@pytest.fixture(scope="module")
def verl():
    return require("verl")


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory, verl):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.decoder = decoders.WordPiece(prefix="##")
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>"
    )
    path = tmp_path_factory.mktemp("tokenizer")
    fast.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def stack_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("stack") / "stack.yaml"
    path.write_text(json.dumps(STACK))
    return path


def make_config(verl, stack_file, tokenizer_dir, assembler: str):
    from omegaconf import OmegaConf

    reward_yaml = Path(verl.__file__).parent / "trainer" / "config" / "reward" / "reward.yaml"
    config = OmegaConf.create(
        {
            "actor_rollout_ref": {
                "rollout": {"n": N},
                "model": {"path": str(tokenizer_dir), "tokenizer_path": None},
            },
            "reward": OmegaConf.load(reward_yaml),
        }
    )
    config.reward.reward_manager.source = "importlib"
    config.reward.reward_manager.name = "RewardManager"
    config.reward.reward_manager.module.path = str(VERL_FILE)
    config.reward.custom_reward_function.reward_kwargs = {
        "stack": str(stack_file),
        "assembler": assembler,
        "group_timeout": 60,
    }
    return config


def make_batch(tokenizer_dir):
    """A real DataProto shaped like the trainer's: uid per prompt, repeated rollout.n times."""
    import numpy as np
    import torch
    from transformers import PreTrainedTokenizerFast
    from verl import DataProto

    tok = PreTrainedTokenizerFast.from_pretrained(tokenizer_dir)
    prompts, responses, masks, uids, gts = [], [], [], [], []
    for g, lengths in enumerate(GROUPS):
        uid = str(uuid.UUID(int=g))
        for n in lengths:
            p = tok.encode("what is the answer", add_special_tokens=False)
            r = [*tok.encode("x" * n, add_special_tokens=False), tok.eos_token_id]
            r_pad = [tok.pad_token_id] * (3 - len(r))
            prompts.append([tok.pad_token_id] * (5 - len(p)) + p)
            responses.append(r + r_pad)
            masks.append([0] * (5 - len(p)) + [1] * len(p) + [1] * len(r) + [0] * len(r_pad))
            uids.append(uid)
            gts.append({"ground_truth": "x", "style": "rule"})
    prompts_t, responses_t = torch.tensor(prompts), torch.tensor(responses)
    return DataProto.from_dict(
        tensors={
            "prompts": prompts_t,
            "responses": responses_t,
            "attention_mask": torch.tensor(masks),
            "input_ids": torch.cat([prompts_t, responses_t], dim=1),
        },
        non_tensors={
            "uid": np.array(uids, dtype=object),
            "data_source": np.array(["toy"] * len(uids), dtype=object),
            "reward_model": np.array(gts, dtype=object),
            "extra_info": np.array([{"split": "train"} for _ in uids], dtype=object),
        },
    )


def whole_groups():
    """Per sample (in batch order), the reward of its group scored in one Stack.score call."""
    stack = load_stack(STACK)
    out = []
    for g, lengths in enumerate(GROUPS):
        samples = [
            Sample(id=f"{g}.{i}", group=str(g), response="x" * n) for i, n in enumerate(lengths)
        ]
        out += stack.score(samples)
    return out


def check(results, want):
    for got, w in zip(results, want, strict=True):
        assert got["reward_score"] == w.reward
        info = got["reward_extra_info"]
        assert info["tier"] == float(w.tier) and info["n_tiers"] == float(w.n_tiers)
        assert info["group_size"] == float(N) and info["partial_group"] == 0.0
    assert {w.n_tiers for w in want} == {2, 3}  # tie-grouping did something
    assert len({tuple(sorted(r["reward_extra_info"])) for r in results}) == 1  # same keys


def test_run_single_concurrently_in_shuffled_order(verl, stack_file, tokenizer_dir):
    from transformers import PreTrainedTokenizerFast
    from verl.trainer.ppo.reward import load_reward_manager

    config = make_config(verl, stack_file, tokenizer_dir, "local")
    tok = PreTrainedTokenizerFast.from_pretrained(tokenizer_dir)
    data = make_batch(tokenizer_dir)
    order = list(range(len(data)))
    random.Random(0).shuffle(order)

    async def main():
        # built inside the loop, as RewardLoopWorker does (the base class captures the loop)
        manager = load_reward_manager(
            config, tok, reward_router_address=None, reward_model_tokenizer=None
        )
        assert type(manager).__name__ == "RewardManager" and manager.group_size == N
        outs = await asyncio.gather(*(manager.run_single(data[i : i + 1]) for i in order))
        return manager, dict(zip(order, outs, strict=True))

    manager, by_index = asyncio.run(main())
    results = [by_index[i] for i in range(len(data))]
    check(results, whole_groups())
    # verl places each score on the last valid response token with the base class's method
    rm = type(manager).assemble_rm_scores(data, [r["reward_score"] for r in results])
    assert rm.sum(dim=1).tolist() == pytest.approx([r["reward_score"] for r in results])


def test_balance_batch_reorders_and_groups_still_follow_uid(verl, stack_file, tokenizer_dir):
    from verl.trainer.ppo.ray_trainer import RayPPOTrainer

    from rewardplug.integrations import verl as rp_verl

    data = make_batch(tokenizer_dir)
    before = list(data.non_tensor_batch["uid"])

    class Trainer:  # what _balance_batch reads from the trainer
        use_prefix_grouper = False
        actor_rollout_wg = None

        def _get_dp_size(self, worker_group, role):
            return 2

    RayPPOTrainer._balance_batch(Trainer(), data, metrics={})
    after = list(data.non_tensor_batch["uid"])
    assert after != before  # the real reordering split the uid runs
    tok_lengths = data.batch["attention_mask"].sum(-1).tolist()
    assert tok_lengths  # (the batch is a real DataProto)
    from transformers import PreTrainedTokenizerFast

    tok = PreTrainedTokenizerFast.from_pretrained(tokenizer_dir)
    responses = []
    for i in range(len(data)):
        r = data.batch["responses"][i]
        responses.append(tok.decode(r[r != tok.pad_token_id], skip_special_tokens=True))
    out = rp_verl.compute_score_batch(
        ["toy"] * len(data),
        responses,
        ["x"] * len(data),
        [{"uid": u} for u in after],
        stack=str(stack_file),
    )
    want = {
        (g, "x" * n): w
        for (g, n), w in zip(
            [(str(uuid.UUID(int=g)), n) for g, ls in enumerate(GROUPS) for n in ls],
            whole_groups(),
            strict=True,
        )
    }
    for o, u, r in zip(out, after, responses, strict=True):
        w = want[(u, r)]
        assert (o["score"], o["tier"], o["n_tiers"]) == (w.reward, float(w.tier), float(w.n_tiers))


def start_ray(verl, num_cpus: int):
    """A local Ray for verl's actors, with this folder and verl importable in its workers."""
    import ray

    if ray.is_initialized():
        ray.shutdown()
    paths = [str(HERE), str(Path(verl.__file__).parents[1]), os.environ.get("PYTHONPATH", "")]
    ray.init(
        num_cpus=num_cpus,
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join(p for p in paths if p)}},
    )
    return ray


@pytest.fixture(scope="module")
def ray_cluster(verl):
    yield start_ray(verl, 2)
    import ray

    ray.shutdown()


@pytest.mark.slow
def test_members_of_a_group_on_different_reward_loop_workers(
    ray_cluster, verl, stack_file, tokenizer_dir
):
    from verl.experimental.reward_loop.reward_loop import RewardLoopWorker

    ray = ray_cluster
    config = make_config(verl, stack_file, tokenizer_dir, "auto")
    worker_cls = ray.remote(num_cpus=0)(RewardLoopWorker)
    workers = [worker_cls.remote(config, None) for _ in range(2)]
    data = make_batch(tokenizer_dir)
    rng = random.Random(1)
    order = list(range(len(data)))
    rng.shuffle(order)
    picks = [rng.randrange(2) for _ in order]
    # every group is split over both workers
    for g in range(len(GROUPS)):
        assert len({p for i, p in zip(order, picks, strict=True) if i // N == g}) == 2
    refs = [
        workers[p].compute_score.remote(data[i : i + 1]) for i, p in zip(order, picks, strict=True)
    ]
    outs = ray.get(refs, timeout=120)
    by_index = dict(zip(order, outs, strict=True))
    check([by_index[i] for i in range(len(data))], whole_groups())
    # the groups were assembled by the one shared actor, not inside either worker
    from rewardplug.groups_ray import actor_name

    health = ray.get(ray.get_actor(actor_name(stack_file, 60.0)).health.remote())
    assert health["groups_complete"] == len(GROUPS) and health["held"] == 0
    assert health["missing_inputs"] == {} and health["waiting_for_room"] == 0


def test_run_single_flags_the_fields_a_source_needs_and_the_sample_lacks(
    verl, tokenizer_dir, tmp_path
):
    from transformers import PreTrainedTokenizerFast
    from verl.trainer.ppo.reward import load_reward_manager

    path = tmp_path / "needs_rubric.yaml"
    needs = {**STACK, "sources": [*STACK["sources"], {"name": "style", "use": "rubric"}]}
    path.write_text(json.dumps(needs))
    config = make_config(verl, path, tokenizer_dir, "local")
    tok = PreTrainedTokenizerFast.from_pretrained(tokenizer_dir)
    data = make_batch(tokenizer_dir)  # extra_info holds no rubric

    async def main():
        manager = load_reward_manager(
            config, tok, reward_router_address=None, reward_model_tokenizer=None
        )
        return await asyncio.gather(*(manager.run_single(data[i : i + 1]) for i in range(N)))

    results = asyncio.run(main())
    for r in results:
        info = r["reward_extra_info"]
        assert info["missing/style/rubric"] == 1.0
        assert info["reward_mask"] == 0.0  # the gap is masked, never paid
