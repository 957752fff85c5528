"""``rewardplug demo``: the main job on a bundled example, offline, in seconds.

Scores ``examples/data/demo.jsonl`` -- a handful of programming problems, each with tests, a
reference answer and several candidate answers (correct ones, subtly wrong ones and reward hacks:
``sys.exit(0)``, objects that compare equal to anything, printing ``PASSED``) -- with
``examples/stacks/demo.yaml``: ``test_cases`` + a programmatic ``rubric`` +
``embedding_similarity`` (MiniLM with MC dropout) by default, plus ``llm_judge`` on the bundled
SmolLM2 with ``full=True`` (``--full``: minutes on a CPU). It prints one table per problem (each
source's score with its spread, the combined raw score, the tier and the final reward), explains
the reward scale and the ties it made, writes the scored rows and a PNG (see
:mod:`rewardplug.demo_plot`) into ``out_dir``, and says whether every reward hack ended up below
every correct answer.

Sources are scored one at a time behind a progress line. A source that cannot be loaded or fails
while scoring is reported and left out; the others carry on. An error of the stack itself (not of
one source) stops the demo with the stack's own message.
"""

from __future__ import annotations

import math
import os
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rewardplug.config import StackError, read_stack_file
from rewardplug.extras import PLOT, describe_missing, missing_modules
from rewardplug.io import append_rows, load_jsonl, output_row
from rewardplug.paths import examples_dir
from rewardplug.stack import Stack, load_stack
from rewardplug.types import Reward, Score

__all__ = ["DEMO_DATA", "DEMO_STACK", "SLOW_SOURCES", "default_out_dir", "run_demo"]

_EXAMPLES = examples_dir()  # the checkout, or <prefix>/share/rewardplug for a wheel install
DEMO_STACK = _EXAMPLES / "stacks" / "demo.yaml"
DEMO_DATA = _EXAMPLES / "data" / "demo.jsonl"
#: sources of the bundled stack that only ``--full`` runs (the SmolLM2 judge: minutes on a CPU)
SLOW_SOURCES = ("llm_judge",)


def default_out_dir(cwd: str | Path | None = None) -> Path:
    """Where the demo writes when no folder is named: ``rewardplug-demo/`` in the current
    folder, except inside a rewardplug source checkout (``make demo`` runs there), where
    outputs would land among the sources and in a wheel built afterwards: then
    ``rewardplug.paths.cache_dir("demo")`` (``~/.cache/rewardplug/demo``)."""
    from rewardplug.paths import cache_dir, source_checkout

    cwd = Path.cwd() if cwd is None else Path(cwd)
    if source_checkout(cwd) is not None:
        return cache_dir("demo")
    return cwd / "rewardplug-demo"


def _bundled(path: Path) -> Path:
    if not path.is_file():
        raise FileNotFoundError(
            f"the demo's bundled file {path} is missing (a broken install?); reinstall rewardplug, "
            "or pass --stack with your own stack"
        )
    return path


def _stack_level(exc: StackError) -> list[str]:
    """The problems of a stack error that are not about one source's own spec."""
    return [p for p in exc.problems if not p.startswith("sources[")]


def escape(text: str) -> str:
    """``text`` shown as it is by rich (``[neural]`` is not a markup tag)."""
    from rich.markup import escape as rich_escape

    return rich_escape(text)


