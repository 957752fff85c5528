"""rewardplug's public surface, and docs/api.md rendered from its docstrings.

Public means: a name in ``__all__`` of the top-level ``rewardplug`` or of one of
:data:`PUBLIC_MODULES`. Every other module is internal, whatever its names look like: it may
change without notice. ``tests/core/test_public_api.py`` checks that the docs, the examples and
the plugins import only public names, and that docs/api.md is this module's rendering. After
changing a public name or the first paragraph of its docstring, regenerate the page::

    .venv/bin/python -m tests.core.public_api
"""

from __future__ import annotations

import ast
import importlib
import inspect
import textwrap
import types
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "api.md"

#: the public modules besides the top level, with what each is for (the page's order)
PUBLIC_MODULES = {
    "rewardplug.hookspecs": "the hooks a plugin implements, and the types of their arguments",
    "rewardplug.plugin_api": "the helpers a plugin uses beyond the top level",
    "rewardplug.server": "the reward server behind `rewardplug serve`, as an ASGI app",
    "rewardplug.ray_engine": "scoring a file on a Ray cluster (`rewardplug score --engine ray`)",
    "rewardplug.integrations.trl": "TRL's `reward_funcs`",
    "rewardplug.integrations.verl": "verl's reward loop and `compute_score`",
    "rewardplug.integrations.openrlhf": "OpenRLHF's remote reward protocol",
    "rewardplug.integrations.nemo_gym": "a NeMo Gym resources server",
    "rewardplug.integrations.nemo_rl": "a NeMo RL environment",
    "rewardplug.integrations.areal": "AReaL's reward function and workflow",
    "rewardplug.integrations.skyrl": "SkyRL's environment and generator",
    "rewardplug.integrations.slime": "slime's custom reward model functions",
    "rewardplug.integrations.verifiers": "a verifiers rubric",
}

#: every public module, the top level first
ALL_MODULES = ["rewardplug", *PUBLIC_MODULES]


def built_on_access(module: types.ModuleType) -> list[str]:
    """The names a module's ``__getattr__`` builds from a framework on first access (verl's
    ``RewardManager``, AReaL's ``RLVRWorkflow``...): public where the module is, though left out
    of ``__all__`` so that ``import *`` does not import the framework. They are not resolved
    here, so the checks and the page need no framework."""
    hook = vars(module).get("__getattr__")
    if hook is None:
        return []
    tree = ast.parse(textwrap.dedent(inspect.getsource(hook)))
    return sorted(
        {
            node.value
            for compare in ast.walk(tree)
            if isinstance(compare, ast.Compare)
            for node in ast.walk(compare)
            if isinstance(node, ast.Constant) and isinstance(node.value, str)
        }
    )


def public_names(module_name: str) -> list[str]:
    """A public module's public names: its ``__all__`` (which it must have) and the names its
    ``__getattr__`` builds on first access."""
    module = importlib.import_module(module_name)
    names = getattr(module, "__all__", None)
    assert names is not None, f"public module {module_name} has no __all__"
    return sorted({*names, *built_on_access(module)})


def resolve(module_name: str, name: str) -> Any:
    """The object a public name stands for (None for one built on first access)."""
    module = importlib.import_module(module_name)
    if name not in vars(module) and name in built_on_access(module):
        return None
    return getattr(module, name)


def needs_docstring(value: Any) -> bool:
    """Functions, classes and modules document themselves; constants and aliases are described
    by the module that defines them."""
    return inspect.isroutine(value) or inspect.isclass(value) or inspect.ismodule(value)


def own_doc(value: Any) -> str | None:
    """The docstring written for ``value`` itself (not one inherited from a base class)."""
    if inspect.isclass(value):
        doc = vars(value).get("__doc__")
        return doc if isinstance(doc, str) and doc.strip() else None
    doc = getattr(value, "__doc__", None)
    return doc if isinstance(doc, str) and doc.strip() else None


def summary(doc: str | None) -> str:
    """A docstring's first paragraph on one line."""
    if not doc:
        return ""
    first = inspect.cleandoc(doc).split("\n\n", 1)[0]
    return " ".join(first.split())


def _kind(value: Any) -> str:
    if value is None:
        return "class built on first access, from the framework"
    if inspect.isclass(value):
        return "class"
    if inspect.isroutine(value):
        return "function"
    if isinstance(value, str | int | float | bool | tuple | frozenset):
        return f"constant `{value!r}`" if len(repr(value)) <= 60 else "constant"
    return "type alias" if hasattr(value, "__origin__") else type(value).__name__


def _parameters(function: Any) -> str:
    """A function's parameters as written, without annotations (``help()`` shows the types)."""
    signature = inspect.signature(function)
    bare = [p.replace(annotation=inspect.Parameter.empty) for p in signature.parameters.values()]
    return str(signature.replace(parameters=bare, return_annotation=inspect.Signature.empty))


def _entry(module_name: str, name: str) -> str:
    value = resolve(module_name, name)
    line = f"- `{name}` ({_kind(value)})"
    if value is not None and inspect.isroutine(value):
        line = f"- `{name}{_parameters(value)}`"
    text = summary(own_doc(value)) if needs_docstring(value) else ""
    return f"{line} -- {text}" if text else line


def render() -> str:
    """docs/api.md, from the public modules' ``__all__`` and their docstrings."""
    lines = [
        "# API reference",
        "",
        "The public API is the top-level `rewardplug` namespace plus the modules listed below; each",
        "name is in its module's `__all__`. Everything else is internal and may change without",
        "notice. Plugin authors need `rewardplug`, `rewardplug.hookspecs` and",
        "`rewardplug.plugin_api` (see [plugin-hooks.md](plugin-hooks.md)); the other modules are",
        "front ends ([integrations.md](integrations.md)).",
        "",
        "This page is generated from the docstrings (`.venv/bin/python -m tests.core.public_api`);",
        "`tests/core/test_public_api.py` fails when it is out of date, when a public function or",
        "class has no docstring, or when the docs, examples or plugins import a name that is not",
        "public. Each entry is the first paragraph of its docstring; `help(rewardplug.Name)` has",
        "the rest.",
        "",
        "| module | for |",
        "| --- | --- |",
        "| `rewardplug` | stacks, the data model, the discretizer, metrics, plugin base classes |",
    ]
    lines += [f"| `{m}` | {what} |" for m, what in PUBLIC_MODULES.items()]
    for module_name in ALL_MODULES:
        module = importlib.import_module(module_name)
        lines += ["", f"## `{module_name}`", ""]
        if module.__doc__:
            lines += [summary(module.__doc__), ""]
        lines += [_entry(module_name, name) for name in public_names(module_name)]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    PAGE.write_text(render(), encoding="utf-8")
    print(f"wrote {PAGE.relative_to(ROOT)}")
