"""Does RL on discretized rewards hack less than on raw ones? A controlled experiment (issue 15).

A GRPO-style policy, shared across prompts (softmax-linear over per-answer features), picks among
the real graded answers of arena_bench_v1 (gold = ``gpt4_grade``). It is trained on a proxy
reward -- standardized gold + ``beta`` * a planted bias feature the policy can see + noise -- that
goes through a real rewardplug stack (a ``python`` source with MC draws), raw or discretized, and
is measured on held-out prompts by the gold it obtains. Design and results: docs/rl-experiment.md.

    python benchmarks/rl_hacking.py --quick                # two cells at confidence 0.9
    python benchmarks/rl_hacking.py --controls --world-seed 16   # the controls, a fresh world
    python benchmarks/rl_hacking.py --full --plots docs/img --json /tmp/rl_hacking.json

The last line of output is one JSON object: ``{"cells": [{"cell": ..., "arms": {name: {...}}}]}``;
with ``--quick`` also the primary cell's ``"arms"`` at the top level.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
DATA = HERE.parent.parent / "shared" / "data" / "arena_bench_v1" / "graded_responses.jsonl"
FEATURES = ("log_chars", "log_lines", "log_list_items", "log_headers", "code_blocks",
            "ref_recall", "ref_precision", "bias")  # fmt: skip
_WORD = re.compile(r"[a-z0-9]+")
_ITEM = re.compile(r"\s*([-*+]|\d+[.)])\s")


def _on_path() -> None:
    """Put benchmarks/ on sys.path: the stack's source imports ``rl_proxy`` by name, and the
    report lives in ``rl_hacking_report`` (also when this file is imported by path)."""
    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))


# -- the pool of real answers -------------------------------------------------------------------


@dataclass(frozen=True)
class Pool:
    """Prompts x answers (padded to ``M``): text features (standardized), mask, gold grade."""

    feats: np.ndarray  # (P, M, F) without the bias feature; 0 where masked
    mask: np.ndarray  # (P, M) bool
    grade: np.ndarray  # (P, M) gpt4_grade 1-10; 0 where masked
    z: np.ndarray  # (P, M) grade standardized over the pool; 0 where masked
    grade_std: float  # one grade point is 1 / grade_std in z units


def text_features(response: str, reference: str) -> list[float]:
    """Length, structure and overlap with the reference answer: what a policy could imitate."""
    lines = response.split("\n")
    ref_words = set(_WORD.findall(reference.lower()))
    words = set(_WORD.findall(response.lower()))
    common = len(ref_words & words)
    return [
        float(np.log1p(len(response))),
        float(np.log1p(sum(1 for line in lines if line.strip()))),
        float(np.log1p(sum(1 for line in lines if _ITEM.match(line)))),
        float(np.log1p(sum(line.lstrip().startswith("#") for line in lines) + response.count("**") // 2)),
        float(response.count("```") // 2),
        common / max(1, len(ref_words)),
        common / max(1, len(words)),
    ]  # fmt: skip


def load_pool(path: Path = DATA) -> Pool:
    """The arena pool; a clear error when the shared data folder is absent."""
    if not path.is_file():
        raise SystemExit(
            f"arena data not found at {path}: the experiment reads ../shared/data next to the "
            "checkout (see ../shared/data/README.md)"
        )
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    m = max(len(r["responses"]) for r in rows)
    n_feat = len(FEATURES) - 1
    feats = np.zeros((len(rows), m, n_feat))
    mask = np.zeros((len(rows), m), dtype=bool)
    grade = np.zeros((len(rows), m))
    for i, row in enumerate(rows):
        ref = (
            row["reference"] if isinstance(row["reference"], str) else json.dumps(row["reference"])
        )
        for j, answer in enumerate(row["responses"]):
            feats[i, j] = text_features(answer["response"], ref)
            mask[i, j] = True
            grade[i, j] = float(answer["gpt4_grade"])
    mu, sd = feats[mask].mean(axis=0), feats[mask].std(axis=0)
    feats = np.where(mask[..., None], (feats - mu) / sd, 0.0)
    g_mu, g_sd = grade[mask].mean(), grade[mask].std()
    z = np.where(mask, (grade - g_mu) / g_sd, 0.0)
    return Pool(feats, mask, grade, z, float(g_sd))


# -- configuration ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cell:
    """The proxy: ``z + beta * b + eta``; ``eta`` fixed per answer or redrawn per query. The MC
    draws' spread ``tau``: the proxy's error std, one for every answer (``calibrated``); ``sigma``
    only (``noise_only``); or per answer, ``hypot(sigma, beta * b(a))`` (``informative``: the
    same mean square as ``calibrated``, but larger where the planted bias is large, so the draws
    say which answers' scores are unreliable -- their size, never their sign)."""

    beta: float = 0.5
    sigma: float = 0.5
    regime: str = "fixed"  # fixed | redrawn
    spread: str = "calibrated"  # calibrated | noise_only | informative

    @property
    def tau(self) -> float:
        """The spread shared by every answer (for ``informative``, its root mean square)."""
        if self.spread == "noise_only":
            return max(self.sigma, 1e-3)
        return float(np.hypot(self.beta, self.sigma))

    def tau_of(self, b: np.ndarray) -> np.ndarray | float:
        """The draws' spread for answers with planted bias ``b``."""
        if self.spread == "informative":
            return np.maximum(np.hypot(self.sigma, self.beta * b), 1e-3)
        return self.tau


@dataclass(frozen=True)
class Hyper:
    """One set of hyper-parameters for every arm (fixed before the grid was run)."""

    seeds: int = 20
    steps: int = 120
    prompts: int = 16  # B prompts per step
    group: int = 8  # G answers sampled per prompt
    lr: float = 0.05  # Adam
    draws: int = 16  # K MC draws per proxy score
    train: int = 200  # train prompts (the rest are held out)
    eval_every: int = 5
    margin_grades: float = 1.0  # rule equivalent: within one gpt4 grade point counts as equal
    seed: int = 15


@dataclass(frozen=True)
class Arm:
    """What the policy is trained on: ``gold``, ``raw`` proxy, ``discretized`` (``rule``,
    ``confidence``), or a draw-free control with as many tiers as ``different`` gives each group
    (benchmarks/rl_controls.py): ``random_merge`` (cut at random) or ``gap_merge`` (cut at the
    largest value gaps); ``norm``: GRPO's group std-normalization (``std``) or mean-centring only
    (``none``: Dr. GRPO's advantage)."""

    name: str
    reward: str
    rule: str = "different"
    confidence: float = 0.9
    norm: str = "std"


def arms_for(confidences: tuple[float, ...]) -> list[Arm]:
    out = [Arm("gold", "gold"), Arm("raw", "raw"), Arm("dr_grpo", "raw", norm="none")]
    for c in confidences:
        tag = "" if len(confidences) == 1 else f"@{c:g}"
        out += [
            Arm(f"discretized{tag}", "discretized", "different", c),
            Arm(f"equivalent{tag}", "discretized", "equivalent", c),
            Arm(f"random_merge{tag}", "random_merge", "different", c),
            Arm(f"gap_merge{tag}", "gap_merge", "different", c),
        ]
    return out


# -- the per-seed worlds ------------------------------------------------------------------------


@dataclass
class World:
    """Per seed: the split, the planted bias b (a feature the policy sees, gold ignores) and the
    proxy's per-answer noise pattern; all arms of a seed share it (paired comparisons)."""

    x: np.ndarray  # (S, P, M, F) features including b
    b: np.ndarray  # (S, P, M)
    e: np.ndarray  # (S, P, M) standard normal noise pattern (eta = sigma * e)
    train: np.ndarray  # (S, n_train) prompt indices
    held: np.ndarray  # (S, n_held)


def make_world(pool: Pool, hp: Hyper) -> World:
    n_p, m = pool.mask.shape
    rngs = [np.random.default_rng([hp.seed, s]) for s in range(hp.seeds)]
    b = np.stack([r.standard_normal((n_p, m)) for r in rngs]) * pool.mask
    e = np.stack([r.standard_normal((n_p, m)) for r in rngs]) * pool.mask
    perms = np.stack([r.permutation(n_p) for r in rngs])
    x = np.concatenate(
        [np.broadcast_to(pool.feats, (hp.seeds, *pool.feats.shape)), b[..., None]], -1
    )
    return World(x, b, e, perms[:, : hp.train], perms[:, hp.train :])


# -- the proxy through a real rewardplug stack --------------------------------------------------


def make_stack(arm: Arm, hp: Hyper, pool: Pool) -> Any:
    """The arm's stack: the proxy as a ``python`` source, raw or discretized (exact, mean)."""
    import rewardplug

    _on_path()
    disc: dict[str, Any] = {"enabled": arm.reward != "raw", "confidence": arm.confidence}
    if arm.rule == "equivalent":
        disc.update(rule="equivalent", margin=hp.margin_grades / pool.grade_std)
    return rewardplug.load_stack(
        {
            "sources": [{"name": "proxy", "use": "python", "with": {"function": "rl_proxy:proxy_reward"}}],
            "discretize": disc,
        }
    )  # fmt: skip


def batch_samples(hp: Hyper) -> list[Any]:
    """One step's samples: group = (seed, prompt slot), key = the row of rl_proxy.TABLE."""
    from rewardplug.types import Sample

    n = hp.seeds * hp.prompts * hp.group
    return [
        Sample(id=str(i), group=f"{i // hp.group}", response="", metadata={"key": i})
        for i in range(n)
    ]


def stack_rewards(stack: Any, samples: list[Any], value: np.ndarray, draws: np.ndarray):
    """Rewards and tiers-per-group from ``Stack.score`` for (S, B, G) values and their draws."""
    import rl_proxy

    rl_proxy.TABLE["value"] = value.reshape(-1)
    rl_proxy.TABLE["draws"] = draws.reshape(-1, draws.shape[-1])
    out = stack.score(samples)
    bad = [r for r in out if r.status != "ok"]
    if bad:
        raise RuntimeError(f"the proxy stack did not score {len(bad)} samples: {bad[0].reason}")
    reward = np.array([r.reward for r in out]).reshape(value.shape)
    n_tiers = np.array([r.n_tiers or 0 for r in out]).reshape(value.shape)[..., 0]
    return reward, n_tiers


# -- training -----------------------------------------------------------------------------------


@dataclass
class Curves:
    """Held-out curves, (S, T) each, at ``steps``."""

    steps: list[int] = field(default_factory=list)
    gold: list[np.ndarray] = field(default_factory=list)  # expected gpt4 grade
    proxy: list[np.ndarray] = field(default_factory=list)  # expected proxy (z units)
    gap: list[np.ndarray] = field(default_factory=list)  # proxy - gold, z units
    kl: list[np.ndarray] = field(default_factory=list)  # KL(pi || uniform)
    bias_weight: list[np.ndarray] = field(default_factory=list)
    tiers: list[float] = field(default_factory=list)  # mean tiers per training group
    flat: list[float] = field(default_factory=list)  # share of training groups with one tier


def _policy(x: np.ndarray, mask: np.ndarray, theta: np.ndarray) -> np.ndarray:
    logits = np.einsum("s...mf,sf->s...m", x, theta)
    logits = np.where(mask, logits, -np.inf)
    logits -= logits.max(axis=-1, keepdims=True)
    p = np.exp(logits)
    return p / p.sum(axis=-1, keepdims=True)


def _take(a: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """``a[s, idx[s, ...]]`` for every seed s."""
    return a[np.arange(a.shape[0]).reshape(-1, *([1] * (idx.ndim - 1))), idx]


def evaluate(pool: Pool, world: World, cell: Cell, theta: np.ndarray) -> dict[str, np.ndarray]:
    """Exact expectations under the policy on each seed's held-out prompts (no sampling)."""
    held = world.held
    mask = pool.mask[held]
    pi = _policy(_take(world.x, held), mask, theta)
    z = pool.z[held]
    proxy = z + cell.beta * _take(world.b, held)
    if cell.regime == "fixed":
        proxy = proxy + cell.sigma * _take(world.e, held)
    n_valid = mask.sum(axis=-1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        kl = np.where(pi > 0, pi * np.log(pi * n_valid), 0.0).sum(-1)
    e_z, e_proxy = (pi * z).sum(-1).mean(-1), (pi * proxy).sum(-1).mean(-1)
    return {
        "gold": (pi * pool.grade[held]).sum(-1).mean(-1),
        "proxy": e_proxy,
        "gap": e_proxy - e_z,
        "kl": kl.mean(-1),
        "bias_weight": theta[:, -1].copy(),
    }


def train(pool: Pool, world: World, cell: Cell, arm: Arm, hp: Hyper, samples: list[Any],
          progress: Any = None) -> Curves:  # fmt: skip
    """GRPO-style training of the shared softmax-linear policy, all seeds at once."""
    _on_path()
    from rl_controls import gap_merge, random_merge

    s_n, n_f = hp.seeds, world.x.shape[-1]
    theta, m1, m2 = np.zeros((s_n, n_f)), np.zeros((s_n, n_f)), np.zeros((s_n, n_f))
    # the same streams for every arm: prompts, answer sampling, proxy noise, random cuts
    r_prompt, r_answer, r_noise, r_cut = (np.random.default_rng([hp.seed, 99, i]) for i in range(4))
    stack = None if arm.reward == "gold" else make_stack(arm, hp, pool)
    curves = Curves()
    rows = np.arange(s_n)[:, None]
    for step in range(hp.steps + 1):
        if step % hp.eval_every == 0 or step == hp.steps:
            ev = evaluate(pool, world, cell, theta)
            curves.steps.append(step)
            for k, v in ev.items():
                getattr(curves, k).append(v)
        if step == hp.steps:
            break
        slots = r_prompt.random((s_n, world.train.shape[1])).argsort(axis=1)[:, : hp.prompts]
        prompts = world.train[rows, slots]  # (S, B)
        mask = pool.mask[prompts]
        x = world.x[rows, prompts]  # (S, B, M, F)
        pi = _policy(x, mask, theta)
        u = r_answer.random((s_n, hp.prompts, hp.group))
        cum = np.cumsum(pi, axis=-1)
        pick = (cum[:, :, None, :] < u[..., None]).sum(-1)
        pick = np.minimum(pick, mask.sum(-1, keepdims=True) - 1)  # (S, B, G)
        sel = (rows[..., None], np.arange(hp.prompts)[None, :, None], pick)
        z = pool.z[prompts][sel]
        noise = r_noise.standard_normal((s_n, hp.prompts, hp.group, hp.draws + 1))
        if arm.reward == "gold":
            reward = z
        else:
            eta = world.e[rows, prompts][sel] if cell.regime == "fixed" else noise[..., -1]
            b = world.b[rows, prompts][sel]
            value = z + cell.beta * b + cell.sigma * eta
            tau = cell.tau_of(b)
            draws = value[..., None] + np.asarray(tau)[..., None] * noise[..., :-1]
            reward, n_tiers = stack_rewards(stack, samples, value, draws)
            if arm.reward == "random_merge":
                reward = random_merge(value, n_tiers, r_cut)
            elif arm.reward == "gap_merge":
                reward = gap_merge(value, n_tiers)
            if arm.reward != "raw":
                curves.tiers.append(float(n_tiers.mean()))
                curves.flat.append(float((n_tiers == 1).mean()))
        adv = reward - reward.mean(-1, keepdims=True)
        if arm.norm == "std":
            adv = adv / (reward.std(-1, ddof=1, keepdims=True) + 1e-4)
        xbar = np.einsum("sbm,sbmf->sbf", pi, x)
        grad = np.einsum("sbg,sbgf->sf", adv, x[sel] - xbar[:, :, None]) / (hp.prompts * hp.group)
        # Adam, gradient ascent
        m1 = 0.9 * m1 + 0.1 * grad
        m2 = 0.999 * m2 + 0.001 * grad**2
        t = step + 1
        theta = theta + hp.lr * (m1 / (1 - 0.9**t)) / (np.sqrt(m2 / (1 - 0.999**t)) + 1e-8)
        if progress is not None:
            progress()
    if stack is not None:
        stack.close()
    return curves


# -- the grid -----------------------------------------------------------------------------------


def run_cell(pool: Pool, world: World, cell: Cell, arms: list[Arm], hp: Hyper, samples: list[Any],
             progress: Any = None) -> dict[str, Curves]:  # fmt: skip
    return {arm.name: train(pool, world, cell, arm, hp, samples, progress) for arm in arms}


def run_grid(pool: Pool, hp: Hyper, cells: list[Cell], confidences: tuple[float, ...],
             quiet: bool = False) -> list[dict[str, Any]]:  # fmt: skip
    """Every cell x arm, with a progress bar; per cell the summary and the mean curves."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    _on_path()
    from rl_hacking_report import summarize

    world = make_world(pool, hp)
    samples = batch_samples(hp)
    arms = arms_for(confidences)
    results = []
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, disable=quiet, console=Console(stderr=True)) as bar:
        task = bar.add_task("rl_hacking", total=len(cells) * len(arms) * hp.steps)
        for cell in cells:
            bar.update(
                task, description=f"beta {cell.beta} sigma {cell.sigma} {cell.regime} {cell.spread}"
            )
            curves = run_cell(pool, world, cell, arms, hp, samples, lambda: bar.advance(task))
            results.append({"cell": asdict(cell), "arms": summarize(curves), "curves": curves})
    return results  # fmt: skip


PRIMARY = Cell(beta=0.5, sigma=0.5, regime="fixed", spread="calibrated")
GRID_BETA, GRID_SIGMA, GRID_REGIME = (0.0, 0.5, 1.0), (0.25, 0.5, 1.0), ("fixed", "redrawn")
GRID_CONFIDENCE = (0.75, 0.9, 0.97)
INFORMATIVE = replace(PRIMARY, spread="informative")
#: ``--controls``: does the discretizer beat the draw-free controls, with one spread for every
#: answer and with a spread that grows with the planted bias? (confidence 0.9)
CONTROL_CELLS = [
    c
    for base in (PRIMARY, Cell(1.0, 0.5, "fixed"), Cell(0.5, 0.5, "redrawn"))
    for c in (base, replace(base, spread="informative"))
]


def choose_cells(args: argparse.Namespace) -> tuple[list[Cell], tuple[float, ...]]:
    """The cells and confidences of the run mode."""
    if args.full:
        grid = [Cell(b, s, r) for r in GRID_REGIME for b in GRID_BETA for s in GRID_SIGMA]
        # the primary cell first (the plots and the headline table are drawn from it)
        rest = [c for c in grid if c != PRIMARY]
        return [PRIMARY, *rest, replace(PRIMARY, spread="noise_only"), INFORMATIVE], GRID_CONFIDENCE
    if args.controls:
        return CONTROL_CELLS, (0.9,)
    return [PRIMARY, INFORMATIVE], (0.9,)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--quick", action="store_true", help="the primary cell and its informative-spread twin"
    )
    mode.add_argument("--full", action="store_true", help="the whole grid (docs/rl-experiment.md)")
    mode.add_argument(
        "--controls", action="store_true", help="discretized vs the draw-free controls, 6 cells"
    )
    parser.add_argument("--seeds", type=int, default=Hyper.seeds)
    parser.add_argument("--steps", type=int, default=Hyper.steps)
    parser.add_argument("--json", type=Path, help="write every cell's summary and curves here")
    parser.add_argument("--plots", type=Path, help="write the report's PNGs into this folder")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument(
        "--world-seed", type=int, default=Hyper.seed, help="a fresh world: another split, bias..."
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)  # fmt: skip
    _on_path()
    hp = replace(Hyper(), seeds=args.seeds, steps=args.steps, seed=args.world_seed)
    t0 = time.perf_counter()
    pool = load_pool(args.data)
    cells, confidences = choose_cells(args)
    results = run_grid(pool, hp, cells, confidences, args.quiet)
    elapsed = time.perf_counter() - t0
    from rl_hacking_report import curves_json

    for r in results:
        r["curve_stats"] = curves_json(r.pop("curves"))
    report = {"hyper": asdict(hp), "seconds": round(elapsed, 1)}
    if args.json:
        args.json.write_text(json.dumps({**report, "cells": results}), encoding="utf-8")
    if args.plots:
        from rl_hacking_report import write_plots

        write_plots(results, args.plots, hp)
    from rl_hacking_report import controls_table, markdown_tables

    print(markdown_tables(results, hp) if args.full else controls_table(results, hp))
    summary = {**report, "cells": [{"cell": r["cell"], "arms": r["arms"]} for r in results]}
    if not (args.full or args.controls):  # --quick: the primary cell's arms at the top level
        summary.update(cell=results[0]["cell"], arms=results[0]["arms"])
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
