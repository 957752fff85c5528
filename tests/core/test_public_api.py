"""The public API boundary holds (issue 29): what the docs, the examples and the plugins use is
public, every public name resolves and has a docstring, and docs/api.md lists exactly them.

Public names are defined in tests/core/public_api.py: ``__all__`` of the top-level ``rewardplug``
and of its listed public modules. The built-in plugins are written like third-party ones, so
they too may import only public names; no module imports another module's underscored name.
"""

from __future__ import annotations

import ast
import difflib
import importlib
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import rewardplug
from rewardplug import plugin_api
from tests.core.public_api import (
    ALL_MODULES,
    PAGE,
    ROOT,
    needs_docstring,
    own_doc,
    public_names,
    render,
    resolve,
)

# where users and plugin authors learn what to import; benchmarks-history.md is a verbatim log
# of past rounds (it names modules as they were) and api.md is generated from the code
DOC_PAGES = sorted(
    {ROOT / "README.md", *ROOT.glob("docs/**/*.md"), *ROOT.glob("examples/**/*.md")}
    - {ROOT / "docs" / "benchmarks-history.md", PAGE}
)
PLUGIN_CODE = sorted([*ROOT.glob("plugins/**/*.py"), *ROOT.glob("examples/**/*.py")])
PACKAGE_CODE = sorted([*ROOT.glob("rewardplug/**/*.py"), *ROOT.glob("plugins/**/*.py")])
PYTHON_BLOCK = re.compile(r"```python\n(.*?)```", re.S)
DOTTED = re.compile(r"(?<![\w./-])rewardplug((?:\.\w+)+)(?::(\w+))?")
IMPORT_LINE = re.compile(r"\s*(from|import) [\w.]+( import [\w., ]+)?\s*(#.*)?$")
FILE_SUFFIXES = {"yaml", "yml", "json", "jsonl", "toml", "py", "md", "txt"}


def _public(module: str, name: str | None = None) -> bool:
    """Whether ``module`` is public (and ``name``, when given, a public name of it); a public
    module's name may also be imported from its package (``from rewardplug import plugin_api``)."""
    if module not in ALL_MODULES:
        return False
    return name is None or name in public_names(module) or f"{module}.{name}" in ALL_MODULES


