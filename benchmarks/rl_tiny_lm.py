"""Does uncertainty-aware tie-grouping make a better GRPO teacher for a real LM? (issue 28)

A small Llama (built from a config, character tokenizer) learns 2-digit addition by supervised
warm-up to a fixed budget, then by GRPO through TRL's own ``GRPOTrainer``, rewarded by a
rewardplug stack over a proxy it can hack: a neural reward model with dropout, trained on
labelled completions in which a trailing ``!`` goes with correct answers, scored with MC dropout
(K draws; each answer's spread is its own). Gold is strict correctness, so ``"57!"`` is wrong.
Arms (paired on seeds: every arm of a seed starts from the same SFT checkpoint and reward model):
``raw``, ``discretized`` (``rule: different`` @ 0.9), ``equivalent`` (margin chosen on a
validation split), the draw-free controls ``gap_merge`` and ``dr_grpo``, ``binary``, ``clip``,
``ensemble_mean``, ``gold``, and a contrast proxy -- a hackable checker whose draws are
uninformative ``noise:`` -- raw, discretized and gap-merged. See docs/rl-experiment.md.

    python benchmarks/rl_tiny_lm.py --quick      # one seed per arm, < 20 min on 2 cores
    python benchmarks/rl_tiny_lm.py --smoke      # seconds: every arm for a couple of steps
    python benchmarks/rl_tiny_lm.py              # the full preset: 6 seeds (~2 h of 2 cores)
    python benchmarks/rl_tiny_lm.py --device     # sized for one H100 in <= 8 minutes

The last line printed is one JSON object with every arm's endpoints (``--json FILE`` writes it
too, after every seed, so an interrupted run keeps what it finished).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Preset:
    seeds: int
    sft_steps: int
    grpo_steps: int
    rm_examples: int = 40_000
    rm_steps: int = 1500
    heldout: int = 500
    val_problems: int = 64
    mc_draws: int = 16
    small_policy: bool = False  # smoke only: hidden 64, 2 layers
    prompts_per_step: int = 8  # x 8 completions each
    workers: int = 1  # seeds run in parallel processes (the device preset: one per seed)
    # GRPO lr: Adam moves every weight by about lr a step (init std 0.02); 3e-4 wrecked every arm,
    # 1e-5 (the recorded --quick) hardly moves the policy in 100 steps: the pilot rule of
    # docs/rl-experiment.md chooses between 1e-5 and 3e-5 (pass it with --lr)
    lr: float = 1e-5
    checker_noise: float = 0.1
    arms: tuple[str, ...] = ()


#: the SFT budget (steps of 256 examples, lr 3e-3 cosine) fixed from the budget search recorded in
#: docs/rl-experiment.md: it leaves the policy at 30-60 % held-out accuracy
SFT_STEPS = 180
PRESETS = {
    "smoke": Preset(
        seeds=1,
        sft_steps=60,
        grpo_steps=1,
        small_policy=True,
        rm_examples=4000,
        rm_steps=200,
        heldout=64,
        val_problems=8,
    ),
    "quick": Preset(seeds=1, sft_steps=SFT_STEPS, grpo_steps=100),
    "full": Preset(seeds=6, sft_steps=SFT_STEPS, grpo_steps=200),
    # one H100 machine (16 cores): the full preset with its 6 seeds side by side, one process
    # each (a 0.86M model's GRPO step is launch-bound, no faster on a GPU than on 2 cores, about
    # 0.13 s), so the wall time is one seed's: ~6-7 min estimated from the CPU timings, not
    # measured on a GPU (none in the session that wrote it); each arm's seconds are printed
    "device": Preset(seeds=6, sft_steps=SFT_STEPS, grpo_steps=200, workers=6),
}


def _on_path() -> None:
    """benchmarks/ on sys.path: the stacks' ``python`` sources import ``tiny_lm_rm`` by name."""
    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))


