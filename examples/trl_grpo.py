"""GRPO with TRL, rewarded by a rewardplug stack -- a complete script to adapt.

The stack replaces your reward functions: every completion is scored by all of the stack's
sources, their uncertain scores are combined, and completions of the same prompt whose scores
are not confidently different get the same reward (so GRPO stops chasing score noise).

Run it offline as a smoke test (a tiny random model built here, 2 steps on CPU)::

    PYTHONPATH=examples python examples/trl_grpo.py --tiny --max-steps 2

Real use: a model and a dataset of your own, and a stack file::

    PYTHONPATH=examples python examples/trl_grpo.py \\
        --model Qwen/Qwen2.5-0.5B-Instruct --data my_problems.jsonl \\
        --stack examples/stacks/code.yaml --num-generations 8 --max-steps 500

The dataset is JSONL with a ``prompt`` column (text or chat messages) and whatever the stack's
sources read: ``tests`` for ``test_cases`` (a mapping, or a JSON string), ``reference`` for
reference-based sources, ``rubric`` for per-row rubrics. TRL passes every column to the reward
function; rewardplug turns them into sample fields. ``PYTHONPATH=examples`` makes the stack's
``python`` reward functions (``rewards:...``, in ``examples/rewards.py``) importable.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import rewardplug

HERE = Path(__file__).resolve().parent

#: used when --stack is not given: unit tests dominate, a formatting reward breaks ties.
DEFAULT_STACK: dict[str, Any] = {
    "sources": [
        {"name": "tests", "use": "test_cases", "weight": 1.0, "with": {"timeout_s": 5}},
        {
            "name": "format",
            "use": "python",
            "weight": 0.2,
            "with": {"function": "rewards:fenced_code"},
        },
    ],
    "combine": "weighted_sum",
    "discretize": {"enabled": True, "confidence": 0.9, "assign": "mean"},
}


def load_rows(path: Path) -> list[dict[str, Any]]:
    """Unique prompts of a JSONL file (the demo data has several answers per prompt)."""
    rows, seen = [], set()
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        key = json.dumps(row["prompt"], sort_keys=True)
        if key in seen:
            continue
        seen.add(key)
        out = {"prompt": row["prompt"]}
        for column in ("tests", "reference", "rubric"):
            if row.get(column) is not None:
                # JSON strings keep nested test specs intact in an Arrow-backed dataset.
                value = row[column]
                out[column] = json.dumps(value) if isinstance(value, dict) else value
        rows.append(out)
    return rows


def tiny_model_and_tokenizer(texts: list[str]) -> tuple[Any, Any]:
    """A 2-layer Llama and a byte-level BPE tokenizer trained on ``texts`` (no downloads)."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=500,
        special_tokens=["<pad>", "<eos>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(texts * 10, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>")
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=1024,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
    )
    return LlamaForCausalLM(config), tokenizer


def main() -> None:
    parser = argparse.ArgumentParser(description="GRPO with a rewardplug reward stack")
    parser.add_argument("--model", default=None, help="model id or local folder")
    parser.add_argument(
        "--tiny", action="store_true", help="a tiny random model (offline smoke test)"
    )
    parser.add_argument("--data", type=Path, default=HERE / "data" / "demo.jsonl")
    parser.add_argument("--stack", default=None, help="stack YAML (default: tests + format)")
    parser.add_argument("--output-dir", default="grpo-rewardplug")
    parser.add_argument("--num-generations", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=8, help="completions per device step")
    parser.add_argument("--max-steps", type=int, default=2)
    parser.add_argument("--max-completion-length", type=int, default=128)
    parser.add_argument("--learning-rate", type=float, default=1e-6)
    parser.add_argument(
        "--async-reward",
        action="store_true",
        help="use the async reward function (stacks of network-bound judges)",
    )
    args = parser.parse_args()
    if not args.tiny and not args.model:
        parser.error("give --model, or --tiny for the offline smoke test")

    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    rows = load_rows(args.data)
    stack = rewardplug.load_stack(args.stack or DEFAULT_STACK)
    reward = stack.as_async_trl_reward() if args.async_reward else stack.as_trl_reward()

    if args.tiny:
        texts = [
            r["prompt"] if isinstance(r["prompt"], str) else json.dumps(r["prompt"]) for r in rows
        ]
        model, tokenizer = tiny_model_and_tokenizer([*texts, "def f(x):\n    return x\n"])
    else:
        from transformers import AutoTokenizer

        model, tokenizer = args.model, AutoTokenizer.from_pretrained(args.model)

    config = GRPOConfig(
        output_dir=args.output_dir,
        num_generations=args.num_generations,
        per_device_train_batch_size=args.batch_size,
        max_completion_length=args.max_completion_length,
        max_steps=args.max_steps,
        learning_rate=args.learning_rate,
        logging_steps=1,
        report_to="none",
        save_strategy="no",
        # Tie-grouped rewards are already on the scale of the stack; TRL's per-group std
        # scaling would blow up groups whose rewards are almost all tied.
        scale_rewards="none",
        use_cpu=args.tiny,
        bf16=not args.tiny,
    )
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=[reward],
        args=config,
        train_dataset=Dataset.from_list(rows),
        processing_class=tokenizer,
    )
    trainer.train()
    stack.close()
    # Per-source means are in the logs next to TRL's own reward metrics:
    last = next(e for e in reversed(trainer.state.log_history) if "reward" in e)
    for key in sorted(k for k in last if k.startswith("rewards/")):
        print(f"{key}: {last[key]:.4f}")


if __name__ == "__main__":
    main()
