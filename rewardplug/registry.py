"""What a plugin host keeps per hook: the names plugins registered (:class:`Registry`) and what
``rewardplug plugins`` reports about each plugin (:class:`PluginInfo`)."""

from __future__ import annotations

import difflib
import importlib
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pluggy

__all__ = ["PluginInfo", "Registry", "UnknownNameError", "describe_error", "import_object"]


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
        #: every plugin's report, shared with the host (names a broken plugin in errors)
        self.infos: dict[str, PluginInfo] = {}
        self._lock = threading.RLock()

    def collect(self, pm: pluggy.PluginManager, infos: dict[str, PluginInfo]) -> None:
        """Call the hook once per plugin so each registration is attributed to its plugin."""
        self.infos = infos
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
                info.error = describe_error(exc)

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
            broken = [i.name for i in self.infos.values() if i.error]
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
            with self._lock:
                self.entries[name] = entry
        return entry

    def names(self) -> list[str]:
        return sorted(self.entries)


def describe_error(exc: BaseException) -> str:
    """``Type: message (at file:line)`` of a plugin's failure, for its report."""
    last = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
    where = f" (at {last[0].filename}:{last[0].lineno})" if last else ""
    return f"{type(exc).__name__}: {exc}{where}"


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