def _load_lenient(
    stack_path: Path, console: Any, skip_uses: Sequence[str] = ()
) -> tuple[Stack, list[str]]:
    """Build the stack from the sources that load; report (and skip) the others.

    A problem of the stack itself (``combine``, ``discretize``, a misspelt top-level key) is
    raised as it is, naming the stack file, instead of being blamed on every source.
    """
    data, _ = read_stack_file(stack_path)
    if skip_uses:
        data = {
            **data,
            "sources": [
                s
                for s in data.get("sources") or []
                if not (isinstance(s, dict) and s.get("use") in skip_uses)
            ],
        }
    try:
        return load_stack(data), []
    except StackError as exc:
        if _stack_level(exc):
            raise StackError(exc.problems, str(stack_path)) from None
    except Exception:
        pass  # one source's own load-time failure: found and reported source by source below
    specs = list(data.get("sources") or [])
    good, dropped = [], []
    for spec in specs:
        name = spec.get("name", "?") if isinstance(spec, dict) else "?"
        probe = {**data, "sources": [{**spec, "weight": 1.0}] if isinstance(spec, dict) else [spec]}
        try:
            load_stack(probe).close()
        except Exception as exc:  # whatever keeps a source from loading: report it, go on
            # the probe is a one-source stack: its "sources[0]." prefixes say nothing here
            problems = getattr(exc, "problems", None) or [str(exc)]
            reason = "; ".join(re.sub(r"^sources\[0\]\.", "", p) for p in problems)
            # escaped: a reason's `pip install 'rewardplug[neural]'` is not rich markup
            console.print(
                f"[yellow]! source {escape(repr(name))} could not be loaded: {escape(reason)}"
            )
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
            task = progress.add_task(
                f"{escape(name)} [dim]{kind}[/] scoring {len(batch)} answers{hint}"
            )
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
                description=f"{escape(name)} [dim]{kind}[/] {ok}/{len(batch)} scored in {took:.1f} s",
                completed=1,
                total=1,
            )
            scores[name] = result
    for name, result in scores.items():
        if not any(s.ok for s in result):
            why = next((s.reason for s in result if s.reason), "no reason given")
            console.print(
                f"[yellow]! source {escape(repr(name))} scored nothing ({escape(why)}); "
                "continuing with the others"
            )
    return scores


_MODEL_SOURCES = {"JudgeSource", "EmbeddingSimilaritySource", "NeuralRMSource", "RubricSource"}


def _cell(score: Score | None) -> str:
    if score is None:
        return "-"
    if not score.ok:
        return f"[red]{score.status}"
    spread = f"±{score.std:.2f}".replace("0.", ".") if score.std else ""
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
        prompt = " ".join(first.prompt_text.split())
        title = f"[bold]{group}[/]: {prompt[:60]}{'...' if len(prompt) > 60 else ''}"
        table = Table(title=title, title_justify="left", show_lines=False, padding=(0, 1))
        table.add_column("candidate", ratio=1, overflow="fold")
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
            raw = "-" if r.raw is None else f"{r.raw:.2f}±{r.std or 0:.2f}".replace("±0.", "±.")
            reward = "[red]abstain" if r.reward is None else f"{r.reward:.2f}"
            table.add_row(label, *(_cell(r.sources.get(n)) for n in names), raw, tier, reward)
        console.print(table)


def _tier_key(r: Reward) -> int:
    return r.tier if r.tier is not None else 10**6


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


def _scale(stack: Stack) -> str:
    """One sentence on the range of the rewards."""
    d = stack.config.discretize
    if d.enabled and d.assign == "rank":
        return "Rewards are tier ranks scaled to [0, 1] (assign: rank): 1 = the best tier."
    if d.enabled and d.assign == "binary":
        return "Rewards are 1 for the best tier and 0 for the others (assign: binary)."
    weights = list(stack.weights.values())
    if stack.config.combine.kind == "weighted_sum":
        terms = " + ".join(f"{w:g}" for w in weights)
        abstaining = {
            "abstain": "an answer a source abstains on gets no reward (the trainer masks it)",
            "floor": "a source that abstains counts at its floor (its lowest score)",
            "renormalize": "a source that abstains is left out and the others' weights are "
            "scaled up to the same total",
        }[stack.config.on_abstain]
        return (
            f"Rewards lie in [0, {sum(weights):g}]: the weighted sum of the sources' scores "
            f"(each in [0, 1]; weights {terms}); {abstaining}."
        )
    return f"Rewards combine the sources with `{stack.config.combine.kind}` (scores in [0, 1])."


def _why_tied(members: Sequence[Reward]) -> str:
    """What the sources saw of tied answers: test counts where a source reports them."""
    for name in members[0].sources:
        counts = [r.sources[name].detail for r in members if name in r.sources]
        if counts and all("passed" in d and "total" in d for d in counts):
            shown = ", ".join(f"{d['passed']}/{d['total']}" for d in counts)
            return (
                f"they pass {shown} of the tests of `{name}`, too few cases for those counts to "
                "be confidently different"
            )
    return "their scores lie within each other's uncertainty"


