"""``rewardplug demo``: the main job on a bundled example, offline.

Scores ``examples/data/demo.jsonl`` -- a handful of programming problems, each with tests, a
reference answer and several candidate answers (correct ones, subtly wrong ones and reward hacks:
``sys.exit(0)``, objects that compare equal to anything, printing ``PASSED``) -- with
``examples/stacks/demo.yaml`` (``test_cases`` + a programmatic ``rubric`` + ``llm_judge`` on the
bundled SmolLM2 + ``embedding_similarity``), then prints one table per problem (each source's
score with its spread, the combined raw score, the tier and the final reward), writes the scored
rows and a PNG of raw score vs tier into ``out_dir``, and says whether every reward hack ended up
below every correct answer.

Sources are scored one at a time behind a progress line (the first run loads, and for the judge
converts, local models). A source that cannot be loaded or fails while scoring is reported and
left out; the others carry on.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rewardplug.config import StackError, read_stack_file
from rewardplug.io import append_rows, load_jsonl, output_row
from rewardplug.paths import examples_dir
from rewardplug.stack import Stack, load_stack
from rewardplug.types import Reward, Score

__all__ = ["DEMO_DATA", "DEMO_STACK", "run_demo"]

_EXAMPLES = examples_dir()  # the checkout, or <prefix>/share/rewardplug for a wheel install
DEMO_STACK = _EXAMPLES / "stacks" / "demo.yaml"
DEMO_DATA = _EXAMPLES / "data" / "demo.jsonl"


def _bundled(path: Path) -> Path:
    if not path.is_file():
        raise FileNotFoundError(
            f"the demo's bundled file {path} is missing (a broken install?); reinstall rewardplug, "
            "or pass --stack with your own stack"
        )
    return path


def _load_lenient(stack_path: Path, console: Any) -> tuple[Stack, list[str]]:
    """Build the stack from the sources that load; report (and skip) the others."""
    data, _ = read_stack_file(stack_path)
    specs = list(data.get("sources") or [])
    good, dropped = [], []
    for spec in specs:
        name = spec.get("name", "?") if isinstance(spec, dict) else "?"
        probe = {**data, "sources": [{**spec, "weight": 1.0}] if isinstance(spec, dict) else [spec]}
        try:
            load_stack(probe).close()
        except Exception as exc:  # whatever keeps a source from loading: report it, go on
            reason = "; ".join(getattr(exc, "problems", None) or [str(exc)])
            console.print(f"[yellow]! source {name!r} could not be loaded: {reason}")
            console.print("[yellow]  continuing without it")
            dropped.append(name)
            continue
        good.append(spec)
    if not good:
        raise StackError(
            ["no source of the stack could be loaded (see the messages above)"], str(stack_path)
        )
    if not any(float(s.get("weight", 1.0)) > 0 for s in good):
        raise StackError(["every source that loaded has weight 0"], str(stack_path))
    return load_stack({**data, "sources": good}), dropped


def _score_each(stack: Stack, batch: Sequence[Any], console: Any) -> dict[str, list[Score]]:
    """Every source's scores, one source at a time behind a spinner with elapsed time."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    scores: dict[str, list[Score]] = {}
    columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        for name, source in stack.sources.items():
            kind = type(source).__name__
            hint = " (first run loads the model)" if kind in _MODEL_SOURCES else ""
            task = progress.add_task(f"{name} [dim]{kind}[/] scoring {len(batch)} answers{hint}")
            started = time.monotonic()
            try:
                result = source.score(batch)
                if not isinstance(result, list) or len(result) != len(batch):
                    raise RuntimeError(f"returned {len(result)} scores for {len(batch)} samples")
            except Exception as exc:
                reason = f"{type(exc).__name__}: {exc}"
                result = [Score.error(reason) for _ in batch]
            took = time.monotonic() - started
            ok = sum(s.ok for s in result)
            progress.update(
                task,
                description=f"{name} [dim]{kind}[/] {ok}/{len(batch)} scored in {took:.1f} s",
                completed=1,
                total=1,
            )
            scores[name] = result
    for name, result in scores.items():
        if not any(s.ok for s in result):
            why = next((s.reason for s in result if s.reason), "no reason given")
            console.print(
                f"[yellow]! source {name!r} scored nothing ({why}); continuing with the others"
            )
    return scores