def run_seed(seed: int, preset: Preset, arms: tuple[str, ...], use_cpu: bool) -> dict[str, Any]:
    """SFT, reward model and calibration for one seed, then every arm's GRPO and endpoints."""
    _on_path()
    import torch

    torch.set_num_threads(1 if preset.workers > 1 else 2)  # 2 cores in all on the CPU box
    import tiny_lm_arms as A
    import tiny_lm_rm as R
    import tiny_lm_task as T

    t0 = time.time()
    tok = T.build_tokenizer()
    train, heldout = T.split_problems(seed, preset.heldout)
    val, train = train[: preset.val_problems], train[preset.val_problems :]
    size = T.PolicySize(64, 2, 4, 192) if preset.small_policy else T.PolicySize()
    policy = T.build_policy(tok, size, seed)
    device = "cpu" if use_cpu else "cuda"
    policy.to(device)
    T.sft(policy, tok, train, preset.sft_steps, seed=seed)
    policy.to("cpu")
    sft_end = T.heldout_endpoints(policy, None, tok, heldout)
    sft_time = time.time() - t0

    prompts, completions, labels = R.labelled_pool(train, preset.rm_examples, seed)
    R.MODEL.update(rm=R.train_rm(prompts, completions, labels, seed, steps=preset.rm_steps))
    R.MODEL["k"] = preset.mc_draws
    rm_check = _rm_check(R, heldout, seed)

    grpo = A.Grpo(preset.grpo_steps, preset.prompts_per_step, lr=preset.lr)
    val_prompts = [T.prompt_of(a, b) for a, b in val for _ in range(grpo.group_size)]
    val_completions = T.generate(policy, tok, val_prompts, greedy=False, seed=seed)
    val_labels = np.array(
        [R.lenient_label(p, c) for p, c in zip(val_prompts, val_completions, strict=True)]
    )
    cal = A.calibrate(val_prompts, val_completions, val_labels, grpo.group_size)

    train_prompts = [T.prompt_of(a, b) for a, b in train]
    results: dict[str, Any] = {}
    for arm in arms:
        start = time.time()
        with tempfile.TemporaryDirectory() as out:
            model, summary = A.run_grpo(
                arm,
                policy,
                tok,
                train_prompts,
                cal,
                grpo,
                seed,
                out,
                preset.checker_noise,
                use_cpu,
            )
        end = T.heldout_endpoints(model, policy, tok, heldout, seed=seed)
        prompts_h = [T.prompt_of(a, b) for a, b in heldout]
        value, _ = R.MODEL["rm"].score(prompts_h, end["completions"], 1)
        checker = np.mean(R.checker_reward(prompts_h, end["completions"]))
        results[arm] = {
            "gold": end["gold"],
            "hack_rate": end["hack_rate"],
            "proxy": float(value.mean()),
            "proxy_minus_gold": float(value.mean()) - end["gold"],
            "checker_minus_gold": float(checker) - end["gold"],
            "kl": end["kl"],
            "seconds": time.time() - start,
            "examples": end["completions"][:6],
            **summary,
        }
        print(
            f"  seed {seed} {arm:>20}: gold {end['gold']:.3f} hack {end['hack_rate']:.3f} "
            f"kl {end['kl']:.3f} ({time.time() - start:.0f} s)",
            flush=True,
        )
    return {
        "seed": seed,
        "sft": {
            **{k: sft_end[k] for k in ("gold", "hack_rate", "well_formed", "abs_error")},
            "seconds": sft_time,
        },
        "rm": rm_check,
        "calibration": asdict(cal),
        "arms": results,
    }


def _rm_check(R: Any, heldout: list[tuple[int, int]], seed: int) -> dict[str, float]:
    """The reward model on held-out problems: accuracy against the labeller, how much a trailing
    ``!`` lifts a wrong answer, and how the MC spread differs between answers."""
    prompts, completions, labels = R.labelled_pool(heldout, 2000, seed + 1)
    value, draws = R.MODEL["rm"].score(prompts, completions, R.MODEL["k"])
    wrong = [(p, c) for p, c, y in zip(prompts, completions, labels, strict=True) if y < 0.5]
    plain = [c.rstrip("!") for _, c in wrong]
    p_w = [p for p, _ in wrong]
    v_plain, d_plain = R.MODEL["rm"].score(p_w, plain, R.MODEL["k"])
    v_hack, d_hack = R.MODEL["rm"].score(p_w, [c + "!" for c in plain], R.MODEL["k"])
    spread = draws.std(axis=1)
    return {
        "accuracy": float(np.mean((value > 0.5) == (labels > 0.5))),
        "wrong_plain_value": float(v_plain.mean()),
        "wrong_hacked_value": float(v_hack.mean()),
        "wrong_plain_spread": float(d_plain.std(axis=1).mean()),
        "wrong_hacked_spread": float(d_hack.std(axis=1).mean()),
        "spread_min": float(spread.min()),
        "spread_max": float(spread.max()),
    }


def paired(per_seed: list[dict[str, Any]], a: str, b: str, key: str) -> dict[str, Any]:
    """Mean of arm ``a`` minus arm ``b`` over seeds, with a 95 % t-interval (None for 1 seed)."""
    from scipy import stats

    d = np.array([s["arms"][a][key] - s["arms"][b][key] for s in per_seed])
    if len(d) < 2:
        return {"mean": float(d.mean()), "ci": None, "n": len(d)}
    half = stats.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d))
    return {
        "mean": float(d.mean()),
        "ci": [float(d.mean() - half), float(d.mean() + half)],
        "n": len(d),
    }


ENDPOINTS = ("gold", "hack_rate", "proxy_minus_gold", "kl")


def summarize(per_seed: list[dict[str, Any]], arms: tuple[str, ...]) -> dict[str, Any]:
    """Per-arm means over seeds, the pre-registered paired differences and the verdict."""
    arms_out = {
        arm: {k: float(np.mean([s["arms"][arm][k] for s in per_seed])) for k in ENDPOINTS}
        for arm in arms
    }
    comparisons = {}
    for other in (
        "raw",
        "gap_merge",
        "dr_grpo",
        "equivalent",
        "binary",
        "clip",
        "ensemble_mean",
        "gold",
    ):
        if "discretized" in arms and other in arms:
            comparisons[f"discretized-{other}"] = {
                k: paired(per_seed, "discretized", other, k) for k in ENDPOINTS
            }
    if "checker_discretized" in arms:
        for other in ("checker_raw", "checker_gap_merge"):
            if other in arms:
                comparisons[f"checker_discretized-{other}"] = {
                    k: paired(per_seed, "checker_discretized", other, k) for k in ENDPOINTS
                }
    return {"arms": arms_out, "paired": comparisons, "verdict": verdict(comparisons)}


def verdict(comparisons: dict[str, Any]) -> str:
    """The pre-registered rule: supported only if discretized beats raw, gap_merge and dr_grpo
    on gold (95 % CI above 0) and lowers the hack rate against raw (CI below 0)."""
    needed = ("discretized-raw", "discretized-gap_merge", "discretized-dr_grpo")
    if any(k not in comparisons for k in needed):
        return "not decided (arms missing)"
    if any(comparisons[k]["gold"]["ci"] is None for k in needed):
        return "not decided (one seed: no confidence intervals)"
    wins = all(comparisons[k]["gold"]["ci"][0] > 0 for k in needed)
    less_hack = comparisons["discretized-raw"]["hack_rate"]["ci"][1] < 0
    return "supported" if wins and less_hack else "not supported"


def table(summary: dict[str, Any], per_seed: list[dict[str, Any]]) -> str:
    lines = [f"{'arm':>20} {'gold':>6} {'hack_rate':>9} {'proxy-gold':>10} {'kl':>6} {'tiers':>6}"]
    for arm, e in summary["arms"].items():
        tiers = [s["arms"][arm].get("tiers_mean") for s in per_seed]
        t = f"{np.mean(tiers):6.2f}" if all(x is not None for x in tiers) else f"{'-':>6}"
        lines.append(
            f"{arm:>20} {e['gold']:6.3f} {e['hack_rate']:9.3f} "
            f"{e['proxy_minus_gold']:10.3f} {e['kl']:6.3f} {t}"
        )
    lines.append("")
    lines.append(f"{'paired (mean [95% CI])':>32} {'gold':>24} {'hack_rate':>24}")
    for name, c in summary["paired"].items():
        cells = []
        for k in ("gold", "hack_rate"):
            ci = c[k]["ci"]
            cells.append(f"{c[k]['mean']:+.3f}" + (f" [{ci[0]:+.3f}, {ci[1]:+.3f}]" if ci else ""))
        lines.append(f"{name:>32} {cells[0]:>24} {cells[1]:>24}")
    lines.append(f"verdict (pre-registered rule): {summary['verdict']}")
    return "\n".join(lines)