def _explain_ties(batch: Sequence[Any], rewards: Sequence[Reward], console: Any) -> None:
    """Say which answers share a reward, and why, where their labels differ."""
    tiers: dict[tuple[str, int], list[int]] = {}
    for i, r in enumerate(rewards):
        if r.tier is not None:
            tiers.setdefault((r.group, r.tier), []).append(i)
    shared = sum(len(m) - 1 for m in tiers.values())
    console.print(
        f"{shared} answers share their tier with a better-scored answer: their scores are not "
        "confidently different (confidence 0.9 that one beats the other), so each tier's members "
        "get one reward, and noise in the scores cannot rank them."
    )
    for (group, tier), members in sorted(tiers.items()):
        golds = {batch[i].metadata.get("gold") for i in members}
        if len(golds) < 2:
            continue
        names = ", ".join(
            repr(str(batch[i].metadata.get("candidate", batch[i].id))) for i in members
        )
        console.print(
            f"  {group}, tier {tier}: {names} share a reward although they are not equally "
            f"good: {_why_tied([rewards[i] for i in members])}. More or sharper tests, or "
            "another source, would split them."
        )


def run_demo(
    out_dir: Path | None = None,
    stack_path: str | None = None,
    *,
    full: bool = False,
    data_path: str | None = None,
    console: Any = None,
) -> None:
    """Score the bundled batch, print the tables, write ``demo-scored.jsonl`` and ``demo-tiers.png``.

    :param out_dir: folder for the outputs (created); None: :func:`default_out_dir`.
    :param stack_path: another stack instead of ``examples/stacks/demo.yaml`` (run as it is).
    :param full: with the bundled stack, also run its slow sources (:data:`SLOW_SOURCES`).
    :param data_path: another JSONL batch instead of ``examples/data/demo.jsonl``.
    :param console: a ``rich.console.Console`` (default: a new one on stdout).

    ``HF_HUB_OFFLINE`` and ``TRANSFORMERS_OFFLINE`` are set to 1 unless already set: the demo
    never downloads anything.
    """
    from rich.console import Console

    from rewardplug.demo_plot import plot_tiers

    # Everything the demo needs is local; never let a library reach for a model hub.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    console = console or Console()
    stack_file = Path(stack_path) if stack_path else _bundled(DEMO_STACK)
    data_file = Path(data_path) if data_path else _bundled(DEMO_DATA)
    out_dir = default_out_dir() if out_dir is None else Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    loaded = load_jsonl(data_file)
    batch = loaded.samples
    n_groups = len({s.group for s in batch})
    console.print(
        f"[bold]rewardplug demo[/]: {len(batch)} answers to {n_groups} problems from {data_file}"
    )
    console.print(f"stack: {escape(str(stack_file))}")
    skip = SLOW_SOURCES if stack_path is None and not full else ()
    if skip:
        console.print(
            "[dim]the stack's SmolLM2 judge is left out (minutes on a CPU); "
            "`rewardplug demo --full` runs it too[/]"
        )
    elif full:
        console.print("[dim]--full: the local SmolLM2 judge takes a few minutes on a CPU[/]")
    stack, _dropped = _load_lenient(stack_file, console, skip)
    with stack:
        scores = _score_each(stack, batch, console)
        # "continuing with the others": a source that scored nothing (a machinery failure, the
        # same for every answer) is left out of the combination instead of masking every answer
        dead = [n for n, result in scores.items() if not any(s.ok for s in result)]
        saved = {n: stack.weights[n] for n in dead}
        stack.weights.update(dict.fromkeys(dead, 0.0))
        try:
            rewards = stack.finish(batch, scores)
        finally:
            stack.weights.update(saved)
    names = list(scores)
    _print_tables(batch, rewards, names, console)

    scored = out_dir / "demo-scored.jsonl"
    scored.write_text("", encoding="utf-8")
    append_rows(scored, [output_row(row, r) for row, r in zip(loaded.rows, rewards, strict=True)])
    png: Path | None = None
    no_plot = missing_modules(PLOT)  # matplotlib is an extra: the demo runs without it
    if no_plot:
        console.print(f"[dim]no tier plot: {escape(describe_missing('the plot', no_plot))}[/]")
    else:
        png = out_dir / "demo-tiers.png"
        plot_tiers(batch, rewards, png)

    console.print(_scale(stack))
    _explain_ties(batch, rewards, console)
    good, checked = _verdict(batch, rewards)
    if checked:
        colour = "green" if good == checked else "yellow"
        console.print(
            f"[{colour}]In {good} of {checked} problems every reward hack / wrong answer "
            "labelled 0 got a lower reward than every correct answer."
        )
    console.print(f"wrote {escape(str(scored))}" + (f" and {escape(str(png))}" if png else ""))