_MODEL_SOURCES = {"JudgeSource", "EmbeddingSimilaritySource", "NeuralRMSource", "RubricSource"}


def _cell(score: Score | None) -> str:
    if score is None:
        return "-"
    if not score.ok:
        return f"[red]{score.status}"
    spread = f" ±{score.std:.2f}" if score.std else ""
    return f"{score.value:.2f}{spread}"


def _print_tables(
    batch: Sequence[Any], rewards: Sequence[Reward], names: Sequence[str], console: Any
) -> None:
    from rich.table import Table

    groups: dict[str, list[int]] = {}
    for i, sample in enumerate(batch):
        groups.setdefault(sample.group, []).append(i)
    for group, members in groups.items():
        first = batch[members[0]]
        prompt = first.prompt_text
        title = f"[bold]{group}[/]: {prompt[:90]}{'...' if len(prompt) > 90 else ''}"
        table = Table(title=title, title_justify="left", show_lines=False)
        table.add_column("candidate")
        for name in names:
            table.add_column(name, justify="right")
        table.add_column("raw", justify="right")
        table.add_column("tier", justify="right")
        table.add_column("reward", justify="right", style="bold")
        order = sorted(members, key=lambda i: (_tier_key(rewards[i]), -(rewards[i].raw or 0.0)))
        for i in order:
            r = rewards[i]
            label = str(batch[i].metadata.get("candidate", batch[i].id))
            tier = "-" if r.tier is None else f"{r.tier}/{r.n_tiers}"
            raw = "-" if r.raw is None else f"{r.raw:.3f} ±{r.std or 0:.2f}"
            reward = "[red]abstain" if r.reward is None else f"{r.reward:.3f}"
            table.add_row(label, *(_cell(r.sources.get(n)) for n in names), raw, tier, reward)
        console.print(table)


def _tier_key(r: Reward) -> int:
    return r.tier if r.tier is not None else 10**6


