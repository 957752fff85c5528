"""The ``rewardplug`` command line: a thin layer over the Python API.

Plugins add sub-commands through the ``register_commands(cli)`` hook. Expected failures (an invalid
stack, a bad input line) print a precise message and exit 1, never a traceback.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

__all__ = ["cli", "main"]


class _Failure(click.ClickException):
    exit_code = 1

    def show(self, file: Any = None) -> None:
        click.secho(f"error: {self.message}", err=True, fg="red")


@contextmanager
def _friendly_errors() -> Iterator[None]:
    """Turn the library's user-facing errors into exit code 1 with their message."""
    from rewardplug.config import StackError
    from rewardplug.io import InputError

    try:
        yield
    except (StackError, InputError, ValueError, FileNotFoundError) as exc:
        raise _Failure(str(exc)) from None


@contextmanager
def _progress(label: str) -> Iterator[Callable[[int, int], None]]:
    """A rich progress bar on stderr; yields ``update(done, total)``."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=Console(stderr=True), transient=False) as bar:
        task = bar.add_task(label, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update


class _PluginCommands(click.Group):
    """The top-level group: plugin commands are added on first need, not at start-up.

    A core command (``score``, ``validate``, ...) runs without calling any plugin's
    ``register_commands``; an unknown name, or the command list that ``--help`` prints, calls them
    once. Plugins still load their *sources* when a stack needs them.
    """

    _plugin_commands_added = False

    def add_plugin_commands(self) -> None:
        if not self._plugin_commands_added:
            self._plugin_commands_added = True
            from rewardplug.plugins import add_plugin_commands

            add_plugin_commands(self)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is None and not self._plugin_commands_added:
            self.add_plugin_commands()
            command = super().get_command(ctx, cmd_name)
        return command

    def list_commands(self, ctx: click.Context) -> list[str]:
        self.add_plugin_commands()
        return super().list_commands(ctx)


@click.group(cls=_PluginCommands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="rewardplug")
def cli() -> None:
    """Rewards you can trust for RL on language models: uncertain scores, tie-grouped rewards."""


@cli.command("plugins")
def plugins_cmd() -> None:
    """List plugins as JSON: name, version, sources, criteria, load error."""
    from rewardplug.plugins import plugin_report

    click.echo(json.dumps(plugin_report(), indent=2))


@cli.command()
@click.argument("folder", default=".", type=click.Path(file_okay=False))
@click.option("--overwrite", is_flag=True, help="Replace starter files that already exist.")
def init(folder: str, overwrite: bool) -> None:
    """Write a commented starter stack, reward module and sample file into FOLDER."""
    from rewardplug.starter import write_starter

    try:
        written = write_starter(folder, overwrite=overwrite)
    except FileExistsError as exc:
        raise _Failure(str(exc)) from None
    for path in written:
        click.echo(f"wrote {path}", err=True)
    where = "" if Path(folder).resolve() == Path.cwd() else f"cd {folder} && "
    click.echo(
        f"next: {where}rewardplug validate stack.yaml && "
        "rewardplug score stack.yaml samples.jsonl -o scored.jsonl",
        err=True,
    )


@cli.command()
@click.argument("stack", type=click.Path(dir_okay=False))
def validate(stack: str) -> None:
    """Check a stack file (every source's settings included) without scoring anything."""
    from rewardplug.stack import load_stack

    with _friendly_errors():
        loaded = load_stack(stack)
    click.echo(
        f"ok: {stack} ({', '.join(f'{n} ({s.use})' for n, s in zip(loaded.sources, loaded.config.sources, strict=True))})"
    )


@cli.command()
@click.argument("stack", type=click.Path(dir_okay=False))
@click.argument("input_path", metavar="INPUT.jsonl", type=click.Path(dir_okay=False))
@click.option(
    "-o",
    "--output",
    "output_path",
    required=True,
    type=click.Path(dir_okay=False),
    help="Output JSONL: the input fields plus the reward fields.",
)
@click.option(
    "--resume", is_flag=True, help="Continue an interrupted run (no duplicate, no lost row)."
)
@click.option("--overwrite", is_flag=True, help="Replace an existing output file.")
@click.option(
    "--skip-bad",
    is_flag=True,
    help="Skip malformed input lines (and count them) instead of failing.",
)
@click.option(
    "--batch-size", default=256, show_default=True, help="Samples per scoring call (whole groups)."
)
@click.option("--engine", type=click.Choice(["local", "ray"]), default="local", show_default=True)
@click.option("--address", default=None, help="Ray cluster address (with --engine ray).")
def score(
    stack: str,
    input_path: str,
    output_path: str,
    resume: bool,
    overwrite: bool,
    skip_bad: bool,
    batch_size: int,
    engine: str,
    address: str | None,
) -> None:
    """Score a JSONL file of samples with a stack."""
    if resume and overwrite:
        raise click.UsageError("--resume and --overwrite contradict each other; pick one")
    saved = _rows_in(output_path)
    if saved and not (resume or overwrite):
        raise _Failure(
            f"{output_path} already holds {saved} rows; pass --resume to continue that run, "
            "or --overwrite to replace it"
        )
    try:
        _score(stack, input_path, output_path, resume, skip_bad, batch_size, engine, address)
    except KeyboardInterrupt:
        saved = _rows_in(output_path)
        click.secho(
            f"interrupted: {saved} scored rows are saved in {output_path}; run the same command "
            "with --resume to score the rest",
            err=True,
            fg="yellow",
        )
        sys.exit(130)


def _rows_in(path: str) -> int:
    """Complete rows in an output file (0 when there is none); batches are appended whole."""
    try:
        with open(path, "rb") as f:
            return sum(1 for line in f if line.endswith(b"\n") and line.strip())
    except FileNotFoundError:
        return 0


def _score(
    stack: str,
    input_path: str,
    output_path: str,
    resume: bool,
    skip_bad: bool,
    batch_size: int,
    engine: str,
    address: str | None,
) -> None:
    if engine == "ray":
        if resume:
            raise click.UsageError("--resume is not supported with --engine ray")
        from rewardplug.ray_engine import score_file_ray

        with _friendly_errors():
            n = score_file_ray(
                stack,
                input_path,
                output_path,
                address=address,
                batch_size=batch_size,
                skip_bad=skip_bad,
            )
        click.echo(f"wrote {n} rows to {output_path}", err=True)
        return
    from rewardplug.runner import score_file
    from rewardplug.stack import load_stack

    with _friendly_errors():
        loaded = load_stack(stack)
        with loaded, _progress("scoring") as update:
            summary = score_file(
                loaded,
                input_path,
                output_path,
                batch_size=batch_size,
                resume=resume,
                skip_bad=skip_bad,
                on_progress=update,
            )
    for message in summary.skipped:
        click.echo(f"skipped: {message}", err=True)
    if summary.total == 0:
        click.secho(
            f"warning: {input_path} holds no samples; nothing was scored", err=True, fg="yellow"
        )
    click.echo(
        f"wrote {summary.written} rows to {output_path}"
        + (f" ({summary.resumed} already there)" if summary.resumed else "")
        + (f"; {summary.abstained} abstained" if summary.abstained else "")
        + (f"; skipped {len(summary.skipped)} bad lines" if summary.skipped else ""),
        err=True,
    )


@cli.command("eval")
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


@cli.command()
@click.argument("stack", type=click.Path(dir_okay=False))
@click.argument("data", metavar="DATA.jsonl", type=click.Path(dir_okay=False))
@click.option(
    "--gold", "gold_field", required=True, help="Field holding the gold quality (number or bool)."
)
@click.option(
    "--objective",
    type=click.Choice(["accuracy", "sp_at_max_da_loss"]),
    default="accuracy",
    show_default=True,
    help="accuracy: the best accuracy; sp_at_max_da_loss: the best specificity losing at most "
    "--max-da-loss of the raw reward's discriminative ability.",
)
@click.option("--max-da-loss", default=0.05, show_default=True, type=click.FloatRange(0, 1))
@click.option(
    "--json", "json_path", type=click.Path(dir_okay=False), help="Write all rows as JSON."
)
@click.option("--bootstrap", default=200, show_default=True, help="Bootstrap resamples for CIs.")
@click.option("--batch-size", default=256, show_default=True)
@click.option("--skip-bad", is_flag=True, help="Skip malformed input lines instead of failing.")
def tune(
    stack: str,
    data: str,
    gold_field: str,
    objective: str,
    max_da_loss: float,
    json_path: str | None,
    bootstrap: int,
    batch_size: int,
    skip_bad: bool,
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
        ),
    )
    _print_tuning(report)
    _write_json(json_path, report)


