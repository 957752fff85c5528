"""A real TRL GRPOTrainer on two CPU processes (run by ``torchrun``; see test_trl_distributed.py).

Every rank records what its reward function was given and returned, so the test can check that
groups straddling the two ranks got the rewards one process would compute for the whole batch.
The reward function is built without ``num_generations``: it reads G from the trainer. The
dataset holds its first prompt twice and each generation batch is 3 groups of 4 over 2 ranks of
6, so the first batch is ``A A A A | A A A A | B B B B`` with the second ``A`` group split 2 | 2:
grouped by prompt, the two ``A`` groups would be one pool of 8.
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
PROMPTS = [
    "Write a function add.\n",
    "Write a function add.\n",  # the dataset holds it twice: two groups, not one
    "Write a function neg.\n",
    "Say hello.\n",
    "Count to 3.\n",
    "Say bye.\n",
]
NUM_GENERATIONS = 4
PER_RANK = 6  # 2 ranks x 6 = 12 = 3 groups of 4; the 2nd group straddles the ranks


def main() -> None:
    from datasets import Dataset
    from trl import GRPOTrainer
    from trl_helpers import grpo_config, recording, tiny_model_and_tokenizer

    from rewardplug import load_stack

    out = Path(sys.argv[1])
    rank = int(os.environ["RANK"])
    model, tokenizer = tiny_model_and_tokenizer([*PROMPTS, "def add(a, b): return a + b"])
    stack = load_stack(STACK)
    reward, calls = recording(stack.as_trl_reward("stack"))
    args = grpo_config(
        out / "trainer",
        max_steps=2,
        per_device_train_batch_size=PER_RANK,
        num_generations=NUM_GENERATIONS,
        shuffle_dataset=False,  # the batches are the dataset's rows in order
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
    # Leave here, without freeing anything. Freeing main's objects when main returned hung a rank
    # now and then, after its work was written: ~ProcessGroupGloo (run with the GIL held) joins
    # gloo's run-loop thread, which was itself waiting for the GIL to free a finished
    # collective's tensors (gdb showed both threads) -- a deadlock inside torch.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    import faulthandler

    # A rank that hangs prints every thread's stack and fails, instead of running into the
    # test's timeout without a word.
    faulthandler.dump_traceback_later(240, exit=True)
    main()
