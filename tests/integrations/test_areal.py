"""AReaL: rewardplug's RLVRWorkflow run by AReaL's own GroupedRolloutWorkflow, and the
per-sample reward_fn through AReaL's own AsyncRewardWrapper (its process pool).

AReaL 1.0.4 from PyPI (``make frameworks``). The inference engine is a stand-in whose
``agenerate`` returns scripted responses; everything else -- the episode, the grouping, the
workflow context the executor sets, the tensors -- is AReaL's code.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from rewardplug.integrations import verl
from tests.frameworks import require

STACK = (
    "sources:\n"
    "  - name: len\n    use: python\n    with: {function: 'rp_test_rewards:noisy_length'}\n"
)
REF_ONLY = (
    "sources:\n  - name: ref\n    use: python\n    with: {function: 'test_areal:needs_reference'}\n"
)


@pytest.fixture(autouse=True, scope="module")
def _logging_put_back():
    """AReaL's ``getLogger`` replaces logging's root and manager and disables every logger that
    exists (``dictConfig`` with ``disable_existing_loggers``) each time it is called; put them
    back after this module, or the later tests' log capture sees nothing."""
    manager, root = logging.Logger.manager, logging.Logger.root
    yield
    logging.Logger.manager, logging.Logger.root = manager, root
    for logger in manager.loggerDict.values():
        if isinstance(logger, logging.Logger):
            logger.disabled = False


def needs_reference(completions: list[str], **columns: Any) -> list[float | None]:
    """1.0 / 0.0: whether the reference occurs in the completion; None (abstain) without one."""
    refs = columns.get("reference") or [None] * len(completions)
    return [None if r is None else float(r in c) for c, r in zip(completions, refs, strict=True)]


class Tokenizer:
    """Characters as token ids."""

    eos_token_id = 0
    pad_token_id = 1

    def decode(self, ids: list[int]) -> str:  # the end token decodes as a chat end marker
        return "".join("<|im_end|>" if i == self.eos_token_id else chr(i) for i in ids)


def input_ids(messages: Any, tokenizer: Any, enable_thinking: bool) -> list[int]:
    return [ord(c) for c in messages[-1]["content"]]


class Engine:
    """An inference engine that answers each prompt with the next of its scripted responses."""

    def __init__(self, responses: dict[str, list[str]]):
        self.responses = {k: list(v) for k, v in responses.items()}

    async def agenerate(self, req: Any) -> Any:
        from areal.api.io_struct import ModelResponse

        await asyncio.sleep(0)  # episodes interleave, as they do on a real engine
        text = self.responses["".join(chr(i) for i in req.input_ids)].pop(0)
        out = [ord(c) for c in text] + [Tokenizer.eos_token_id]
        return ModelResponse(
            input_tokens=list(req.input_ids),
            output_tokens=out,
            output_logprobs=[0.0] * len(out),
            output_versions=[0] * len(out),
        )


@pytest.fixture
def areal() -> Any:
    require("areal.infra.remote_inf_engine")
    import areal

    return areal


@pytest.fixture
def stack_file(tmp_path):
    path = tmp_path / "stack.yaml"
    path.write_text(STACK)
    yield str(path)
    verl.clear_cache()


def workflow(areal: Any, stack: str, n: int, **kwargs: Any) -> Any:
    from areal.api.cli_args import GenerationHyperparameters

    from rewardplug.integrations.areal import RLVRWorkflow

    return RLVRWorkflow(
        gconfig=GenerationHyperparameters(n_samples=n, max_new_tokens=16),
        tokenizer=Tokenizer(),
        get_input_ids_fn=input_ids,
        stack=stack,
        **kwargs,
    )


