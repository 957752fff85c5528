"""Building a stack's sources from its declarations: resolve each ``use:`` through the current
plugin host, validate its ``with:``, and check the modules it needs -- every problem named with
its key path and YAML line, all of them in one pass."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from rewardplug import plugins
from rewardplug.config import describe_errors, line_of
from rewardplug.extras import describe_missing, import_hint, missing_modules
from rewardplug.source import RewardSource

__all__ = ["build_source", "resolve_source", "source_problems"]


def resolve_source(use: str) -> type[RewardSource]:
    """The source class for ``use:``: a registered name or an import path ``pkg.mod:Class``."""
    if ":" in use:
        obj = plugins.import_object(use)
        if not (isinstance(obj, type) and issubclass(obj, RewardSource)):
            raise ValueError(f"{use!r} is not a RewardSource subclass")
        return obj
    registered: type[RewardSource] = plugins.sources().get(use)
    return registered


def source_problems(data: Mapping[str, Any], node: Any) -> list[str]:
    """Problems in the sources' ``use:``/``with:``, checked on their own (the stack as a whole
    did not validate, so this is the only chance to report them in the same pass)."""
    problems: list[str] = []
    sources = data.get("sources")
    if not isinstance(sources, list):
        return problems
    for i, spec in enumerate(sources):
        if isinstance(spec, Mapping) and isinstance(spec.get("use"), str):
            options = spec.get("with", {})
            if isinstance(options, Mapping):
                problems += build_source(i, spec["use"], dict(options), node)[1]
    return problems


def build_source(
    i: int, use: str, options: dict[str, Any], node: Any
) -> tuple[RewardSource | None, list[str]]:
    """The source ``sources[i]`` declares, or the problems that prevent it (path and line):
    an unknown ``use:``, invalid ``with:`` settings, or modules it needs that are not installed
    (named with the pip command that installs them)."""
    line = line_of(node, ("sources", i, "use"))
    at = f"sources[{i}].use{f' (line {line})' if line else ''}"
    try:
        cls = resolve_source(use)
    except (LookupError, ValueError) as exc:
        return None, [f"{at}: {exc}"]
    # modules every configuration needs, reported even when `with:` is invalid as well (a
    # source that narrows them to its configuration is checked once that is known)
    fixed = cls.requirements is RewardSource.requirements
    missing = missing_modules(cls.requires) if fixed else {}
    problems = [f"{at}: {describe_missing(use, missing)}"] if missing else []
    try:
        source = cls(cls.Config.model_validate(options))
    except ValidationError as exc:
        return None, problems + describe_errors(exc, cls.Config, ("sources", i, "with"), node)
    except ImportError as exc:  # a load-time check imported a module that is not there
        if getattr(exc, "name", None) not in missing:
            problems.append(f"sources[{i}].with: {import_hint(exc) or exc}")
        return None, problems
    except (ValueError, OSError, RuntimeError) as exc:  # a source's own load-time check
        return None, [*problems, f"sources[{i}].with: {exc}"]
    if not fixed:
        missing = missing_modules(source.requirements())
        problems += [f"{at}: {describe_missing(use, missing)}"] if missing else []
    if problems:
        source.close()
        return None, problems
    return source, []
