"""The pluggy host: :class:`Host` builds a plugin manager lazily and keeps the registries its
plugins fill (sources, rubric criterion kinds, transforms, combine rules).

Nothing here runs at import time. A host is built on its first use: it registers the core
plugins and any plugins it was given, loads every ``rewardplug`` entry point one by one (so a
broken plugin is recorded with its error while the others still load), honours
``REWARDPLUG_DISABLE_PLUGINS=a,b`` and calls ``check_pending()`` so a misspelt hook
implementation fails loudly.

Most code never names a host: :func:`load_stack` and the module-level functions here use the
*current* one -- the host a :class:`~rewardplug.stack.Stack` was loaded with while that stack
builds and scores (a context variable, so threads and tasks the stack starts see it too), else
the process's default host. Two stacks with different plugin sets can live in one process::

    host = rewardplug.Host(plugins=[my_plugin], entry_points=False)
    stack = rewardplug.load_stack("stack.yaml", host=host)
"""

from __future__ import annotations

import contextlib
import contextvars
import importlib
import os
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from importlib import metadata
from typing import Any

import pluggy

from rewardplug import hookspecs
from rewardplug.hookspecs import PROJECT_NAME
from rewardplug.registry import (
    PluginInfo,
    Registry,
    UnknownNameError,
    describe_error,
    import_object,
)

__all__ = [
    "CORE_PLUGINS",
    "Host",
    "PluginInfo",
    "Registry",
    "UnknownNameError",
    "add_plugin_commands",
    "combiners",
    "criteria",
    "current_host",
    "default_host",
    "get_plugin_manager",
    "import_object",
    "plugin_report",
    "reset",
    "sources",
    "transforms",
    "use_host",
]

#: plugin name -> module of the plugins that ship with the core (no entry point needed)
CORE_PLUGINS = {"python": "rewardplug.sources.plugin", "rules": "rewardplug.builtin_rules"}
DISABLE_ENV = "REWARDPLUG_DISABLE_PLUGINS"


@dataclass
class _State:
    pm: pluggy.PluginManager
    infos: dict[str, PluginInfo]


class Host:
    """A plugin host: one pluggy manager and the registries its plugins fill, built on first use.

    :param plugins: more plugins (modules or objects with ``@hookimpl`` functions), as a list or
        as ``{name: plugin}``; they load after the core plugins and before the entry points.
    :param entry_points: load the plugins installed as ``rewardplug`` entry points.
    :param disable: plugin names to block (default: ``$REWARDPLUG_DISABLE_PLUGINS``, read when
        the host is built).
    """

    def __init__(
        self,
        plugins: Iterable[Any] | Mapping[str, Any] = (),
        *,
        entry_points: bool = True,
        disable: Iterable[str] | None = None,
    ):
        if isinstance(plugins, Mapping):
            self._extra = list(plugins.items())
        else:
            self._extra = [(_plugin_name(p), p) for p in plugins]
        self._entry_points = entry_points
        self._disable = None if disable is None else set(disable)
        self._state: _State | None = None
        self._registries: dict[str, Registry] = {}
        self._lock = threading.RLock()

    def __repr__(self) -> str:
        names = [name for name, _ in self._extra]
        return f"Host(plugins={names!r}, entry_points={self._entry_points})"

    # -- building --------------------------------------------------------------------------

    def _built(self) -> _State:
        with self._lock:
            if self._state is None:
                self._state = self._build()
            return self._state

    def _build(self) -> _State:
        pm = pluggy.PluginManager(PROJECT_NAME)
        pm.add_hookspecs(hookspecs)
        infos: dict[str, PluginInfo] = {}
        disabled = _disabled() if self._disable is None else self._disable
        version = _version("rewardplug")
        for name, module_name in CORE_PLUGINS.items():
            if name in disabled:
                pm.set_blocked(name)
                continue
            info = infos[name] = PluginInfo(name, module_name, version, "rewardplug")
            try:
                pm.register(importlib.import_module(module_name), name=name)
            except Exception as exc:
                info.error = describe_error(exc)
        for name, plugin in self._extra:
            if name in disabled:
                pm.set_blocked(name)
                continue
            module = getattr(plugin, "__name__", None)
            info = infos[name] = PluginInfo(name, module if isinstance(module, str) else None)
            try:
                pm.register(plugin, name=name)
            except Exception as exc:
                info.error = describe_error(exc)
        if self._entry_points:
            self._load_entry_points(pm, infos, disabled)
        _check_pending(pm, infos)
        return _State(pm, infos)

    @staticmethod
    def _load_entry_points(
        pm: pluggy.PluginManager, infos: dict[str, PluginInfo], disabled: set[str]
    ) -> None:
        seen: set[str] = set()
        for ep in metadata.entry_points(group=PROJECT_NAME):
            if ep.name in seen:  # the same distribution visible twice on sys.path
                continue
            seen.add(ep.name)
            if ep.name in disabled:
                pm.set_blocked(ep.name)
                continue
            dist = getattr(ep, "dist", None)
            info = infos[ep.name] = PluginInfo(
                ep.name,
                ep.value,
                dist.version if dist else None,
                dist.metadata["Name"] if dist else None,
            )
            try:
                pm.register(ep.load(), name=ep.name)
            except Exception as exc:
                info.error = describe_error(exc)

    def _registry(self, hook: str) -> Registry:
        state = self._built()
        with self._lock:
            registry = self._registries.get(hook)
            if registry is None:
                registry = self._registries[hook] = _new_registry(hook)
                registry.collect(state.pm, state.infos)
            return registry

    # -- what plugins registered -----------------------------------------------------------

    @property
    def plugin_manager(self) -> pluggy.PluginManager:
        """The pluggy manager (built on first use)."""
        return self._built().pm

    @property
    def infos(self) -> dict[str, PluginInfo]:
        """What each plugin loaded (or the error it failed with), by plugin name."""
        return self._built().infos

    def sources(self) -> Registry:
        """Reward sources (``name -> RewardSource subclass``)."""
        return self._registry("register_sources")

    def criteria(self) -> Registry:
        """Rubric criterion kinds (``kind -> Criterion subclass``)."""
        return self._registry("register_criteria")

    def transforms(self) -> Registry:
        """Score transforms (``kind -> Rule``: function and config model)."""
        return self._registry("register_transforms")

    def combiners(self) -> Registry:
        """Combine rules (``name -> Rule``: function and config model)."""
        return self._registry("register_combiners")

    def report(self) -> list[dict[str, Any]]:
        """One dict per plugin: name, version, registered sources, criteria, transforms and
        combine rules, load error, and per source the modules it may import that are not
        installed (with the pip command).

        Sources registered by import path are imported here (this is the diagnostic command),
        so a broken source module shows as its plugin's error instead of only when a stack
        uses it.
        """
        from rewardplug.extras import describe_missing, missing_modules
        from rewardplug.source import RewardSource

        registry = self.sources()
        self.criteria()
        self.transforms()
        self.combiners()
        infos = self.infos
        for name in registry.names():
            info = infos.setdefault(registry.owner[name], PluginInfo(registry.owner[name]))
            try:
                cls = registry.get(name)
            except LookupError as exc:
                info.error = "; ".join(filter(None, (info.error, str(exc))))
                continue
            missing = missing_modules(getattr(cls, "requires", {}))
            if missing:
                narrowed = getattr(cls, "requirements", None) is not RewardSource.requirements
                what = f"{name} (depending on its settings)" if narrowed else name
                info.missing[name] = describe_missing(what, missing)
        return [info.as_dict() for info in sorted(infos.values(), key=lambda i: i.name)]

    def add_commands(self, cli: Any) -> None:
        """Call every plugin's ``register_commands(cli)``; a failing plugin is recorded."""
        state = self._built()
        for impl in state.pm.hook.register_commands.get_hookimpls():
            try:
                impl.function(cli=cli)
            except Exception as exc:
                info = state.infos.setdefault(impl.plugin_name, PluginInfo(impl.plugin_name))
                info.error = describe_error(exc)


