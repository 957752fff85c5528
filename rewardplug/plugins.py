"""The pluggy host: builds the plugin manager lazily and keeps the registries plugins fill
(sources, rubric criterion kinds, transforms, combine rules).

Nothing here runs at import time. The first call to :func:`get_plugin_manager` registers the core
plugins, loads every ``rewardplug`` entry point one by one (so a broken plugin is recorded with its
error while the others still load), honours ``REWARDPLUG_DISABLE_PLUGINS=a,b`` and calls
``check_pending()`` so a misspelt hook implementation fails loudly.
"""

from __future__ import annotations

import difflib
import importlib
import os
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import pluggy

from rewardplug import hookspecs
from rewardplug.hookspecs import PROJECT_NAME

__all__ = [
    "CORE_PLUGINS",
    "PluginInfo",
    "Registry",
    "UnknownNameError",
    "add_plugin_commands",
    "combiners",
    "criteria",
    "get_plugin_manager",
    "import_object",
    "plugin_report",
    "reset",
    "sources",
    "transforms",
]

#: modules of the core distribution registered as plugins (like pytest's default plugins)
#: plugin name -> module of the plugins that ship with the core (no entry point needed)
CORE_PLUGINS = {"python": "rewardplug.sources.plugin", "rules": "rewardplug.builtin_rules"}
DISABLE_ENV = "REWARDPLUG_DISABLE_PLUGINS"


class UnknownNameError(LookupError):
    """A stack or rubric named a source, criterion kind, transform or combine rule that no
    plugin registered."""


@dataclass
class PluginInfo:
    """What ``rewardplug plugins`` reports about one plugin."""

    name: str
    module: str | None = None
    version: str | None = None
    distribution: str | None = None
    sources: list[str] = field(default_factory=list)
    criteria: list[str] = field(default_factory=list)
    transforms: list[str] = field(default_factory=list)
    combiners: list[str] = field(default_factory=list)
    error: str | None = None
    #: source name -> the modules it may need that are not installed, with the pip command
    missing: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "module": self.module,
            "version": self.version,
            "distribution": self.distribution,
            "sources": sorted(self.sources),
            "criteria": sorted(self.criteria),
            "transforms": sorted(self.transforms),
            "combiners": sorted(self.combiners),
            "error": self.error,
            "missing": dict(sorted(self.missing.items())),
        }