def _on_labelled_data(
    stack_path: str, data: str, skip_bad: bool, run: Callable[..., dict[str, Any]]
) -> dict[str, Any]:
    """Load the stack and the JSONL file, then ``run(stack, samples, on_progress)``."""
    from rewardplug.io import load_jsonl
    from rewardplug.stack import load_stack

    with _friendly_errors():
        loaded_stack = load_stack(stack_path)
        samples = load_jsonl(data, skip_bad=skip_bad).samples
        with loaded_stack, _progress("scoring") as update:
            return run(loaded_stack, samples, update)


def _write_json(path: str | None, report: dict[str, Any]) -> None:
    if path:
        Path(path).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        click.echo(f"wrote {path}", err=True)


def _print_tuning(report: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    def cell(row: dict[str, Any], key: str) -> str:
        value = row.get(key)
        if value is None:
            return "n/a"
        ci = (row.get("ci") or {}).get(key)
        return f"{value:.3f}" + (f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else "")

    raw = report["raw"]
    table = Table(
        title=f"gold = {report['gold_field']}; raw reward: DA {raw['discriminative_ability']:.3f}, "
        f"SP {raw['specificity']:.3f}, accuracy {raw['accuracy']:.3f}"
    )
    for name in ("noise std", "rule", "margin", "confidence", "DA", "SP", "accuracy", "tiers"):
        table.add_column(name)
    chosen = report["chosen"]
    for row in report["rows"]:
        mark = " <" if row == chosen else ""
        table.add_row(
            "-" if row["noise_std"] is None else f"{row['noise_std']:g}",
            row["rule"],
            f"{row['margin']:g}",
            f"{row['confidence']:g}{mark}",
            cell(row, "discriminative_ability"),
            cell(row, "specificity"),
            cell(row, "accuracy"),
            "n/a" if row["n_tiers_mean"] is None else f"{row['n_tiers_mean']:.2f}",
        )
    console = Console()
    console.print(table)
    if report["one_draw_sources"]:
        console.print(
            "sources with one draw per response (noise levels swept for them): "
            + ", ".join(report["one_draw_sources"])
        )
    goal = (
        "best accuracy"
        if report["objective"] == "accuracy"
        else f"best specificity within {report['max_da_loss']:g} of the raw DA"
    )
    console.print(f"chosen ({goal}):")
    click.echo(report["yaml"])


def _print_report(report: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    def cell(part: dict[str, Any], key: str) -> str:
        value = part[key]
        if value is None:
            return "n/a"
        ci = (part.get("ci") or {}).get(key)
        return f"{value:.3f}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "")

    table = Table(title=f"gold = {report['gold_field']}  (95% bootstrap CIs over groups)")
    table.add_column("reward")
    for name in ("discriminative ability", "specificity", "accuracy"):
        table.add_column(name)
    for label in ("raw", "discretized"):
        part = report[label]
        table.add_row(
            label, *(cell(part, k) for k in ("discriminative_ability", "specificity", "accuracy"))
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


@cli.command()
@click.argument("stack", type=click.Path(dir_okay=False))
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Interface to bind (loopback by default).",
)
@click.option("--port", default=5000, show_default=True)
@click.option(
    "--max-batch", default=256, show_default=True, help="Most samples scored in one micro-batch."
)
@click.option(
    "--max-wait-ms", default=5.0, show_default=True, help="How long a micro-batch waits to fill."
)
@click.option(
    "--max-queue", default=4096, show_default=True, help="Queued samples before answering 503."
)
@click.option(
    "--abstain-reward",
    default=0.0,
    show_default=True,
    help="Number sent for a sample the stack abstains on (the protocol needs a number); "
    "abstentions are flagged in extra_logs.",
)
@click.option(
    "--group-size",
    type=click.IntRange(min=1),
    default=None,
    help="Assemble groups of N samples across requests (by label group/uid, else prompt) and "
    "answer each request when its group is done. Use it with OpenRLHF >= 0.9.1, which sends one "
    "sample per request: N = --n_samples_per_prompt.",
)
@click.option(
    "--group-timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=60.0,
    show_default=True,
    help="Seconds a group waits for its members before it is discretized as a partial group.",
)
def serve(
    stack: str,
    host: str,
    port: int,
    max_batch: int,
    max_wait_ms: float,
    max_queue: int,
    abstain_reward: float,
    group_size: int | None,
    group_timeout: float,
) -> None:
    """HTTP reward service (OpenRLHF remote reward protocol)."""
    from rewardplug.server import serve as run_server

    with _friendly_errors():
        run_server(
            stack,
            host,
            port,
            max_batch=max_batch,
            max_wait_ms=max_wait_ms,
            max_queue=max_queue,
            abstain_reward=abstain_reward,
            group_size=group_size,
            group_timeout_s=group_timeout,
        )


@cli.command()
@click.option(
    "--out",
    "out_dir",
    default="rewardplug-demo",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Folder for the PNG and the scored rows.",
)
@click.option(
    "--stack",
    "stack_path",
    default=None,
    type=click.Path(dir_okay=False),
    help="Use another stack instead of the bundled default.",
)
def demo(out_dir: str, stack_path: str | None) -> None:
    """Score the bundled example batch offline and print the tiers."""
    from rewardplug.demo import run_demo

    with _friendly_errors():
        run_demo(Path(out_dir), stack_path)


def build_cli() -> click.Group:
    """The CLI with every plugin's commands added (for callers that list or call them directly)."""
    cli.add_plugin_commands()  # type: ignore[attr-defined]
    return cli


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point (plugin commands load lazily, see :class:`_PluginCommands`)."""
    # A stack names its functions as `module:name`; as with `python -m`, modules in the current
    # folder (the user's my_rewards.py) are importable. A console script would not see them.
    if "" not in sys.path and str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
    cli.main(args=argv if argv is not None else sys.argv[1:], prog_name="rewardplug")
