"""Natural reward hacking with a real LM policy: TRL GRPO on a hackable proxy, raw vs discretized.

The companion of ``benchmarks/rl_hacking.py`` (whose policy is linear and whose hack is planted):
here a language model learns GSM8K from a proxy it can hack -- how much its solution *looks* like
the reference solution (``embedding_similarity``, MiniLM with MC dropout, through
``Stack.as_trl_reward()``) -- while gold is what the proxy stands in for: the final number is
right. Each arm (``raw``: the proxy undiscretized; ``discretized``: the stack's ``discretize:``;
``gold``: trained on correctness itself) runs once per seed; every ``eval_every`` steps the policy
answers the held-out problems greedily and gold accuracy and proxy are recorded next to TRL's
logged KL. Sized for one GPU (see benchmarks/rl_trl_gpu.yaml and docs/rl-experiment.md)::

    python benchmarks/rl_trl_gpu.py --config benchmarks/rl_trl_gpu.yaml --out rl_trl_out
    python benchmarks/rl_trl_gpu.py --tiny          # CPU smoke run: random tiny policy, 2 steps

The last line printed is one JSON object ``{"arms": {arm: {heldout_gold_final, heldout_gold_ci,
proxy_final, kl_final}}}``, the same endpoints as rl_hacking.py's.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


class Settings(BaseModel):
    """benchmarks/rl_trl_gpu.yaml, validated (unknown keys are errors that name the key)."""

    model_config = ConfigDict(extra="forbid")

    policy: str = "bundled"
    data: str = "../shared/data/gsm8k/test.jsonl"
    train_problems: int = Field(1000, ge=1)
    heldout_problems: int = Field(128, ge=1)
    arms: list[str] = ["raw", "discretized", "gold"]
    seeds: list[int] = [0, 1, 2]
    eval_every: int = Field(20, ge=1)
    grpo: dict[str, Any] = Field(default_factory=dict)
    proxy: dict[str, Any]


def load_settings(path: Path) -> Settings:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        settings = Settings.model_validate(data)
    except (OSError, yaml.YAMLError) as exc:
        raise SystemExit(f"cannot read {path}: {exc}") from None
    except ValidationError as exc:
        lines = [f"  - {'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()]
        raise SystemExit(f"invalid {path}:\n" + "\n".join(lines)) from None
    check_arms(settings.arms, str(path))
    return settings


def check_arms(arms: list[str], origin: str) -> None:
    unknown = sorted(set(arms) - {"raw", "discretized", "gold"})
    if unknown:
        raise SystemExit(
            f"invalid {origin}: arms: unknown arm(s) {unknown}; use raw, discretized, gold"
        )


def final_number(text: str) -> str | None:
    """The last number of a solution (GSM8K references end in ``#### N``), commas removed."""
    found = _NUMBER.findall(text.split("####")[-1] if "####" in text else text)
    return found[-1].replace(",", "").rstrip(".") if found else None


def gold_correct(completions: list[Any], answer: list[str], **_: Any) -> list[float]:
    """Gold: 1.0 when the completion's last number equals the reference's final answer."""
    out = []
    for completion, reference in zip(completions, answer, strict=True):
        text = completion if isinstance(completion, str) else completion[-1]["content"]
        got, want = final_number(text), final_number(reference)
        try:
            out.append(float(got is not None and float(got) == float(want)))
        except (TypeError, ValueError):
            out.append(0.0)
    return out


def problems(settings: Settings, tiny: bool) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(train, held-out) rows: a chat prompt, the reference solution, its answer."""
    path = (ROOT / settings.data).resolve()
    if not path.is_file():
        raise SystemExit(f"GSM8K not found at {path}: see ../shared/data/README.md")
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        item = json.loads(line)
        question = item["question"] + "\nSolve it step by step; end with '#### <number>'."
        rows.append(
            {
                # a plain-text prompt for the tiny policy, whose tokenizer has no chat template
                "prompt": question if tiny else [{"role": "user", "content": question}],
                "reference": item["answer"],
                "answer": item["answer"],
            }
        )
    n_train, n_held = (8, 4) if tiny else (settings.train_problems, settings.heldout_problems)
    return rows[:n_train], rows[-n_held:]


def policy_path(settings: Settings, tiny: bool, texts: list[str], out: Path) -> tuple[str, Any]:
    """The policy as a folder or hub id (TRL loads it twice when ``beta > 0``: the policy and its
    frozen reference) and its tokenizer: a tiny random Llama saved under ``out`` (``--tiny``),
    the bundled SmolLM2-135M-Instruct (converted once from its GGUF file, offline), or the
    config's hub id / local folder."""
    from transformers import AutoTokenizer

    if tiny:
        import importlib.util

        spec = importlib.util.spec_from_file_location(
            "trl_grpo_example", ROOT / "examples" / "trl_grpo.py"
        )
        example = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(example)
        model, tokenizer = example.tiny_model_and_tokenizer(texts)
        folder = out / "tiny-policy"
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        return str(folder), tokenizer
    folder = settings.policy
    if folder == "bundled":
        sys.path.insert(0, str(ROOT / "plugins"))
        from rewardplug_judge.local_model import resolve

        folder, _ = resolve(None, None)
    return folder, AutoTokenizer.from_pretrained(folder)


def heldout_eval(model: Any, tokenizer: Any, rows: list[dict[str, Any]], stack: Any, max_new: int):
    """Greedy answers to the held-out problems: (gold accuracy, mean raw proxy score)."""
    import torch

    import rewardplug

    tokenizer.padding_side = "left"
    texts = [r["prompt"] if isinstance(r["prompt"], str) else
             tokenizer.apply_chat_template(r["prompt"], tokenize=False, add_generation_prompt=True)
             for r in rows]  # fmt: skip
    completions = []
    model.eval()
    with torch.no_grad():
        for i in range(0, len(texts), 32):
            batch = tokenizer(texts[i : i + 32], return_tensors="pt", padding=True).to(model.device)
            out = model.generate(**batch, max_new_tokens=max_new, do_sample=False)
            completions += tokenizer.batch_decode(out[:, batch["input_ids"].shape[1] :], skip_special_tokens=True)  # fmt: skip
    model.train()
    gold = gold_correct(completions, [r["answer"] for r in rows])
    samples = [rewardplug.Sample(group=str(i), prompt=r["prompt"], response=c, reference=r["reference"])
               for i, (r, c) in enumerate(zip(rows, completions, strict=True))]  # fmt: skip
    proxy = [r.raw for r in stack.score(samples) if r.raw is not None]
    return sum(gold) / len(gold), (sum(proxy) / len(proxy) if proxy else float("nan"))


def run_arm(
    arm: str, seed: int, settings: Settings, args: argparse.Namespace
) -> list[dict[str, Any]]:
    """One GRPO run; the held-out curve as a list of {step, gold, proxy, kl}."""
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    import rewardplug

    train_rows, held_rows = problems(settings, args.tiny)
    stack_cfg = json.loads(json.dumps(settings.proxy))
    disc = stack_cfg.setdefault("discretize", {})
    disc["enabled"] = arm == "discretized"
    if args.tiny:  # a few MC draws on CPU
        for source in stack_cfg["sources"]:
            source.setdefault("with", {})["mc_samples"] = 2
    stack = rewardplug.load_stack(stack_cfg)
    raw_stack = rewardplug.load_stack({**stack_cfg, "discretize": {"enabled": False}})
    texts = [str(r["prompt"]) + r["answer"] for r in train_rows]
    model, tokenizer = policy_path(settings, args.tiny, texts, args.out)
    grpo = {**settings.grpo, **({"max_steps": 2, "per_device_train_batch_size": 8,
            "num_generations": 4, "max_completion_length": 16} if args.tiny else {})}  # fmt: skip
    curve: list[dict[str, Any]] = []
    max_new = int(grpo.get("max_completion_length", 256))

    class HeldOut(TrainerCallback):
        def on_step_end(self, targs, state, control, model=None, **kw):
            if state.global_step % settings.eval_every == 0 or state.global_step == state.max_steps:
                gold, proxy = heldout_eval(model, tokenizer, held_rows, raw_stack, max_new)
                kl = next((e["kl"] for e in reversed(state.log_history) if "kl" in e), float("nan"))
                curve.append({"step": state.global_step, "gold": gold, "proxy": proxy, "kl": kl})
                print(json.dumps({"arm": arm, "seed": seed, **curve[-1]}), flush=True)

    config = GRPOConfig(
        output_dir=str(args.out / f"{arm}-seed{seed}"),
        seed=seed,
        logging_steps=1,
        report_to="none",
        save_strategy="no",
        use_cpu=args.tiny,
        bf16=not args.tiny,
        reward_weights=[0.0, 1.0] if arm == "gold" else [1.0, 0.0],  # the other one is only logged
        **grpo,
    )
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=[stack.as_trl_reward("proxy"), gold_correct],
        args=config,
        train_dataset=Dataset.from_list(train_rows),
        processing_class=tokenizer,
        callbacks=[HeldOut()],
    )
    trainer.train()
    stack.close()
    raw_stack.close()
    return curve


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", type=Path, default=HERE / "rl_trl_gpu.yaml")
    parser.add_argument(
        "--out", type=Path, default=Path("rl_trl_out"), help="trainer folders and curves.json"
    )
    parser.add_argument(
        "--tiny",
        "--smoke",
        action="store_true",
        help="CPU smoke run: tiny random policy, 2 steps, 1 seed",
    )
    parser.add_argument("--arms", nargs="+", help="override the config's arms")
    parser.add_argument("--seeds", nargs="+", type=int, help="override the config's seeds")
    parser.add_argument(
        "--max-steps", type=int, help="override grpo.max_steps (a short device check)"
    )
    return parser.parse_args(argv)  # fmt: skip


