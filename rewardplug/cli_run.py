"""``rewardplug serve`` and ``rewardplug demo``: the long-running and the showcase commands."""

from __future__ import annotations

from pathlib import Path

import click

from rewardplug.cli_util import friendly_errors

__all__ = ["demo", "serve"]


@click.command()
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

    with friendly_errors():
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


@click.command()
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
@click.option(
    "--full",
    is_flag=True,
    help="Also run the bundled stack's local SmolLM2 judge (a few minutes on a CPU).",
)
def demo(out_dir: str, stack_path: str | None, full: bool) -> None:
    """Score the bundled example batch offline (in seconds) and explain the tiers."""
    from rewardplug.demo import run_demo

    with friendly_errors():
        run_demo(Path(out_dir), stack_path, full=full)