def _new_registry(hook: str) -> Registry:
    if hook == "register_sources":
        return Registry("source", hook, "sources")
    if hook == "register_criteria":
        return Registry("criterion kind", hook, "criteria")
    from rewardplug.rules import CombineConfig, TransformConfig, rule_maker

    if hook == "register_transforms":
        return Registry("transform", hook, "transforms", rule_maker(TransformConfig, "transform"))
    make = rule_maker(CombineConfig, "combine rule")
    return Registry("combine rule", hook, "combiners", make)


def _plugin_name(plugin: Any) -> str:
    name = getattr(plugin, "__name__", None)
    return name if isinstance(name, str) else f"{type(plugin).__name__}-{id(plugin):x}"


def _disabled() -> set[str]:
    return {name.strip() for name in os.environ.get(DISABLE_ENV, "").split(",") if name.strip()}


def _check_pending(pm: pluggy.PluginManager, infos: dict[str, PluginInfo]) -> None:
    """``check_pending()``, but a plugin with an unknown hook is unregistered and reported
    (a typo in one plugin must not take the whole host down)."""
    while True:
        try:
            pm.check_pending()
            return
        except pluggy.PluginValidationError as exc:
            name = pm.get_name(exc.plugin)
            pm.unregister(exc.plugin)
            info = infos.setdefault(str(name), PluginInfo(str(name)))
            info.error = f"{exc} (is the hook name misspelt? see docs/plugin-hooks.md)"


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


# -- the default and the current host ----------------------------------------------------------

_lock = threading.Lock()
_default: Host | None = None
_current: contextvars.ContextVar[Host | None] = contextvars.ContextVar(
    "rewardplug_host", default=None
)


def default_host() -> Host:
    """The process's default host (core plugins + entry points), made on first use."""
    global _default
    with _lock:
        if _default is None:
            _default = Host()
        return _default


def current_host() -> Host:
    """The host of the stack being built or scored here, else the default host."""
    return _current.get() or default_host()


@contextlib.contextmanager
def use_host(host: Host) -> Iterator[Host]:
    """Make ``host`` the current host in this context (and in threads/tasks started from it)."""
    token = _current.set(host)
    try:
        yield host
    finally:
        _current.reset(token)


def reset() -> None:
    """Forget the default host; the next use builds a new one (after installing a plugin)."""
    global _default
    with _lock:
        _default = None


def _state() -> _State:
    """The current host's built state (for diagnostics and tests)."""
    return current_host()._built()


def get_plugin_manager() -> pluggy.PluginManager:
    """The current host's plugin manager (the default host's: core plugins + entry points)."""
    return current_host().plugin_manager


def sources() -> Registry:
    """The current host's registry of reward sources (``name -> RewardSource subclass``)."""
    return current_host().sources()


def criteria() -> Registry:
    """The current host's registry of rubric criterion kinds (``kind -> Criterion subclass``)."""
    return current_host().criteria()


def transforms() -> Registry:
    """The current host's registry of score transforms (``kind -> Rule``)."""
    return current_host().transforms()


def combiners() -> Registry:
    """The current host's registry of combine rules (``name -> Rule``)."""
    return current_host().combiners()


def plugin_report() -> list[dict[str, Any]]:
    """The current host's :meth:`Host.report`."""
    return current_host().report()


def add_plugin_commands(cli: Any) -> None:
    """Call every plugin's ``register_commands(cli)``; a failing plugin is recorded, not fatal."""
    current_host().add_commands(cli)
