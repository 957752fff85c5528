"""A real TRL GRPOTrainer on two CPU processes (run by ``torchrun``; see test_trl_distributed.py).

Every rank records what its reward function was given and returned, so the test can check that
groups straddling the two ranks got the rewards one process would compute for the whole batch.
Usage: ``torchrun --nproc_per_node 2 trl_two_processes.py OUT_DIR``.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

STACK = {
    "sources": [
        {"name": "len", "use": "python", "with": {"function": "rp_test_rewards:noisy_length"}}
    ],
}
PROMPTS = ["Write a function add.\n", "Write a function neg.\n", "Say hello.\n", "Count to 3.\n"]


def main() -> None:
    import importlib.util

    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    from rewardplug import load_stack

    out = Path(sys.argv[1])
    rank = int(os.environ["RANK"])
    spec = importlib.util.spec_from_file_location(
        "example", HERE.parents[1] / "examples" / "trl_grpo.py"
    )
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    model, tokenizer = example.tiny_model_and_tokenizer([*PROMPTS, "def add(a, b): return a + b"])

    stack = load_stack(STACK)
    inner = stack.as_trl_reward("stack")
    calls = []

    def reward(prompts, completions, **kwargs):
        rewards = inner(prompts=prompts, completions=completions, **kwargs)
        calls.append({"prompts": prompts, "completions": completions, "rewards": rewards})
        return rewards

    reward.__name__ = "stack"
    args = GRPOConfig(
        output_dir=str(out / "trainer"),
        max_steps=2,
        per_device_train_batch_size=2,  # 2 ranks x 2 = one group of 4, split across the ranks
        num_generations=4,
        max_completion_length=16,
        learning_rate=1e-3,
        logging_steps=1,
        report_to="none",
        save_strategy="no",
        use_cpu=True,
        bf16=False,
        beta=0.0,
        seed=0,
        disable_tqdm=True,
        temperature=1.5,
    )
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=[reward],
        args=args,
        train_dataset=Dataset.from_list([{"prompt": p} for p in PROMPTS]),
        processing_class=tokenizer,
    )
    trainer.train()
    (out / f"rank{rank}.json").write_text(json.dumps(calls))
    # Tear the process group down before exit: left to the interpreter's exit, a gloo thread
    # still running aborted a rank once ("terminate called without an active exception").
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
