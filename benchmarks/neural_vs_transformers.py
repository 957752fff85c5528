"""``neural_rm``'s deterministic path against plain transformers on the same pairs, and the cores
both use (CPU time / wall time), called directly, from a worker thread and through a stack.

Target (issue 14): within 10 % of plain transformers, using every core torch is allowed.

    python benchmarks/neural_vs_transformers.py --pairs 256 --repeats 3
    python benchmarks/neural_vs_transformers.py --smoke    # 8 pairs: seconds
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import threading
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))


def main() -> None:
    from _bench import parser, size

    ap = parser(__doc__)
    ap.add_argument("--pairs", type=int, default=None, help="default 256 (--smoke: 8)")
    args = ap.parse_args()
    args.pairs = args.pairs or size(args, 256, 8)

    import torch
    from mc_dropout_bench import minilm_rm, pairs
    from rewardplug_neural.rm_source import NeuralRMSource
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    import rewardplug
    from rewardplug.types import Sample

    path = minilm_rm()
    data = pairs(args.pairs)
    samples = [Sample(prompt=p, response=r) for p, r in data]
    options = {"model": path, "device": "cpu", "batch_size": 32, "max_length": 128}
    det = NeuralRMSource(**options, mc_samples=1)
    det.load()
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSequenceClassification.from_pretrained(path).eval()
    stack = rewardplug.load_stack(
        {
            "sources": [
                {"name": "rm", "use": "neural_rm", "with": {**options, "mc_samples": 1}},
                {"name": "len", "use": "python",
                 "with": {"function": "benchmarks.neural_vs_transformers:length"}},
            ]
        }
    )  # fmt: skip

    def plain() -> None:
        with torch.inference_mode():
            for i in range(0, len(data), 32):
                chunk = data[i : i + 32]
                batch = tok([p for p, _ in chunk], [r for _, r in chunk], padding=True,
                            truncation=True, max_length=128, return_tensors="pt")  # fmt: skip
                model(**batch)

    def in_thread() -> None:
        t = threading.Thread(target=det.score, args=(samples,))
        t.start()
        t.join()

    runs = {
        "plain transformers": plain,
        "neural_rm, direct": lambda: det.score(samples),
        "neural_rm, worker thread": in_thread,
        "neural_rm, ascore": lambda: asyncio.run(det.ascore(samples)),
        "neural_rm in a 2-source stack": lambda: stack.score(samples),
    }
    for fn in runs.values():
        fn()  # warm up
    wall: dict[str, list[float]] = {k: [] for k in runs}
    cpu: dict[str, list[float]] = {k: [] for k in runs}
    for _ in range(args.repeats):
        for name, fn in runs.items():
            w, c = time.perf_counter(), time.process_time()
            fn()
            wall[name].append(time.perf_counter() - w)
            cpu[name].append(time.process_time() - c)
    base = statistics.median(wall["plain transformers"])
    print(f"{args.pairs} pairs, MiniLM-L6 RM, batch 32, max_length 128, torch threads "
          f"{torch.get_num_threads()}, medians of {args.repeats}")  # fmt: skip
    for name in runs:
        w, c = statistics.median(wall[name]), statistics.median(cpu[name])
        print(f"  {name:32s} wall {w:6.2f} s ({w / base:4.2f}x plain)  cores used {c / w:4.2f}")


def length(prompts: list, completions: list, **columns: object) -> list[float]:
    """A second, trivial source for the stack run."""
    return [float(len(c)) for c in completions]


if __name__ == "__main__":
    main()
