"""The arms of ``benchmarks/rl_tiny_lm.py``: what each arm's GRPO is rewarded with, as a TRL
reward function, and one GRPO run through TRL's own ``GRPOTrainer``.

Every proxy arm is a rewardplug stack whose source is a ``python`` function of
``tiny_lm_rm`` (the MC-dropout reward model, or the noisy checker), passed to the trainer as
``stack.as_trl_reward()``; ``gap_merge`` wraps the discretized stack (it needs its tier counts);
``gold`` is plain strict correctness. All arms share every other GRPO setting, except ``dr_grpo``
(TRL's ``scale_rewards="none"``: advantages centred, not divided by the group's std).
"""

from __future__ import annotations

import copy
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import numpy as np
from tiny_lm_task import is_correct

import rewardplug
from rewardplug import metrics
from rewardplug.integrations.trl import trl_samples

NEURAL_ARMS = (
    "raw",
    "discretized",
    "equivalent",
    "gap_merge",
    "dr_grpo",
    "binary",
    "clip",
    "ensemble_mean",
    "gold",
)
CHECKER_ARMS = ("checker_raw", "checker_discretized", "checker_gap_merge")
ARMS = NEURAL_ARMS + CHECKER_ARMS
CONFIDENCE = 0.9


@dataclass
class Calibration:
    """Settings chosen on the validation split before any GRPO: ``equivalent``'s margin and the
    clipping ceiling (the median proxy value of completions the labeller calls correct)."""

    margin: float
    clip_max: float
    margin_accuracy: dict[str, float]


def _rm_source(function: str = "tiny_lm_rm:rm_reward", **extra: Any) -> dict[str, Any]:
    return {"name": "rm", "use": "python", "with": {"function": function}, **extra}


def _checker_source(noise: float) -> dict[str, Any]:
    return {
        "name": "checker",
        "use": "python",
        "with": {"function": "tiny_lm_rm:checker_reward"},
        "noise": {"std": noise, "draws": 16},
    }


def _disc(assign: str = "mean", rule: str = "different", margin: float = 0.0) -> dict[str, Any]:
    return {
        "enabled": True,
        "confidence": CONFIDENCE,
        "assign": assign,
        "rule": rule,
        "margin": margin,
        "method": "exact",
    }


def stack_spec(arm: str, cal: Calibration, checker_noise: float) -> dict[str, Any] | None:
    """The arm's stack (None for ``gold``); ``gap_merge`` arms get the discretized stack."""
    off = {"enabled": False}
    specs = {
        "raw": (_rm_source(), off),
        "dr_grpo": (_rm_source(), off),
        "discretized": (_rm_source(), _disc()),
        "gap_merge": (_rm_source(), _disc()),
        "equivalent": (_rm_source(), _disc(rule="equivalent", margin=cal.margin)),
        "binary": (_rm_source(), _disc(assign="binary")),
        "clip": (_rm_source(transform=[{"kind": "clip", "max": cal.clip_max}]), off),
        "ensemble_mean": (_rm_source("tiny_lm_rm:rm_mean_reward"), off),
        "checker_raw": (_checker_source(checker_noise), off),
        "checker_discretized": (_checker_source(checker_noise), _disc()),
        "checker_gap_merge": (_checker_source(checker_noise), _disc()),
    }
    if arm == "gold":
        return None
    source, disc = specs[arm]
    return {"sources": [source], "combine": "weighted_sum", "discretize": disc}


def gap_merge(values: np.ndarray, n_tiers: int) -> np.ndarray:
    """One group cut at its ``n_tiers - 1`` largest gaps between consecutive sorted values; each
    tier gets its mean value (as ``assign: mean``). Draw-free: only the point values are used."""
    order = np.argsort(-values, kind="stable")
    ranked = values[order]
    gaps = ranked[:-1] - ranked[1:]
    cuts = np.sort(np.argsort(-gaps, kind="stable")[: max(0, n_tiers - 1)])
    tier_sorted = np.searchsorted(cuts, np.arange(len(values)), side="left")
    means = np.bincount(tier_sorted, weights=ranked) / np.bincount(tier_sorted)
    out = np.empty_like(values)
    out[order] = means[tier_sorted]
    return out


