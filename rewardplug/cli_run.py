"""``rewardplug serve`` and ``rewardplug demo``: the long-running and the showcase commands."""

from __future__ import annotations

import os
from pathlib import Path

import click

from rewardplug.cli_util import friendly_errors
from rewardplug.integrations.conventions import DEFAULT_STRIP_SUFFIXES

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
    "--max-queue",
    default=4096,
    show_default=True,
    help="Without --group-size: queued samples before answering 503. Not used with --group-size "
    "(see --max-open-groups, --max-held, --admission-timeout).",
)
@click.option(
    "--abstain-reward",
    default=0.0,
    show_default=True,
    help="Number sent for a sample the stack abstains on (the protocol needs a number); such "
    "samples get extra_logs reward_mask = 0.0 and abstained = 1.0, the first is logged, and "
    "GET /health counts them ('filled').",
)
@click.option(
    "--group-size",
    type=click.IntRange(min=1),
    default=None,
    help="Assemble groups of N samples across requests (by label group/uid, else prompt) and "
    "answer each request when its group is done. Use it with OpenRLHF >= 0.9.1, which sends one "
    "sample per request: N = OpenRLHF's --rollout.n_samples_per_prompt.",
)
@click.option(
    "--group-timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=60.0,
    show_default=True,
    help="Seconds a group waits for its members before it is discretized as a partial group.",
)
@click.option(
    "--eval-group-size",
    type=click.IntRange(min=1),
    default=None,
    help='With --group-size: group size of evaluation samples (label "split": "test", '
    '"eval", "val", "validation" or "dev") whose label has no group_size. Unset: 1 '
    "(each eval sample answered on arrival, reward = its raw score). To tie-group eval like "
    "training, set it to OpenRLHF's --eval.n_samples_per_prompt (default 4).",
)
@click.option(
    "--max-open-groups",
    type=click.IntRange(min=1),
    default=8192,
    show_default=True,
    help="With --group-size: groups open at once; a new group's first request waits for room.",
)
@click.option(
    "--max-held",
    type=click.IntRange(min=1),
    default=16384,
    show_default=True,
    help="With --group-size: samples held plus members open groups still expect (memory bound; "
    "see docs). OpenRLHF's default rollout is --rollout.batch_size 1024 x n in flight.",
)
@click.option(
    "--admission-timeout",
    type=click.FloatRange(min=0),
    default=90.0,
    show_default=True,
    help="With --group-size: seconds a new group's first request waits for room before a 503. "
    "Keep it + --group-timeout under OpenRLHF's 180 s client timeout.",
)
@click.option(
    "--strip-suffix",
    "strip_suffixes",
    multiple=True,
    metavar="TEXT",
    help="End marker cut from the end of each response before scoring (repeatable; replaces "
    "the default list: " + ", ".join(DEFAULT_STRIP_SUFFIXES) + ").",
)
@click.option(
    "--no-strip-suffix",
    is_flag=True,
    help="Score responses exactly as sent (no end marker is cut).",
)
@click.option(
    "--backlog",
    type=click.IntRange(min=1),
    default=8192,
    show_default=True,
    help="Connections queued before they are accepted (OpenRLHF opens one per sample; the "
    "kernel caps it at net.core.somaxconn).",
)
@click.option(
    "--header-timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=10.0,
    show_default=True,
    help="Seconds a client has to send a request's headers (from its first byte, or from "
    "connecting); then 408 and the connection is closed.",
)
@click.option(
    "--body-timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=30.0,
    show_default=True,
    help="Seconds a client has to send a request's body after its headers; then 408 and the "
    "connection is closed. These limits are on reading a request, not on answering it.",
)
@click.option(
    "--keep-alive",
    type=click.FloatRange(min=0, min_open=True),
    default=5.0,
    show_default=True,
    help="Seconds an idle connection is kept open between requests (OpenRLHF opens a new "
    "connection per request).",
)
@click.option(
    "--auth-token-env",
    metavar="VAR",
    default=None,
    help="Require 'Authorization: Bearer <token>' on every request (401 without it; GET /health "
    "then answers liveness only), the token read from the environment variable VAR. OpenRLHF's "
    "client sends no such header: see examples/openrlhf.md, 'Security'.",
)
@click.option(
    "--log-level",
    type=click.Choice(["critical", "error", "warning", "info", "debug"]),
    default="warning",
    show_default=True,
    help="uvicorn's and rewardplug's log level (info also logs groups that got more than N "
    "members).",
)
@click.pass_context
def serve(
    ctx: click.Context,
    stack: str,
    host: str,
    port: int,
    max_batch: int,
    max_wait_ms: float,
    max_queue: int,
    abstain_reward: float,
    group_size: int | None,
    group_timeout: float,
    eval_group_size: int | None,
    max_open_groups: int,
    max_held: int,
    admission_timeout: float,
    strip_suffixes: tuple[str, ...],
    no_strip_suffix: bool,
    backlog: int,
    header_timeout: float,
    body_timeout: float,
    keep_alive: float,
    auth_token_env: str | None,
    log_level: str,
) -> None:
    """HTTP reward service (OpenRLHF remote reward protocol).

    With OpenRLHF >= 0.9.1 (one sample per request) start it with --group-size N, N = OpenRLHF's
    --rollout.n_samples_per_prompt, and give OpenRLHF this one server's URL
    (--reward.remote_url http://HOST:PORT/get_reward).

    Loopback by default. --auth-token-env VAR requires a bearer token (OpenRLHF's client sends
    none: see examples/openrlhf.md, "Security"); clients slower than --header-timeout /
    --body-timeout to send a request are closed.
    """
    from rewardplug.extras import SERVE, require
    from rewardplug.server import serve as run_server

    if no_strip_suffix and strip_suffixes:
        raise click.UsageError("--no-strip-suffix and --strip-suffix contradict each other")
    grouped_only = ("eval_group_size", "max_open_groups", "max_held", "admission_timeout")
    given = [
        n for n in grouped_only if ctx.get_parameter_source(n) != click.core.ParameterSource.DEFAULT
    ]
    if group_size is None and given:
        raise click.UsageError(
            f"--{given[0].replace('_', '-')} only applies with --group-size (groups assembled "
            "across requests)"
        )
    if group_size is not None and ctx.get_parameter_source("max_queue") != (
        click.core.ParameterSource.DEFAULT
    ):
        click.echo(
            "note: --max-queue does not apply with --group-size; admission is per group "
            "(--max-open-groups, --max-held, --admission-timeout)",
            err=True,
        )
    auth_token = None if auth_token_env is None else _auth_token(auth_token_env)
    with friendly_errors():
        require("rewardplug serve", SERVE)  # before the stack loads: the pip command, no traceback
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
            max_open_groups=max_open_groups,
            max_held=max_held,
            admission_timeout_s=admission_timeout,
            eval_group_size=eval_group_size,
            strip_suffixes=() if no_strip_suffix else (strip_suffixes or DEFAULT_STRIP_SUFFIXES),
            backlog=backlog,
            log_level=log_level,
            header_timeout_s=header_timeout,
            body_timeout_s=body_timeout,
            keep_alive_s=keep_alive,
            auth_token=auth_token,
        )


