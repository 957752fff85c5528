"""``rewardplug eval`` and ``rewardplug tune``: quality on labelled data, and choosing settings."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from rewardplug.cli_util import friendly_errors, progress
from rewardplug.extras import PLOT, require

__all__ = ["eval_cmd", "tune"]


@click.command("eval")
@click.argument("stack", type=click.Path(dir_okay=False))
@click.argument("data", metavar="DATA.jsonl", type=click.Path(dir_okay=False))
@click.option(
    "--gold", "gold_field", required=True, help="Field holding the gold quality (number or bool)."
)
@click.option(
    "--json", "json_path", type=click.Path(dir_okay=False), help="Write the report as JSON."
)
@click.option(
    "--plot", "plot_path", type=click.Path(dir_okay=False), help="Write a PNG of SP vs DA."
)
@click.option(
    "--bootstrap", default=1000, show_default=True, help="Bootstrap resamples for the CIs."
)
@click.option("--batch-size", default=256, show_default=True)
@click.option("--skip-bad", is_flag=True, help="Skip malformed input lines instead of failing.")
def eval_cmd(
    stack: str,
    data: str,
    gold_field: str,
    json_path: str | None,
    plot_path: str | None,
    bootstrap: int,
    batch_size: int,
    skip_bad: bool,
) -> None:
    """Discriminative ability, specificity and accuracy: raw vs discretized reward."""
    from rewardplug.evaluation import evaluate_stack, plot_tradeoff

    if plot_path:  # before scoring, not after
        require("rewardplug eval --plot", PLOT)
    report = _on_labelled_data(
        stack,
        data,
        skip_bad,
        lambda st, samples, update: evaluate_stack(
            st, samples, gold_field, n_boot=bootstrap, batch_size=batch_size, on_progress=update
        ),
    )
    _print_report(report)
    _write_json(json_path, report)
    if plot_path:
        plot_tradeoff(report, plot_path, title=f"{Path(stack).name} on {Path(data).name}")
        click.echo(f"wrote {plot_path}", err=True)


@click.command()
@click.argument("stack", type=click.Path(dir_okay=False))
@click.argument("data", metavar="DATA.jsonl", type=click.Path(dir_okay=False))
@click.option(
    "--gold", "gold_field", required=True, help="Field holding the gold quality (number or bool)."
)
@click.option(
    "--objective",
    type=click.Choice(["sp_at_max_da_loss", "accuracy"]),
    default="sp_at_max_da_loss",
    show_default=True,
    help="sp_at_max_da_loss: the best specificity losing at most --max-da-loss of the raw "
    "reward's discriminative ability; accuracy: the best accuracy (on data where most pairs have "
    "equal gold it favours tying nearly everything).",
)
@click.option("--max-da-loss", default=0.05, show_default=True, type=click.FloatRange(0, 1))
@click.option(
    "--holdout",
    default=0.5,
    show_default=True,
    type=click.FloatRange(0, 1, max_open=True),
    help="Share of the groups held out: the setting is chosen on the rest and measured on them "
    "(0: choose and measure on every group, in-sample).",
)
@click.option("--seed", default=0, show_default=True, help="Seed of the group split.")
@click.option(
    "--json", "json_path", type=click.Path(dir_okay=False), help="Write all rows as JSON."
)
@click.option("--bootstrap", default=200, show_default=True, help="Bootstrap resamples for CIs.")
@click.option("--batch-size", default=256, show_default=True)
@click.option("--skip-bad", is_flag=True, help="Skip malformed input lines instead of failing.")
@click.option(
    "--all",
    "show_all",
    is_flag=True,
    help="List every candidate of the sweep (default: the best per noise level and rule).",
)
def tune(
    stack: str,
    data: str,
    gold_field: str,
    objective: str,
    max_da_loss: float,
    holdout: float,
    seed: int,
    json_path: str | None,
    bootstrap: int,
    batch_size: int,
    skip_bad: bool,
    show_all: bool,
) -> None:
    """Choose discretize: settings on labelled data (scores once, sweeps without rescoring)."""
    from rewardplug.tuning import tune as run_tune

    report = _on_labelled_data(
        stack,
        data,
        skip_bad,
        lambda st, samples, update: run_tune(
            st,
            samples,
            gold_field,
            objective=objective,
            max_da_loss=max_da_loss,
            n_boot=bootstrap,
            batch_size=batch_size,
            on_progress=update,
            holdout=holdout,
            seed=seed,
        ),
    )
    _print_tuning(report, show_all)
    _write_json(json_path, report)


def _on_labelled_data(
    stack_path: str, data: str, skip_bad: bool, run: Callable[..., dict[str, Any]]
) -> dict[str, Any]:
    """Load the stack and the JSONL file, then ``run(stack, samples, on_progress)``."""
    from rewardplug.io import load_jsonl
    from rewardplug.stack import load_stack

    with friendly_errors():
        loaded_stack = load_stack(stack_path)
        samples = load_jsonl(data, skip_bad=skip_bad).samples
        with loaded_stack, progress("scoring") as update:
            return run(loaded_stack, samples, update)


def _write_json(path: str | None, report: dict[str, Any]) -> None:
    if path:
        Path(path).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        click.echo(f"wrote {path}", err=True)


#: ``rewardplug tune``'s table: (header, width) per column, one space between columns; a row
#: is one line of at most 100 characters
TUNE_COLUMNS = (
    ("", 1),
    ("noise", 6),
    ("rule", 10),
    ("margin", 6),
    ("confidence", 10),
    ("DA", 18),
    ("SP", 18),
    ("accuracy", 18),
    ("tiers", 5),
)


def _print_tuning(report: dict[str, Any], show_all: bool = False) -> None:
    """One line per candidate (the chosen one marked ``>``), at most 100 columns: the best per
    noise level and rule, or with ``show_all`` the whole sweep; then the YAML block."""
    import textwrap

    from rewardplug.tuning import shortlist

    def cell(row: dict[str, Any], key: str) -> str:
        value = row.get(key)
        if value is None:
            return "n/a"
        ci = (row.get("ci") or {}).get(key)
        return f"{value:.3f}" + (f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else "")

    def line(cells: list[str]) -> str:
        return " ".join(c.ljust(w) for c, (_, w) in zip(cells, TUNE_COLUMNS, strict=True)).rstrip()

    raw = report["raw"]
    chosen = report["chosen"]
    rows = report["rows"] if show_all else shortlist(report)
    split = report["split"]
    where = (
        f"in-sample on all {split['tuning_groups']} groups"
        if report["held_out"] is None
        else f"on the {split['tuning_groups']} tuning groups"
    )
    click.echo(
        textwrap.fill(
            f"gold = {report['gold_field']}; candidates measured {where}; CIs: 95% bootstrap", 100
        )
    )
    click.echo(
        f"raw reward: DA {_num(raw['discriminative_ability'])}, SP {_num(raw['specificity'])}, "
        f"accuracy {_num(raw['accuracy'])}"
    )
    click.echo(line([name for name, _ in TUNE_COLUMNS]))
    for row in rows:
        click.echo(
            line(
                [
                    ">" if row is chosen else "",
                    "-" if row["noise_std"] is None else f"{row['noise_std']:g}",
                    row["rule"],
                    f"{row['margin']:g}",
                    f"{row['confidence']:g}",
                    cell(row, "discriminative_ability"),
                    cell(row, "specificity"),
                    cell(row, "accuracy"),
                    "n/a" if row["n_tiers_mean"] is None else f"{row['n_tiers_mean']:.2f}",
                ]
            )
        )
    total = len(report["rows"])
    shown = (
        f"all {total} candidates"
        if show_all
        else f"{len(rows)} of {total} candidates: the best per noise level and rule (--all: every one)"
    )
    notes = [f"> = chosen; {shown}"]
    if report["one_draw_sources"]:
        notes.append(
            "sources with one draw per response (noise levels swept for them): "
            + ", ".join(report["one_draw_sources"])
        )
    if report["held_out"] is None:
        notes.append(
            "in-sample (--holdout 0): chosen and measured on the same groups, so the numbers "
            "are optimistic"
        )
    for note in notes:
        click.echo(textwrap.fill(note, 100))
    if report["held_out"] is not None:
        _print_held_out(report, cell)
    goal = (
        "best accuracy"
        if report["objective"] == "accuracy"
        else f"best specificity within {report['max_da_loss']:g} of the raw DA"
    )
    click.echo(f"chosen ({goal}):")
    click.echo(report["yaml"])


def _num(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def _print_held_out(report: dict[str, Any], cell: Callable[[dict[str, Any], str], str]) -> None:
    """The chosen setting on the held-out groups (and in-sample, and the raw reward there),
    within 100 columns; a warning where a held-out CI is wider than WIDE_CI."""
    import textwrap

    from rewardplug.tuning import METRIC_KEYS, WIDE_CI

    held, split = report["held_out"], report["split"]
    click.echo(
        textwrap.fill(
            f"held-out: the chosen setting on {held['groups']} groups ({held['samples']} samples) "
            f"not used to choose it; tuned on {split['tuning_groups']} groups",
            100,
        )
    )
    widths = (20, 18, 18, 18, 5)
    header = ["", "DA", "SP", "accuracy", "tiers"]
    raw_row = {**held["raw"], "ci": held["raw_ci"], "n_tiers_mean": None}
    for label, row in (
        ("", None),
        ("raw (held-out)", raw_row),
        ("chosen (in-sample)", report["chosen"]),
        ("chosen (held-out)", held["chosen"]),
    ):
        cells = header if row is None else [label, *(cell(row, k) for k in METRIC_KEYS)]
        if row is not None:
            cells.append("" if row["n_tiers_mean"] is None else f"{row['n_tiers_mean']:.2f}")
        click.echo(" ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip())
    names = {"discriminative_ability": "DA", "specificity": "SP", "accuracy": "accuracy"}
    if held["wide_ci"]:
        wide = ", ".join(names[k] for k in held["wide_ci"])
        click.echo(
            textwrap.fill(
                f"warning: wide held-out CIs ({wide}: the 95% bootstrap CI is wider than "
                f"{WIDE_CI:g}): {held['groups']} held-out groups are too few to tell whether this "
                "setting is better than its neighbours; label more groups before trusting it",
                100,
            ),
            err=True,
        )
    elif not held["chosen"]["ci"]:
        click.echo("note: no CIs (--bootstrap 0), so their width is not checked", err=True)


def _print_report(report: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    from rewardplug.metrics import format_metric

    table = Table(title=f"gold = {report['gold_field']}  (95% bootstrap CIs over groups)")
    table.add_column("reward")
    for name in ("discriminative ability", "specificity", "accuracy"):
        table.add_column(name)
    for label in ("raw", "discretized"):
        part = report[label]
        table.add_row(
            label,
            *(
                format_metric(part, k)
                for k in ("discriminative_ability", "specificity", "accuracy")
            ),
        )
    console = Console()
    console.print(table)
    raw = report["raw"]
    console.print(
        f"{raw['groups']} groups, {raw['samples']} samples, {raw['pairs_gold_differs']} pairs with "
        f"different gold, {raw['pairs_gold_equal']} with equal gold; {report['abstained']} abstained"
    )
    if report.get("n_tiers_mean") is not None:
        spread = ", ".join(f"{n}: {c}" for n, c in report["n_tiers_distribution"].items())
        console.print(
            f"tiers per group (discretized): mean {report['n_tiers_mean']:.2f}; groups by number "
            f"of tiers {{{spread}}}"
        )
