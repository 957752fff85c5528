"""The hook specifications a rewardplug plugin can implement.

A plugin is any importable module (or object) with functions decorated by ``rewardplug.hookimpl``
and named after these hooks, advertised through the ``rewardplug`` entry-point group::

    [project.entry-points.rewardplug]
    hello = "rewardplug_hello"

Every hook receives a ``register`` callable or the CLI object and returns nothing. Hooks are few on
purpose: one is added only when a real plugin needs it. ``docs/plugin-hooks.md`` documents each
hook with its exact signature; a test keeps the two in step.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

import pluggy

if TYPE_CHECKING:
    import click

    from rewardplug.source import RewardSource

PROJECT_NAME = "rewardplug"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


class RegisterSource(Protocol):
    """``register(name, source_class)`` as passed to :func:`register_sources`.

    ``source_class`` is the class or its import path (``"package.module:Class"``), which is
    imported only when a stack first uses the source (a cheaper start for every command).
    """

    def __call__(self, name: str, source_class: type[RewardSource] | str) -> None: ...


class RegisterCriterion(Protocol):
    """``register(kind, criterion_class)`` as passed to :func:`register_criteria`."""

    def __call__(self, kind: str, criterion_class: type[Any]) -> None: ...


@hookspec
def register_sources(register: RegisterSource) -> None:
    """Register reward sources that stacks can ``use:`` by name.

    Call ``register(name, SourceClass)`` once per source. ``SourceClass`` subclasses
    :class:`rewardplug.RewardSource`: a nested pydantic ``Config`` (``extra="forbid"``) validates
    the stack's ``with:`` mapping, and ``score(samples) -> list[Score]`` scores a batch.

    :param register: callable ``register(name: str, source_class: type[RewardSource]) -> None``.
        ``name`` is what a stack writes after ``use:``; it must be unique across all plugins.

    Semantics: called once, when the source registry is first needed (not at import time). The
    host records which plugin registered each name (``rewardplug plugins`` shows it) and rejects a
    name that is already taken; the rejected plugin is reported with a load error and the other
    plugins keep working. Keep heavy imports (torch, clients) out of this hook: import them when
    the source first scores.
    """


@hookspec
def register_commands(cli: click.Group) -> None:
    """Add sub-commands to the ``rewardplug`` command line.

    :param cli: the top-level ``click.Group``; add commands with ``@cli.command()`` or groups
        with ``@cli.group()``.

    Semantics: called once while the CLI is built, before arguments are parsed, so ``--help``
    lists plugin commands. Commands should be thin wrappers over a Python API the plugin also
    exposes. A plugin whose hook raises is reported by ``rewardplug plugins``; the CLI still works.
    """


@hookspec
def register_criteria(register: RegisterCriterion) -> None:
    """Register rubric criterion check kinds (``check: {kind: ...}`` in a rubric).

    Call ``register(kind, CriterionClass)`` once per kind. ``CriterionClass`` subclasses
    :class:`rewardplug.criteria.Criterion`: a pydantic model of the check's fields (validated when
    the rubric loads) whose ``check(sample)`` returns the criterion's outcome.

    :param register: callable ``register(kind: str, criterion_class: type) -> None``; ``kind`` must
        be unique across plugins.

    Semantics: called once, when the criterion registry is first needed. Built-in kinds
    (``contains``, ``regex``, ``python``, ``llm``, ...) are registered through this same hook by the
    ``rubric`` plugin; duplicates are rejected and reported like duplicate sources.
    """
