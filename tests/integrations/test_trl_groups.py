"""TRL groups are blocks of G completions (G from the trainer, or given), not runs of a prompt.

A dataset may hold a prompt twice; when both copies land next to each other in a generation
batch, TRL still computes advantages per block of ``num_generations``, so rewardplug must
discretize each block alone -- not pool the two blocks because their prompts are equal.
"""

from __future__ import annotations

import asyncio
import logging
import warnings
from types import SimpleNamespace

import pytest
from trl_helpers import blockwise

from rewardplug import load_stack
from rewardplug.integrations.trl import trl_samples

STACK = {
    "sources": [
        {"name": "len", "use": "python", "with": {"function": "rp_test_rewards:noisy_length"}}
    ],
}
# one prompt twice in a row (two trainer groups of 4), then another prompt
PROMPTS = ["P"] * 8 + ["Q"] * 4
COMPLETIONS = ["x" * n for n in (1, 2, 9, 10, 3, 4, 20, 21, 5, 6, 7, 30)]


class FakeTrainer:
    """What rewardplug reads from a TRL trainer: G, G for evaluation, the model's mode."""

    def __init__(self, num_generations, num_generations_eval=None, training=True):
        self.num_generations = num_generations
        self.num_generations_eval = num_generations_eval or num_generations
        self.model = SimpleNamespace(training=training)
        self.metrics = {}

    def _log_metric(self, name, value):
        self.metrics[name] = value


def test_blocks_of_g_make_a_repeated_prompt_two_groups():
    samples = trl_samples(PROMPTS, COMPLETIONS, num_generations=4)
    groups = [s.group for s in samples]
    assert len(set(groups)) == 3
    assert groups[0:4] == [groups[0]] * 4 and groups[4:8] == [groups[4]] * 4
    assert groups[0] != groups[4] != groups[8]
    # without G, runs of equal prompts: the repeated prompt is one pool of 8
    assert len({s.group for s in trl_samples(PROMPTS, COMPLETIONS)}) == 2


def test_rewards_with_g_are_each_block_scored_alone():
    stack = load_stack(STACK)
    expected = blockwise(stack, PROMPTS, COMPLETIONS, 4)
    assert stack.as_trl_reward(num_generations=4)(prompts=PROMPTS, completions=COMPLETIONS) == (
        expected
    )
    afn = stack.as_async_trl_reward(num_generations=4)
    assert asyncio.run(afn(prompts=PROMPTS, completions=COMPLETIONS)) == expected
    # pooling the two blocks of "P" gives other rewards (what grouping by prompt got wrong)
    pooled = stack.as_trl_reward()(prompts=PROMPTS, completions=COMPLETIONS)
    assert pooled[:8] != expected[:8]
    assert pooled[8:] == expected[8:]


def test_a_batch_that_is_not_whole_blocks_is_an_error():
    fn = load_stack(STACK).as_trl_reward(num_generations=5)
    with pytest.raises(ValueError, match=r"12 completions, not a multiple of num_generations=5"):
        fn(prompts=PROMPTS, completions=COMPLETIONS)
    for bad in (0, -1, True, 2.0):
        with pytest.raises(ValueError, match="num_generations must be a positive int"):
            load_stack(STACK).as_trl_reward(num_generations=bad)


def test_a_block_of_mixed_prompts_warns_once_and_is_still_one_group(caplog):
    stack = load_stack(STACK)
    fn = stack.as_trl_reward(num_generations=6)  # not TRL's G: blocks straddle P and Q
    with caplog.at_level(logging.WARNING, "rewardplug"), pytest.warns(UserWarning) as record:
        got = fn(prompts=PROMPTS, completions=COMPLETIONS)
    mixed = [w for w in record if "hold different prompts" in str(w.message)]
    assert len(mixed) == 1 and "num_generations=6" in str(mixed[0].message)
    assert "hold different prompts" in caplog.text
    assert got == blockwise(stack, PROMPTS, COMPLETIONS, 6)
    with warnings.catch_warnings(record=True) as again:
        warnings.simplefilter("always")
        fn(prompts=PROMPTS, completions=COMPLETIONS)
    assert not [w for w in again if "hold different prompts" in str(w.message)]


def test_without_g_unequal_runs_are_logged_once(caplog):
    fn = load_stack(STACK).as_trl_reward()
    with caplog.at_level(logging.INFO, "rewardplug.integrations.trl"):
        fn(prompts=PROMPTS, completions=COMPLETIONS)
        fn(prompts=PROMPTS, completions=COMPLETIONS)
        fn(prompts=["P"] * 4 + ["Q"] * 4, completions=COMPLETIONS[:8])  # equal runs: silent
    notes = [r for r in caplog.records if "runs of equal prompts" in r.getMessage()]
    assert len(notes) == 1 and notes[0].levelno == logging.INFO
    assert "[4, 8]" in notes[0].getMessage()