def main(argv: list[str] | None = None) -> dict[str, Any]:
    import numpy as np
    from scipy import stats

    args = parse_args(argv)
    settings = load_settings(args.config)
    if args.arms:
        check_arms(args.arms, "--arms")
        settings = settings.model_copy(update={"arms": args.arms})
    if args.seeds:
        settings = settings.model_copy(update={"seeds": args.seeds})
    if args.max_steps:
        settings = settings.model_copy(
            update={"grpo": {**settings.grpo, "max_steps": args.max_steps}}
        )
    seeds = settings.seeds[:1] if args.tiny else settings.seeds
    curves = {arm: [run_arm(arm, s, settings, args) for s in seeds] for arm in settings.arms}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "curves.json").write_text(json.dumps(curves), encoding="utf-8")
    summary: dict[str, Any] = {}
    for arm, runs in curves.items():
        final = np.array([run[-1]["gold"] for run in runs])
        half = (
            stats.t.ppf(0.975, len(final) - 1) * final.std(ddof=1) / np.sqrt(len(final))
            if len(final) > 1
            else 0.0
        )
        summary[arm] = {
            "heldout_gold_final": float(final.mean()),
            "heldout_gold_ci": [float(final.mean() - half), float(final.mean() + half)],
            "proxy_final": float(np.mean([run[-1]["proxy"] for run in runs])),
            "kl_final": float(np.mean([run[-1]["kl"] for run in runs])),
        }  # fmt: skip
    result = {"arms": summary, "seeds": seeds}
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