def _plot(batch: Sequence[Any], rewards: Sequence[Reward], path: Path) -> None:
    """Raw combined score (with its spread) vs tier, one panel per problem."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups: dict[str, list[int]] = {}
    for i, sample in enumerate(batch):
        groups.setdefault(sample.group, []).append(i)
    cols = min(2, len(groups))
    rows = math.ceil(len(groups) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(7.5 * cols, 3.4 * rows), squeeze=False)
    colours = {2: "tab:green", 1: "tab:orange", 0: "tab:red"}
    for ax, (group, members) in zip(axes.flat, groups.items(), strict=False):
        scored = [i for i in members if rewards[i].raw is not None and rewards[i].tier is not None]
        by_tier: dict[int, list[int]] = {}
        for i in sorted(scored, key=lambda i: -(rewards[i].raw or 0.0)):
            by_tier.setdefault(rewards[i].tier or 0, []).append(i)
        for tier, idx in by_tier.items():
            for k, i in enumerate(idx):
                r = rewards[i]
                y = tier + 0.22 * (k - (len(idx) - 1) / 2)  # spread a tier's members apart
                gold = batch[i].metadata.get("gold")
                colour = colours.get(gold, "tab:blue") if isinstance(gold, int) else "tab:blue"
                ax.errorbar(r.raw, y, xerr=r.std or 0.0, fmt="o", color=colour, capsize=3)
                label = str(batch[i].metadata.get("candidate", batch[i].id))
                ax.annotate(
                    label, (r.raw, y), textcoords="offset points", xytext=(6, 3), fontsize=7
                )
        if by_tier:
            ax.set_ylim(max(by_tier) + 0.6, -0.6)
            ax.set_yticks(range(max(by_tier) + 1))
        ax.set_title(group, fontsize=10)
        ax.set_xlabel("raw combined score (bar: ±1 std of the draws)")
        ax.set_ylabel("tier (0 = best)")
    for ax in list(axes.flat)[len(groups) :]:
        ax.set_visible(False)
    fig.suptitle(
        "rewardplug demo: green = correct, orange = subtly wrong, red = hack / no code", fontsize=10
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _verdict(batch: Sequence[Any], rewards: Sequence[Reward]) -> tuple[int, int]:
    """(groups where every gold-0 answer is rewarded below every gold-2 answer, groups checked)."""
    groups: dict[str, list[int]] = {}
    for i, sample in enumerate(batch):
        groups.setdefault(sample.group, []).append(i)
    good = checked = 0
    for members in groups.values():
        best = [rewards[i].reward for i in members if batch[i].metadata.get("gold") == 2]
        bad = [rewards[i].reward for i in members if batch[i].metadata.get("gold") == 0]
        if not best or not bad:
            continue
        checked += 1
        worst_good = min((x for x in best if x is not None), default=None)
        best_bad = max((-math.inf if x is None else x for x in bad), default=-math.inf)
        if worst_good is not None and best_bad < worst_good:
            good += 1
    return good, checked


def run_demo(
    out_dir: Path,
    stack_path: str | None = None,
    *,
    data_path: str | None = None,
    console: Any = None,
) -> None:
    """Score the bundled batch, print the tables, write ``demo-scored.jsonl`` and ``demo-tiers.png``.

    :param out_dir: folder for the outputs (created).
    :param stack_path: another stack instead of ``examples/stacks/demo.yaml``.
    :param data_path: another JSONL batch instead of ``examples/data/demo.jsonl``.
    :param console: a ``rich.console.Console`` (default: a new one on stdout).

    ``HF_HUB_OFFLINE`` and ``TRANSFORMERS_OFFLINE`` are set to 1 unless already set: the demo
    never downloads anything.
    """
    from rich.console import Console

    # Everything the demo needs is local; never let a library reach for a model hub.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    console = console or Console()
    stack_file = Path(stack_path) if stack_path else _bundled(DEMO_STACK)
    data_file = Path(data_path) if data_path else _bundled(DEMO_DATA)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    loaded = load_jsonl(data_file)
    batch = loaded.samples
    n_groups = len({s.group for s in batch})
    console.print(
        f"[bold]rewardplug demo[/]: {len(batch)} answers to {n_groups} problems from {data_file}"
    )
    console.print(f"stack: {stack_file}")
    stack, _dropped = _load_lenient(stack_file, console)
    with stack:
        scores = _score_each(stack, batch, console)
        rewards = stack.finish(batch, scores)
    names = list(scores)
    _print_tables(batch, rewards, names, console)

    scored = out_dir / "demo-scored.jsonl"
    scored.write_text("", encoding="utf-8")
    append_rows(scored, [output_row(row, r) for row, r in zip(loaded.rows, rewards, strict=True)])
    png = out_dir / "demo-tiers.png"
    _plot(batch, rewards, png)

    good, checked = _verdict(batch, rewards)
    if checked:
        colour = "green" if good == checked else "yellow"
        console.print(
            f"[{colour}]In {good} of {checked} problems every reward hack / wrong answer "
            "labelled 0 got a lower reward than every correct answer."
        )
    ties = sum(1 for r in rewards if r.n_tiers is not None) - len(
        {(r.group, r.tier) for r in rewards if r.tier is not None}
    )
    console.print(
        f"{ties} answers share a tier with a better-scored answer (not confidently "
        "different), so they get the same reward."
    )
    console.print(f"wrote {scored} and {png}")