def gap_merge_reward(stack: Any, group_size: int) -> Any:
    """A TRL reward function: the discretized stack's tier count per group, applied to the raw
    values by :func:`gap_merge`."""

    def gap_merge_reward(prompts: list[Any], completions: list[Any], **_: Any) -> list[float]:
        samples = trl_samples(prompts, completions, num_generations=group_size)
        rewards = stack.score(samples)
        members: dict[str, list[int]] = defaultdict(list)
        for i, r in enumerate(rewards):
            members[r.group].append(i)
        out = np.zeros(len(rewards))
        for idx in members.values():
            raw = np.array([rewards[i].raw for i in idx], dtype=np.float64)
            out[idx] = gap_merge(raw, int(rewards[idx[0]].n_tiers or 1))
        return out.tolist()

    return gap_merge_reward


def gold_reward(prompts: list[str], completions: list[str], **_: Any) -> list[float]:
    """Strict correctness: the ceiling."""
    return [float(is_correct(p, c)) for p, c in zip(prompts, completions, strict=True)]


def calibrate(
    prompts: list[str], completions: list[str], labels: np.ndarray, group_size: int
) -> Calibration:
    """Choose ``equivalent``'s margin (best pairwise accuracy against the labeller's verdicts,
    rewardplug's own metric, over a grid; ties go to the smaller margin) and the clip ceiling, on
    validation groups sampled from the SFT policy."""
    import tiny_lm_rm

    value, draws = tiny_lm_rm.MODEL["rm"].score(prompts, completions, tiny_lm_rm.MODEL["k"])
    groups = np.arange(len(prompts)) // group_size
    accuracy = {}
    for margin in (0.01, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5):
        result = rewardplug.discretize(
            draws, groups, CONFIDENCE, "mean", values=value, margin=margin, rule="equivalent"
        )
        metric = metrics.evaluate(result.reward, labels, groups, n_boot=0)
        accuracy[str(margin)] = float(metric["accuracy"] or 0.0)
    best = max(accuracy, key=lambda m: (accuracy[m], -float(m)))
    correct = value[labels > 0.5]
    clip_max = float(np.median(correct)) if len(correct) else float(np.median(value))
    return Calibration(float(best), clip_max, accuracy)


@dataclass(frozen=True)
class Grpo:
    """The GRPO settings shared by every arm."""

    steps: int
    prompts_per_step: int = 8
    group_size: int = 8
    lr: float = 3e-4
    max_completion: int = 5


def run_grpo(
    arm: str,
    sft_model: Any,
    tokenizer: Any,
    train_prompts: list[str],
    cal: Calibration,
    grpo: Grpo,
    seed: int,
    out_dir: str,
    checker_noise: float,
    use_cpu: bool,
) -> tuple[Any, dict[str, float]]:
    """GRPO of a copy of the SFT policy for one arm; returns (policy, training summary)."""
    from datasets import Dataset
    from transformers import PrinterCallback
    from trl import GRPOConfig, GRPOTrainer

    spec = stack_spec(arm, cal, checker_noise)
    stack = None if spec is None else rewardplug.load_stack(spec)
    if stack is None:
        reward: Any = gold_reward
    elif arm.endswith("gap_merge"):
        reward = gap_merge_reward(stack, grpo.group_size)
    else:
        reward = stack.as_trl_reward(name="proxy")
    config = GRPOConfig(
        output_dir=out_dir,
        num_generations=grpo.group_size,
        per_device_train_batch_size=grpo.group_size * grpo.prompts_per_step,
        max_completion_length=grpo.max_completion,
        max_steps=grpo.steps,
        learning_rate=grpo.lr,
        scale_rewards="none" if arm == "dr_grpo" else "group",
        beta=0.0,
        temperature=1.0,
        logging_steps=max(1, grpo.steps // 4),
        report_to="none",
        save_strategy="no",
        use_cpu=use_cpu,
        bf16=False,
        seed=seed,
        data_seed=seed,
        disable_tqdm=True,
    )
    trainer = GRPOTrainer(
        model=copy.deepcopy(sft_model),
        reward_funcs=[reward],
        args=config,
        train_dataset=Dataset.from_list([{"prompt": p} for p in train_prompts]),
        processing_class=tokenizer,
    )
    trainer.remove_callback(PrinterCallback)  # one line per arm is printed by the script
    trainer.train()
    if stack is not None:
        stack.close()
    logs = [e for e in trainer.state.log_history if "reward" in e]
    summary = {"train_reward_last": float(logs[-1]["reward"]) if logs else float("nan")}
    tiers = [e[k] for e in logs for k in e if k.endswith("n_tiers/mean")]
    if tiers:
        summary["tiers_mean"] = float(np.mean(tiers))
    model = trainer.model.to("cpu").eval()
    return model, summary