async def run_group(flow: Any, engine: Engine, item: dict, task_id: int, n: int) -> Any:
    """What AReaL's workflow executor does for one submitted item with group_size=n."""
    from areal.infra import workflow_context
    from areal.infra.remote_inf_engine import GroupedRolloutWorkflow

    workflow_context.set(workflow_context.WorkflowContext(is_eval=False, task_id=task_id))
    grouped = GroupedRolloutWorkflow(flow, n, logging.getLogger("test"))
    return await grouped.arun_episode(engine, item)


def item(prompt: str, **fields: Any) -> dict:
    return {"messages": [{"role": "user", "content": prompt}], **fields}


def test_grouped_rollout_discretizes_each_group_whole(areal, stack_file):
    flow = workflow(areal, stack_file, 3)
    assert flow.group_size == 3  # from gconfig.n_samples
    engine = Engine({"p0": ["x" * 10, "x" * 11, "x" * 30], "p1": ["x" * 5, "x" * 11, "x" * 40]})

    async def two_items():  # two items in flight on one event loop, as in AReaL's executor
        return await asyncio.gather(
            run_group(flow, engine, item("p0", answer="x"), 1, 3),
            run_group(flow, engine, item("p1", answer="x"), 2, 3),
        )

    first, second = asyncio.run(two_items())
    assert first["rewards"].tolist() == pytest.approx([10.5, 10.5, 30.0])  # tied, in one group
    assert second["rewards"].tolist() == [5.0, 11.0, 40.0]
    assert first["loss_mask"].sum(dim=1).tolist() == [11, 12, 31]  # response + end token


def test_abstention_zeroes_the_loss_mask(areal, tmp_path):
    path = tmp_path / "ref.yaml"
    path.write_text(REF_ONLY)
    flow = workflow(areal, str(path), 2, abstain_reward=-1.0)
    engine = Engine({"q": ["has x", "none"], "r": ["a", "b"]})
    scored = asyncio.run(run_group(flow, engine, item("q", answer="x"), 1, 2))
    assert scored["rewards"].tolist() == [1.0, 0.0]
    assert scored["loss_mask"].sum().item() > 0
    # no reference: the stack abstains on the whole group
    abstained = asyncio.run(run_group(flow, engine, item("r"), 2, 2))
    assert abstained["rewards"].tolist() == [-1.0, -1.0]
    assert abstained["loss_mask"].sum().item() == 0  # no loss from a fill value
    verl.clear_cache()


def test_reward_fn_in_areals_process_pool(areal, stack_file, monkeypatch):
    from areal.api.reward_api import AsyncRewardWrapper

    from rewardplug.integrations.areal import reward_fn

    monkeypatch.setenv("REWARDPLUG_STACK", stack_file)
    wrapped = AsyncRewardWrapper(reward_fn, timeout_seconds=60, max_workers=1)
    reward = asyncio.run(wrapped("p", "x" * 7 + "<|im_end|>", [1], [2], answer="x"))
    assert reward == 7.0  # alone: the raw score (the end marker cut)


def test_fields_and_reward_fn_argument(areal, stack_file):
    from rewardplug.integrations.areal import areal_sample

    s = areal_sample(
        "rendered prompt",
        "def f(): pass<|im_end|>",
        item("Write f.", solution="pass", tests='{"kind": "call"}', level=3),
    )
    assert s.prompt == [{"role": "user", "content": "Write f."}]
    assert s.response == "def f(): pass" and s.reference == "pass"
    assert s.tests == {"kind": "call"} and s.metadata == {"level": 3}
    # the string AReaL's trainer resolves (import_from_string, then a RolloutWorkflow subclass)
    from areal.api import RolloutWorkflow
    from areal.utils.dynamic_import import import_from_string

    cls = import_from_string("rewardplug.integrations.areal.RLVRWorkflow")
    assert isinstance(cls, type) and issubclass(cls, RolloutWorkflow)
    with pytest.raises(ValueError, match="leave reward_fn out"):
        workflow(areal, stack_file, 2, reward_fn="areal.reward.gsm8k.gsm8k_reward_fn")