class Registry:
    """Names registered through one hook (``register_sources``, ``register_criteria``,
    ``register_transforms`` or ``register_combiners``).

    ``attr`` names the :class:`PluginInfo` list that records each plugin's names; ``make`` turns
    the arguments of a ``register(name, ...)`` call after the name into the stored entry (and
    raises when a plugin registers something unusable).
    """

    def __init__(
        self,
        what: str,
        hook: str,
        attr: str,
        make: Callable[..., Any] | None = None,
    ):
        self.what = what
        self.hook = hook
        self.attr = attr
        self.make: Callable[..., Any] = make or (lambda obj: obj)
        self.entries: dict[str, Any] = {}
        self.owner: dict[str, str] = {}

    def collect(self, pm: pluggy.PluginManager, infos: dict[str, PluginInfo]) -> None:
        """Call the hook once per plugin so each registration is attributed to its plugin."""
        for impl in getattr(pm.hook, self.hook).get_hookimpls():
            plugin = impl.plugin_name
            info = infos.setdefault(plugin, PluginInfo(name=plugin))

            def register(
                name: str, *args: Any, _plugin: str = plugin, _info: PluginInfo = info
            ) -> None:
                if not isinstance(name, str) or not name:
                    raise ValueError(f"{self.what} names must be non-empty strings, got {name!r}")
                if name in self.entries:
                    raise ValueError(
                        f"{self.what} {name!r} is already registered by plugin "
                        f"{self.owner[name]!r}; choose another name"
                    )
                self.entries[name] = self.make(*args)
                self.owner[name] = _plugin
                getattr(_info, self.attr).append(name)

            try:
                impl.function(register=register)
            except Exception as exc:  # a broken plugin must not take the others down
                info.error = _describe(exc)

    def get(self, name: str) -> Any:
        """The object registered as ``name``, or an error that lists the known names.

        A plugin may register an import path (``"package.module:Class"``) instead of the class:
        it is imported here, on first use, so that loading a stack imports only the sources it
        uses.
        """
        try:
            entry = self.entries[name]
        except KeyError:
            known = ", ".join(sorted(self.entries)) or "(none)"
            close = difflib.get_close_matches(name, list(self.entries), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            broken = [i.name for i in _state().infos.values() if i.error]
            if broken:
                hint += (
                    f"; plugins that failed to load: {', '.join(broken)} (see `rewardplug plugins`)"
                )
            raise UnknownNameError(f"unknown {self.what} {name!r}; known: {known}{hint}") from None
        if isinstance(entry, str):
            try:
                entry = import_object(entry)
            except ValueError as exc:
                raise LookupError(
                    f"{self.what} {name!r} of plugin {self.owner[name]!r} cannot be loaded: {exc}"
                ) from None
            with _lock:
                self.entries[name] = entry
        return entry

    def names(self) -> list[str]:
        return sorted(self.entries)


@dataclass
class _State:
    pm: pluggy.PluginManager
    infos: dict[str, PluginInfo]
    sources: Registry | None = None
    criteria: Registry | None = None
    transforms: Registry | None = None
    combiners: Registry | None = None


_lock = threading.RLock()
_STATE: _State | None = None


def _describe(exc: BaseException) -> str:
    last = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
    where = f" (at {last[0].filename}:{last[0].lineno})" if last else ""
    return f"{type(exc).__name__}: {exc}{where}"


def _disabled() -> set[str]:
    return {name.strip() for name in os.environ.get(DISABLE_ENV, "").split(",") if name.strip()}


def _build() -> _State:
    pm = pluggy.PluginManager(PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    infos: dict[str, PluginInfo] = {}
    disabled = _disabled()
    version = _version("rewardplug")

    for name, module_name in CORE_PLUGINS.items():
        if name in disabled:
            pm.set_blocked(name)
            continue
        info = infos[name] = PluginInfo(name, module_name, version, "rewardplug")
        try:
            pm.register(importlib.import_module(module_name), name=name)
        except Exception as exc:
            info.error = _describe(exc)

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
            info.error = _describe(exc)
    _check_pending(pm, infos)
    return _State(pm, infos)


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


def _state() -> _State:
    global _STATE
    with _lock:
        if _STATE is None:
            _STATE = _build()
        return _STATE


def get_plugin_manager() -> pluggy.PluginManager:
    """The process-wide plugin manager, built on first use (core plugins + entry points)."""
    return _state().pm


def sources() -> Registry:
    """The registry of reward sources (``name -> RewardSource subclass``)."""
    state = _state()
    with _lock:
        if state.sources is None:
            state.sources = Registry("source", "register_sources", "sources")
            state.sources.collect(state.pm, state.infos)
        return state.sources


def criteria() -> Registry:
    """The registry of rubric criterion kinds (``kind -> Criterion subclass``)."""
    state = _state()
    with _lock:
        if state.criteria is None:
            state.criteria = Registry("criterion kind", "register_criteria", "criteria")
            state.criteria.collect(state.pm, state.infos)
        return state.criteria


def transforms() -> Registry:
    """The registry of score transforms (``kind -> Rule``: function and config model)."""
    from rewardplug.rules import TransformConfig, rule_maker

    state = _state()
    with _lock:
        if state.transforms is None:
            make = rule_maker(TransformConfig, "transform")
            state.transforms = Registry("transform", "register_transforms", "transforms", make)
            state.transforms.collect(state.pm, state.infos)
        return state.transforms


def combiners() -> Registry:
    """The registry of combine rules (``name -> Rule``: function and config model)."""
    from rewardplug.rules import CombineConfig, rule_maker

    state = _state()
    with _lock:
        if state.combiners is None:
            make = rule_maker(CombineConfig, "combine rule")
            state.combiners = Registry("combine rule", "register_combiners", "combiners", make)
            state.combiners.collect(state.pm, state.infos)
        return state.combiners


def reset() -> None:
    """Forget the plugin manager; the next use rebuilds it (after installing a plugin, in tests)."""
    global _STATE
    with _lock:
        _STATE = None


def plugin_report() -> list[dict[str, Any]]:
    """One dict per plugin: name, version, registered sources, criteria, transforms and combine
    rules, load error, and per source the modules it may import that are not installed (with
    the pip command).

    Sources registered by import path are imported here (this is the diagnostic command), so a
    broken source module shows as its plugin's error instead of only when a stack uses it.
    """
    from rewardplug.extras import describe_missing, missing_modules
    from rewardplug.source import RewardSource

    registry = sources()
    criteria()
    transforms()
    combiners()
    infos = _state().infos
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


def import_object(path: str) -> Any:
    """Import ``"package.module:attr.sub"``; errors say what was wrong with the path."""
    module_name, sep, attr = path.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"{path!r} is not an import path; write it as 'package.module:name'")
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"cannot import module {module_name!r} (from {path!r}): {exc}") from exc
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ValueError(
                f"module {module_name!r} has no attribute {attr!r} (from {path!r})"
            ) from None
    return obj


def add_plugin_commands(cli: Any) -> None:
    """Call every plugin's ``register_commands(cli)``; a failing plugin is recorded, not fatal."""
    state = _state()
    for impl in state.pm.hook.register_commands.get_hookimpls():
        try:
            impl.function(cli=cli)
        except Exception as exc:
            info = state.infos.setdefault(impl.plugin_name, PluginInfo(impl.plugin_name))
            info.error = _describe(exc)