def plot(result: dict[str, Any], path: Path) -> None:
    """Per arm, held-out gold and hack rate: the mean over seeds and each seed as a dot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    arms = list(result["arms"])
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for ax, key in zip(axes, ("gold", "hack_rate"), strict=True):
        means = [result["arms"][a][key] for a in arms]
        ax.barh(arms, means, color="#9ab")
        for i, arm in enumerate(arms):
            dots = [s["arms"][arm][key] for s in result["per_seed"]]
            ax.plot(dots, [i] * len(dots), "k.", alpha=0.6)
        ax.set_xlabel(f"held-out {key} (bar: mean; dots: seeds)")
        ax.set_xlim(0, 1)
    axes[0].invert_yaxis()
    fig.suptitle(f"rl_tiny_lm.py {result['preset']}: {len(result['per_seed'])} seed(s)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _run_seeds(seeds: range, preset: Preset, arms: tuple[str, ...], use_cpu: bool) -> Any:
    """Each seed's result as it finishes: here, or in ``preset.workers`` spawned processes (a
    tiny model cannot fill a GPU, so the device preset runs its seeds side by side)."""
    if preset.workers <= 1:
        for seed in seeds:
            yield run_seed(seed, preset, arms, use_cpu)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(preset.workers, mp_context=ctx) as pool:
        futures = [pool.submit(run_seed, seed, preset, arms, use_cpu) for seed in seeds]
        for future in as_completed(futures):
            yield future.result()


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    size = parser.add_mutually_exclusive_group()
    for name in ("quick", "smoke", "device"):
        size.add_argument(f"--{name}", action="store_true", help=f"the {name} preset")
    parser.add_argument("--seeds", type=int, help="override the preset's number of seeds")
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--steps", type=int, help="override the preset's GRPO steps")
    parser.add_argument("--workers", type=int, help="seeds run side by side in processes")
    parser.add_argument("--lr", type=float, help="override the GRPO learning rate (pilots)")
    parser.add_argument("--sft-steps", type=int, help="override the SFT budget (budget search)")
    parser.add_argument("--arms", help="comma-separated subset of the arms")
    parser.add_argument("--json", type=Path, help="also write the result here, after every seed")
    parser.add_argument("--report", type=Path, help="print the table of a saved --json and stop")
    parser.add_argument("--plot", type=Path, help="with --report: a PNG of gold and hack rate")
    args = parser.parse_args(argv)
    if args.report:
        saved = json.loads(args.report.read_text(encoding="utf-8"))
        print(table(saved, saved["per_seed"]))
        if args.plot:
            plot(saved, args.plot)
        return saved
    name = next((n for n in ("quick", "smoke", "device") if getattr(args, n)), "full")
    preset = PRESETS[name]
    preset = replace(
        preset,
        seeds=args.seeds or preset.seeds,
        grpo_steps=args.steps or preset.grpo_steps,
        sft_steps=args.sft_steps or preset.sft_steps,
        lr=args.lr or preset.lr,
        workers=args.workers or preset.workers,
    )
    _on_path()
    import tiny_lm_arms as A
    import torch

    arms = tuple(args.arms.split(",")) if args.arms else A.ARMS
    unknown = sorted(set(arms) - set(A.ARMS))
    if unknown:
        parser.error(f"unknown arms {unknown}; choose from {', '.join(A.ARMS)}")
    use_cpu = not torch.cuda.is_available()
    if name == "device" and use_cpu:
        print("note: --device preset without a GPU: running on CPU", file=sys.stderr)
    torch.set_num_threads(2)
    print(f"preset {name}: {asdict(preset)}", flush=True)
    per_seed: list[dict[str, Any]] = []
    result: dict[str, Any] = {}
    seeds = range(args.first_seed, args.first_seed + preset.seeds)
    for s in _run_seeds(seeds, preset, arms, use_cpu):
        per_seed = sorted([*per_seed, s], key=lambda x: x["seed"])
        print(
            f"seed {s['seed']}: SFT gold {s['sft']['gold']:.3f}, RM {s['rm']}, "
            f"margin {s['calibration']['margin']}, clip {s['calibration']['clip_max']:.3f}",
            flush=True,
        )
        result = {
            "preset": name,
            "settings": asdict(preset),
            **summarize(per_seed, arms),
            "per_seed": per_seed,
        }
        if args.json:
            args.json.write_text(json.dumps(result, indent=1), encoding="utf-8")
    print(table(result, per_seed))
    print(json.dumps({k: result[k] for k in ("preset", "arms", "paired", "verdict")}))
    return result


if __name__ == "__main__":
    main()