def test_g_is_read_from_the_trainer_in_training_and_evaluation():
    stack = load_stack(STACK)
    fn = stack.as_trl_reward()  # no G: the trainer's
    train = FakeTrainer(4, num_generations_eval=2)
    got = fn(prompts=PROMPTS, completions=COMPLETIONS, log_metric=train._log_metric)
    assert got == blockwise(stack, PROMPTS, COMPLETIONS, 4)
    assert "rewards/rewardplug/n_tiers/mean" in train.metrics

    evaluating = FakeTrainer(4, num_generations_eval=2, training=False)
    got = fn(prompts=PROMPTS, completions=COMPLETIONS, log_metric=evaluating._log_metric)
    assert got == blockwise(stack, PROMPTS, COMPLETIONS, 2)
    # an explicit G is the training one: evaluation still uses the trainer's eval size
    explicit = stack.as_trl_reward(num_generations=4)
    assert explicit(PROMPTS, COMPLETIONS, log_metric=evaluating._log_metric) == got
    assert explicit(PROMPTS, COMPLETIONS, log_metric=train._log_metric) == (
        blockwise(stack, PROMPTS, COMPLETIONS, 4)
    )
    afn = stack.as_async_trl_reward()
    assert asyncio.run(afn(PROMPTS, COMPLETIONS, log_metric=evaluating._log_metric)) == got


def test_an_explicit_g_that_is_not_the_trainers_is_an_error():
    fn = load_stack(STACK).as_trl_reward(num_generations=6)
    with pytest.raises(ValueError, match=r"num_generations=6.*num_generations=4"):
        fn(PROMPTS, COMPLETIONS, log_metric=FakeTrainer(4)._log_metric)


def test_hooks_that_are_not_a_trainer_are_ignored():
    # a dict's bound method has a __self__ too (the dict): no num_generations, so no trainer
    stack = load_stack(STACK)
    metrics: dict = {}
    got = stack.as_trl_reward(num_generations=4)(
        PROMPTS, COMPLETIONS, log_metric=metrics.__setitem__
    )
    assert got == blockwise(stack, PROMPTS, COMPLETIONS, 4)
    assert metrics["rewards/rewardplug/abstained"] == 0.0


@pytest.mark.slow
def test_grpo_trainer_groups_a_repeated_prompt_by_its_num_generations(tmp_path, monkeypatch):
    """A real GRPOTrainer: one generation batch holds one prompt twice; evaluation uses G_eval."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("WANDB_DISABLED", "true")
    pytest.importorskip("trl")
    from datasets import Dataset
    from trl import GRPOTrainer
    from trl_helpers import grpo_config, recording, tiny_model_and_tokenizer

    prompt, other = "Write a function add.\n", "Say hello.\n"
    stack = load_stack(STACK)
    scored_groups = []
    score = stack.score

    def recording_score(samples):
        scored_groups.append([s.group for s in samples])
        return score(samples)

    monkeypatch.setattr(stack, "score", recording_score)
    fn, calls = recording(stack.as_trl_reward("stack"))  # G from the trainer
    model, tokenizer = tiny_model_and_tokenizer([prompt, other, "def add(a, b): return a + b"])
    args = grpo_config(
        tmp_path,
        max_steps=1,
        per_device_train_batch_size=8,  # one generation batch: 2 prompts x 4
        num_generations=4,
        num_generations_eval=2,
        per_device_eval_batch_size=4,
        shuffle_dataset=False,  # the batch is the dataset's first two rows: the same prompt
        temperature=1.5,
    )
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=[fn],
        args=args,
        train_dataset=Dataset.from_list([{"prompt": p} for p in (prompt, prompt, other, other)]),
        eval_dataset=Dataset.from_list([{"prompt": prompt}, {"prompt": prompt}]),
        processing_class=tokenizer,
    )
    trainer.train()
    trainer.evaluate()

    train_calls = [c for c in calls if c["training"]]
    eval_calls = [c for c in calls if c["training"] is False]
    assert len(train_calls) == 1 and len(eval_calls) == 1
    reference = load_stack(STACK)
    for call, g in ((train_calls[0], 4), (eval_calls[0], 2)):
        # both copies of the prompt landed in the call, next to each other
        assert call["prompts"] == [prompt] * (2 * g)
        assert call["rewards"] == blockwise(reference, call["prompts"], call["completions"], g)
    # what the stack was given: two groups per call, each a block of G
    train_groups, eval_groups = scored_groups
    assert len(set(train_groups)) == 2 and train_groups[:4] == [train_groups[0]] * 4
    assert len(set(eval_groups)) == 2 and eval_groups[:2] == [eval_groups[0]] * 2
    stack.close()