def _auth_token(var: str) -> str:
    """The bearer token in the environment variable ``var``; a usage error if there is none."""
    from rewardplug.server import check_auth_token

    token = os.environ.get(var)
    where = f"--auth-token-env {var}: the environment variable {var}"
    if token is None:
        raise click.UsageError(
            f"{where} is not set; put the token in it (e.g. "
            f"export {var}=$(openssl rand -hex 32)) before starting the server"
        )
    if token == "":
        raise click.UsageError(f"{where} is empty; put the token in it")
    try:
        return check_auth_token(token)
    except ValueError as exc:
        raise click.UsageError(f"{where} holds no usable token: {exc}") from None


@click.command()
@click.option(
    "--out",
    "out_dir",
    default=None,
    type=click.Path(file_okay=False),
    help="Folder for the PNG and the scored rows. Default: ./rewardplug-demo, or inside a "
    "rewardplug source checkout ~/.cache/rewardplug/demo (REWARDPLUG_CACHE_DIR/demo), so that "
    "nothing lands among the sources or in a wheel.",
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
def demo(out_dir: str | None, stack_path: str | None, full: bool) -> None:
    """Score the bundled example batch offline (in seconds) and explain the tiers."""
    from rewardplug.demo import run_demo

    with friendly_errors():
        run_demo(None if out_dir is None else Path(out_dir), stack_path, full=full)
