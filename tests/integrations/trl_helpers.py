"""Shared by the TRL tests: the example's tiny model, a CPU ``GRPOConfig``, recording wrappers.

This folder is on ``sys.path`` while pytest runs (and ``trl_two_processes.py`` puts it there), so
tests import it as ``trl_helpers``.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path
from typing import Any

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "trl_grpo.py"


def example_module() -> Any:
    """``examples/trl_grpo.py``, whose tiny-model builder the tests use (so the example is tested)."""
    spec = importlib.util.spec_from_file_location("rewardplug_example_trl_grpo", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tiny_model_and_tokenizer(texts: list[str]) -> tuple[Any, Any]:
    """The example's 2-layer random Llama and a tokenizer trained on ``texts`` (no downloads)."""
    return example_module().tiny_model_and_tokenizer(texts)


def grpo_config(output_dir: Any, **overrides: Any) -> Any:
    """A ``GRPOConfig`` for a few fast CPU steps (no saving, no reporting); ``overrides`` win."""
    from trl import GRPOConfig

    settings: dict[str, Any] = {
        "output_dir": str(output_dir),
        "max_steps": 2,
        "per_device_train_batch_size": 8,
        "num_generations": 4,
        "max_completion_length": 16,
        "learning_rate": 1e-3,
        "logging_steps": 1,
        "report_to": "none",
        "save_strategy": "no",
        "use_cpu": True,
        "bf16": False,
        "beta": 0.0,
        "seed": 0,
        "disable_tqdm": True,
    }
    return GRPOConfig(**{**settings, **overrides})


def recording(fn: Callable[..., list[float | None]]) -> tuple[Callable[..., Any], list[dict]]:
    """``fn`` (a sync TRL reward function) wrapped to record every call, and the record list.

    Each record holds the call's ``prompts``, ``completions`` and returned ``rewards``, and
    ``training``: the trainer's mode (``model.training`` of the trainer behind ``log_metric``;
    None without a trainer).
    """
    calls: list[dict] = []

    def reward(prompts: list, completions: list, **kwargs: Any) -> list[float | None]:
        rewards = fn(prompts=prompts, completions=completions, **kwargs)
        trainer = getattr(kwargs.get("log_metric"), "__self__", None)
        model = getattr(trainer, "model", None)
        calls.append(
            {
                "prompts": list(prompts),
                "completions": list(completions),
                "rewards": list(rewards),
                "training": getattr(model, "training", None),
            }
        )
        return rewards

    reward.__name__ = reward.__qualname__ = fn.__name__
    return reward, calls


def blockwise(stack: Any, prompts: list, completions: list, g: int) -> list[float | None]:
    """The rewards of each block of ``g`` completions scored alone (one ``stack.score`` each)."""
    from rewardplug.integrations.trl import trl_samples

    out: list[float | None] = []
    for start in range(0, len(prompts), g):
        block = slice(start, start + g)
        out += [r.reward for r in stack.score(trl_samples(prompts[block], completions[block]))]
    return out
