"""The ``rewardplug`` command line: a thin layer over the Python API.

The group and the scoring commands live here; ``eval``/``tune`` in :mod:`rewardplug.cli_eval`,
``serve``/``demo`` in :mod:`rewardplug.cli_run`. Plugins add sub-commands through the
``register_commands(cli)`` hook, called lazily. Expected failures (an invalid stack, a bad input
line) print a precise message and exit 1, never a traceback.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from rewardplug.cli_util import Failure, friendly_errors, progress

__all__ = ["cli", "main"]


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


# Set before any model library is imported: they read these at import time.
_QUIET_ENV = {
    "TRANSFORMERS_VERBOSITY": "error",  # transformers' info/warning chatter while loading
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",  # download / weight-loading bars of hub and transformers
    "TQDM_DISABLE": "1",  # any other tqdm bar (gguf conversion, datasets)
    "TOKENIZERS_PARALLELISM": "false",  # the fork warning of tokenizers
}


@click.group(cls=_PluginCommands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="rewardplug")
@click.option(
    "-v",
    "--verbose",
    is_flag=True,
    help="Show the model libraries' own progress bars and messages, and rewardplug's debug log "
    "(the traceback of a source that failed). Quiet by default: one line per failure.",
)
def cli(verbose: bool) -> None:
    """Rewards you can trust for RL on language models: uncertain scores, tie-grouped rewards."""
    from rewardplug.notices import show_as_cli_lines

    # rewardplug's warnings (a source that is down, ...) as one `warning: ...` line each
    show_as_cli_lines(lambda text: click.secho(text, err=True, fg="yellow"))
    if verbose:
        _debug_log()
    else:
        for key, value in _QUIET_ENV.items():
            os.environ.setdefault(key, value)  # a user's own setting wins


def _debug_log() -> None:
    """``-v``: rewardplug's log from DEBUG up on stderr, tracebacks included; a record that
    repeats a warning already shown is left out."""
    import logging

    from rewardplug.notices import SHOWN

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    handler.addFilter(lambda record: not getattr(record, SHOWN, False))
    logging.getLogger().addHandler(handler)  # other libraries' loggers stay at WARNING
    logging.getLogger("rewardplug").setLevel(logging.DEBUG)


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
        raise Failure(str(exc)) from None
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

    with friendly_errors():
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
@click.option(
    "--strict",
    is_flag=True,
    help="Exit with status 1 when samples lack a field a source needs (they are still written).",
)
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
    strict: bool,
) -> None:
    """Score a JSONL file of samples with a stack."""
    if resume and overwrite:
        raise click.UsageError("--resume and --overwrite contradict each other; pick one")
    saved = 0 if resume or overwrite else _rows_in(output_path)  # (reading it costs time)
    if saved:
        raise Failure(
            f"{output_path} already holds {saved} rows; pass --resume to continue that run, "
            "or --overwrite to replace it"
        )
    try:
        missing = _score(
            stack, input_path, output_path, resume, skip_bad, batch_size, engine, address
        )
    except KeyboardInterrupt:
        saved = _rows_in(output_path)
        click.secho(
            f"interrupted: {saved} scored rows are saved in {output_path}; run the same command "
            "with --resume to score the rest",
            err=True,
            fg="yellow",
        )
        sys.exit(130)
    if strict and missing:
        click.secho(
            "error (--strict): samples lack fields their sources need; see above",
            err=True,
            fg="red",
        )
        sys.exit(1)


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
) -> bool:
    """Run the scoring; True when samples lacked fields their sources need."""
    if engine == "ray":
        if resume:
            raise click.UsageError("--resume is not supported with --engine ray")
        from rewardplug.ray_engine import score_file_ray

        with friendly_errors():
            n = score_file_ray(
                stack,
                input_path,
                output_path,
                address=address,
                batch_size=batch_size,
                skip_bad=skip_bad,
            )
        click.echo(f"wrote {n} rows to {output_path}", err=True)
        return False
    from rewardplug.runner import score_file
    from rewardplug.stack import load_stack

    with friendly_errors():
        loaded = load_stack(stack)
        with loaded, progress("scoring") as update:
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
    for line in summary.missing:
        click.secho(f"warning: {line}", err=True, fg="yellow")
    return bool(summary.missing)


def _add_core_commands() -> None:
    from rewardplug.cli_eval import eval_cmd, tune
    from rewardplug.cli_run import demo, serve

    for command in (eval_cmd, tune, serve, demo):
        cli.add_command(command)


_add_core_commands()


def build_cli() -> click.Group:
    """The CLI with every plugin's commands added (for callers that list or call them directly)."""
    cli.add_plugin_commands()
    return cli


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point (plugin commands load lazily, see :class:`_PluginCommands`)."""
    # A stack names its functions as `module:name`; as with `python -m`, modules in the current
    # folder (the user's my_rewards.py) are importable. A console script would not see them.
    if "" not in sys.path and str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
    cli.main(args=argv if argv is not None else sys.argv[1:], prog_name="rewardplug")
