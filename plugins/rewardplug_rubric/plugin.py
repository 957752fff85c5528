"""Plugin registration for the ``rubric`` source, its check kinds and its CLI commands.

Imported when the plugin host loads entry points, so it stays cheap: the source, the check kinds
and the commands are imported inside the hooks, and nothing here touches a judge backend.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rewardplug.hookspecs import RegisterCriterion, RegisterSource, hookimpl

if TYPE_CHECKING:
    import click


@hookimpl
def register_sources(register: RegisterSource) -> None:
    register("rubric", "rewardplug_rubric.source:RubricSource")  # imported on first use


@hookimpl
def register_criteria(register: RegisterCriterion) -> None:
    from rewardplug_rubric.checks import BUILTIN_KINDS

    for kind, criterion_class in BUILTIN_KINDS.items():
        register(kind, criterion_class)
    from rewardplug_rubric.code_hack import CodeHack

    register("code_hack", CodeHack)


@hookimpl
def register_commands(cli: click.Group) -> None:
    from rewardplug_rubric.cli import rubric

    cli.add_command(rubric)
