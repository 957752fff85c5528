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

    from rewardplug.rules import CombineConfig, CombineFn, TransformConfig, TransformFn
    from rewardplug.source import RewardSource

__all__ = [
    "RegisterCombiner",
    "RegisterCriterion",
    "RegisterSource",
    "RegisterTransform",
    "hookimpl",
    "register_combiners",
    "register_commands",
    "register_criteria",
    "register_sources",
    "register_transforms",
]

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


class RegisterTransform(Protocol):
    """``register(name, function, config)`` as passed to :func:`register_transforms`.

    ``function(values, config, context) -> values`` (:data:`rewardplug.plugin_api.TransformFn`);
    ``config`` subclasses :class:`rewardplug.TransformConfig`.
    """

    def __call__(
        self, name: str, function: TransformFn[Any], config: type[TransformConfig]
    ) -> None: ...


class RegisterCombiner(Protocol):
    """``register(name, function, config)`` as passed to :func:`register_combiners`.

    ``function(values, weights, present, config) -> combined``
    (:data:`rewardplug.plugin_api.CombineFn`); ``config`` subclasses
    :class:`rewardplug.CombineConfig`.
    """

    def __call__(
        self, name: str, function: CombineFn[Any], config: type[CombineConfig]
    ) -> None: ...


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
    :class:`rewardplug.Criterion`: a pydantic model of the check's fields (validated when
    the rubric loads) whose ``check(sample)`` returns the criterion's outcome.

    :param register: callable ``register(kind: str, criterion_class: type) -> None``; ``kind`` must
        be unique across plugins.

    Semantics: called once, when the criterion registry is first needed. Built-in kinds
    (``contains``, ``regex``, ``python``, ``llm``, ...) are registered through this same hook by the
    ``rubric`` plugin; duplicates are rejected and reported like duplicate sources.
    """


@hookspec
def register_transforms(register: RegisterTransform) -> None:
    """Register score transforms that a source's ``transform:`` list can name.

    Call ``register(name, function, ConfigClass)`` once per transform. ``ConfigClass`` subclasses
    :class:`rewardplug.TransformConfig` (a pydantic model, unknown keys forbidden): it
    validates ``{kind: name, ...}`` (or ``{name: {...}}``, or just ``name``) when the stack loads.
    ``function(values, config, context)`` gets a 1-D float array -- the point estimate followed
    by the draws -- and returns the transformed array of the same shape.

    :param register: callable ``register(name: str, function: TransformFn, config: type) -> None``;
        ``name`` is the transform's ``kind`` and must be unique across plugins.

    Semantics: called once, when a stack first needs the transform registry. Built-in transforms
    (``par``, ``log_sigmoid``, ``clip``, ``scale``, ``overlong``) are registered through this same
    hook by the core ``rules`` plugin; a duplicate name is rejected and reported as that plugin's
    load error. Abstentions never reach ``function``, and a non-finite result abstains with the
    reason; import heavy libraries inside ``function``, not in the hook.
    """


@hookspec
def register_combiners(register: RegisterCombiner) -> None:
    """Register combine rules that a stack's ``combine:`` can name.

    Call ``register(name, function, ConfigClass)`` once per rule. ``ConfigClass`` subclasses
    :class:`rewardplug.CombineConfig`: it validates ``combine: name`` or
    ``combine: {kind: name, ...}`` when the stack loads. ``function(values, weights, present,
    config)`` combines the sources' aligned draws ``values`` (S, N, K) -- NaN where a source did
    not score the sample, ``present`` (S, N, 1) says where it did -- with the stack's ``weights``
    (S,) into one (N, K) array, draw by draw.

    :param register: callable ``register(name: str, function: CombineFn, config: type) -> None``;
        ``name`` is what a stack writes after ``combine:`` and must be unique across plugins.

    Semantics: called once, when a stack first needs the combiner registry. Built-in rules
    (``weighted_sum``, ``min``, ``mean_minus_var``) are registered through this same hook by the
    core ``rules`` plugin. The rule runs on the point estimates (K = 1) and on the draws; a row
    whose result is not finite abstains with the reason.
    """