def _imports(source: str) -> Iterator[tuple[int, str, str | None]]:
    """``(line, module, name)`` for every import of rewardplug in ``source`` (name None for
    ``import rewardplug.x``). A doc's block that elides code with ``...`` where Python does not
    allow it is read statement by statement: its import lines are still checked."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        lines = [line for line in source.splitlines() if IMPORT_LINE.match(line)]
        tree = ast.parse("\n".join(line.strip() for line in lines))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.split(".")[0] == "rewardplug":
                yield from ((node.lineno, node.module, alias.name) for alias in node.names)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "rewardplug" and alias.name != "rewardplug":
                    yield node.lineno, alias.name, None


def _where(path: Path) -> str:
    return str(path.relative_to(ROOT))


def test_docs_examples_and_plugins_import_only_public_names() -> None:
    found = []
    for path in PLUGIN_CODE:
        for line, module, name in _imports(path.read_text(encoding="utf-8")):
            found.append((f"{_where(path)}:{line}", module, name))
    for path in DOC_PAGES:
        for block in PYTHON_BLOCK.findall(path.read_text(encoding="utf-8")):
            for _, module, name in _imports(block):
                found.append((_where(path), module, name))
    assert len(found) > 50  # the plugins were read
    private = [f"{where}: {module} {name or ''}" for where, module, name in found]
    private = [p for p, (_, m, n) in zip(private, found, strict=True) if not _public(m, n)]
    assert not private, (
        "imports of names that are not public (use the top-level rewardplug, a module listed in "
        "tests/core/public_api.py, or add the name to one of their __all__ and to docs/api.md):"
        f"\n{chr(10).join(private)}"
    )


def _dotted_mentions(text: str) -> Iterator[str]:
    """Every ``rewardplug.x.y`` (or ``rewardplug.x:y``) a page names, file names left out."""
    for match in DOTTED.finditer(text):
        parts = match.group(1).lstrip(".").split(".")
        if parts[-1] in FILE_SUFFIXES:
            continue
        yield "rewardplug." + ".".join(parts) + (f":{match.group(2)}" if match.group(2) else "")


def _names_public_api(mention: str) -> bool:
    """Whether a dotted name is a public module (or a package of them), or a public name of the
    longest public module it starts with (attributes after that name are not checked)."""
    dotted, _, attr = mention.partition(":")
    if attr:
        return _public(dotted, attr)
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        module = ".".join(parts[:cut])
        if module in ALL_MODULES:
            return cut == len(parts) or _public(module, parts[cut])
    return False


def test_the_name_checks_tell_public_from_internal() -> None:
    assert _public("rewardplug", "load_stack") and _public("rewardplug.plugin_api", "Input")
    assert _public("rewardplug", "plugin_api")  # a public module, imported from its package
    assert not _public("rewardplug.types", "Sample") and not _public("rewardplug", "plugins")
    assert _names_public_api("rewardplug.integrations.verl.RewardManager")  # built on access
    assert _names_public_api("rewardplug.integrations.skyrl:RewardplugEnv")
    assert _names_public_api("rewardplug.Stack.score")
    assert not _names_public_api("rewardplug.groups.GroupAssembler")
    assert not _names_public_api("rewardplug.integrations.verl_loop")
    text = "see `rewardplug.yaml`, rewardplug/groups.py and rewardplug.metrics.evaluate(...)"
    assert list(_dotted_mentions(text)) == ["rewardplug.metrics.evaluate"]


def test_the_docs_name_only_public_modules_and_names() -> None:
    named = {
        (_where(page), mention)
        for page in DOC_PAGES
        for mention in _dotted_mentions(page.read_text(encoding="utf-8"))
    }
    assert ("README.md", "rewardplug.load_stack") in named  # the pages were read
    packages = {m.rsplit(".", 1)[0] for m in ALL_MODULES if "." in m}
    private = sorted(
        f"{page}: {mention}"
        for page, mention in named
        if mention not in packages and not _names_public_api(mention)
    )
    assert not private, "the docs name modules or names that are not public:\n" + "\n".join(private)


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _project_modules(tree: ast.AST) -> set[str]:
    """The local names a module binds to rewardplug's (or a plugin's) modules and names."""
    bound = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [(a.asname or a.name).split(".")[0] for a in node.names]
            bound |= {n for n, a in zip(names, node.names, strict=True) if _ours(a.name)}
        elif isinstance(node, ast.ImportFrom) and (node.level or _ours(node.module or "")):
            bound |= {alias.asname or alias.name for alias in node.names}
    return bound


def _ours(module: str) -> bool:
    return module.split(".")[0].startswith("rewardplug")


def _crossings(source: str) -> Iterator[str]:
    """``line: name`` for every underscored name ``source`` takes from another module: imported
    (``from m import _x``, or from a module ``_m``) or read off an imported name (``m._x``)."""
    tree = ast.parse(source)
    bound = _project_modules(tree)
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in bound
            and _private(node.attr)
        ):
            yield f"{node.lineno}: {node.value.id}.{node.attr}"
        if isinstance(node, ast.ImportFrom):
            module = "." * node.level + (node.module or "")
            if any(_private(p) for p in (node.module or "").split(".")):
                yield f"{node.lineno}: module {module}"
            for alias in node.names:
                if _private(alias.name):
                    yield f"{node.lineno}: {module}{'.' * bool(node.module)}{alias.name}"


def test_the_underscore_check_finds_each_way_of_crossing() -> None:
    source = (
        "from rewardplug.types import _digest\n"
        "from . import _shared\n"
        "from rewardplug_code._impl import run\n"
        "import rewardplug.types as t\n"
        "from rewardplug import combine\n"
        "t._content_text(combine._run, os._exit)\n"
    )
    assert [c.split(": ", 1)[1] for c in _crossings(source)] == [
        "rewardplug.types._digest",
        "._shared",
        "module rewardplug_code._impl",
        "t._content_text",
        "combine._run",
    ]


def test_no_module_imports_an_underscored_name_from_another() -> None:
    crossing = [
        f"{_where(path)}:{found}"
        for path in PACKAGE_CODE
        for found in _crossings(path.read_text(encoding="utf-8"))
    ]
    assert len(PACKAGE_CODE) > 100
    assert not crossing, (
        "underscored names imported from another module: give the helper a public name in the "
        "module that owns it (or move it)\n" + "\n".join(crossing)
    )


@pytest.mark.parametrize("module_name", ALL_MODULES)
def test_every_public_name_resolves_and_documents_itself(module_name: str) -> None:
    module = importlib.import_module(module_name)
    assert module.__doc__, f"{module_name} has no module docstring"
    assert len(set(module.__all__)) == len(module.__all__), f"{module_name}.__all__ repeats"
    undocumented = []
    for name in public_names(module_name):
        value = resolve(module_name, name)  # raises where __all__ names what is not there
        if value is not None and needs_docstring(value) and own_doc(value) is None:
            undocumented.append(name)
    assert not undocumented, f"public names of {module_name} without a docstring: {undocumented}"


def test_the_lazy_maps_are_the_public_names() -> None:
    """The top level and plugin_api resolve their names on first access: each name of
    ``__all__`` is in the map (or defined eagerly), and the map holds no name ``__all__`` lacks."""
    eager = {"__version__", "hookimpl"}
    assert set(rewardplug._LAZY) | eager == set(rewardplug.__all__)
    assert set(plugin_api._LAZY) == set(plugin_api.__all__)
    assert plugin_api.Input is importlib.import_module("rewardplug.inputs").Input
    assert rewardplug.warm_kernels is importlib.import_module("rewardplug.compiled_loader").warm


def test_the_package_docstring_names_the_public_modules() -> None:
    doc = rewardplug.__doc__ or ""
    missing = [m for m in ALL_MODULES[1:] if m.rsplit(".", 1)[-1] not in doc]
    assert not missing, f"rewardplug's docstring does not name the public modules {missing}"


def test_the_api_page_is_generated_from_the_code() -> None:
    page = PAGE.read_text(encoding="utf-8")
    expected = render()
    diff = "\n".join(
        difflib.unified_diff(page.splitlines(), expected.splitlines(), "docs/api.md", "code", n=0)
    )
    assert page == expected, (
        "docs/api.md is out of date; regenerate it with `.venv/bin/python -m "
        f"tests.core.public_api`:\n{diff[:3000]}"
    )


def test_the_docs_index_links_the_api_page() -> None:
    assert "(api.md)" in (ROOT / "docs" / "README.md").read_text(encoding="utf-8")


def test_importing_the_public_plugin_modules_stays_light() -> None:
    """``import rewardplug`` and the plugin-facing modules load no pydantic, numpy or pluggy
    registry work: names resolve when first used (the CLI's start-up depends on it)."""
    code = (
        "import sys, rewardplug, rewardplug.plugin_api, rewardplug.hookspecs\n"
        "print(sorted(m for m in ('pydantic', 'numpy', 'rewardplug.types', 'rewardplug.plugins')"
        " if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout
