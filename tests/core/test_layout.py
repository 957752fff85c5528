"""The layout rules of issue 29 (item 6) for rewardplug/ and plugins/: no import circles, no
module over 400 lines, a docstring on every module.

How an import counts (read from the source with ``ast``; nothing is imported):

* **An edge** is an import statement at module level: including inside module-level
  ``if``/``try``/``with`` blocks and class bodies, and under ``if TYPE_CHECKING:`` (it never
  runs, but it says the module's interface depends on the other; a circle through it is a design
  circle, and one edit away from a runtime one). An import inside a function is not an edge: it
  runs on the first call, after both modules are loaded, and it is how the package keeps
  ``import rewardplug`` light. A module-level circle is what makes import order matter (a
  half-initialised module, an ImportError that depends on which module was imported first); it
  fails :func:`test_no_import_cycle_at_module_level`.
* ``from pkg import name`` is an edge to ``pkg.name`` when that is a module, else to ``pkg``;
  the parent packages Python initialises on the way are not edges (else every package whose
  ``__init__`` re-exports a submodule would be a circle with it).
* **Two modules that import each other in any scope** (functions and ``TYPE_CHECKING`` included)
  are the two-file circles issue 29 listed (``pairwise``/``source``, ``blocks``/``discretizer``,
  ...): one of them holds what belongs to the other. :func:`test_no_two_modules_import_each_other`
  fails on a new one; :data:`MUTUAL_ALLOWED` names the few left, each with why.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MAX_LINES = 400

#: modules allowed past MAX_LINES, relative to the repository root, with why: none today. The
#: sandbox's worker, which must ship as one `python -c` program, is kept in parts that
#: sandbox.worker_source() joins (test_the_sandbox_worker_ships_every_part_as_one_program).
LONG_ALLOWED: dict[str, str] = {}

#: pairs of modules that may still import each other inside a function or for type checking
MUTUAL_ALLOWED = {
    # the loader's warm-up (compiled_loader.warm(), run in a background process) calls
    # discretize(); the discretizer asks the loader for its kernels
    frozenset({"rewardplug.discretizer", "rewardplug.compiled_loader"}),
}


def _modules() -> dict[str, Path]:
    """Dotted module name -> file, for the core package and every built-in plugin package."""
    roots = [(ROOT / "rewardplug", ROOT)]
    roots += [(p, ROOT / "plugins") for p in sorted((ROOT / "plugins").glob("rewardplug_*"))]
    found = {}
    for package, base in roots:
        for path in sorted(package.rglob("*.py")):
            parts = list(path.relative_to(base).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


MODULES = _modules()


def _imports(body: list[ast.stmt], everywhere: bool) -> Iterator[ast.Import | ast.ImportFrom]:
    """The import statements of ``body`` at module level (``everywhere``: in functions too)."""
    for node in body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            if everywhere:
                yield from _imports(node.body, everywhere)
        else:  # if/try/with/for/while/match blocks (TYPE_CHECKING's too) and class bodies
            for field in ("body", "orelse", "finalbody"):
                block = getattr(node, field, None)
                if isinstance(block, list):
                    yield from _imports(block, everywhere)
            for part in [*getattr(node, "handlers", []), *getattr(node, "cases", [])]:
                yield from _imports(part.body, everywhere)


def _graph(everywhere: bool) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for name, path in MODULES.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets: set[str] = set()
        for node in _imports(ast.parse(path.read_text()).body, everywhere):
            if isinstance(node, ast.Import):
                named = [alias.name for alias in node.names]
            else:
                base = node.module or ""
                if node.level:
                    parts = package.split(".")
                    parts = parts[: len(parts) - node.level + 1]
                    base = ".".join([*parts, *([node.module] if node.module else [])])
                named = [
                    f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base
                    for a in node.names
                ]
            targets.update(t for t in named if t in MODULES and t != name)
        graph[name] = targets
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_checker_sees_the_packages_and_their_imports():
    # a checker that found nothing would pass everything: it must see known modules and edges
    graph = _graph(everywhere=False)
    assert {"rewardplug", "rewardplug.stack", "rewardplug_code.sandbox"} <= set(graph)
    assert "rewardplug.config" in graph["rewardplug.stack"]
    assert "rewardplug_code.seccomp" in graph["rewardplug_code.sandbox"]
    assert "rewardplug.stack" in graph["rewardplug.groups"]  # under `if TYPE_CHECKING:`
    # stack imports the TRL adapter only inside as_trl_reward (a contract name), and the adapter
    # types the stack structurally: an edge one way, and only in any scope
    assert "rewardplug.integrations.trl" not in graph["rewardplug.stack"]
    assert "rewardplug.integrations.trl" in _graph(everywhere=True)["rewardplug.stack"]
    assert "rewardplug.stack" not in _graph(everywhere=True)["rewardplug.integrations.trl"]
    # and it finds a circle where there is one
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycle_at_module_level():
    cycles = _cycles(_graph(everywhere=False))
    assert not cycles, (
        f"module-level import circles: {cycles}. Move what both need into the module that owns "
        "it (or a new one both import), keeping the old import path as a re-export"
    )


def test_no_two_modules_import_each_other():
    graph = _graph(everywhere=True)
    mutual = {frozenset({a, b}) for a, targets in graph.items() for b in targets if a in graph[b]}
    new = sorted(sorted(pair) for pair in mutual - MUTUAL_ALLOWED)
    assert not new, (
        f"modules that import each other (inside functions or for type checking included): "
        f"{new}. Move the shared piece to the module that owns it"
    )
    stale = sorted(sorted(pair) for pair in MUTUAL_ALLOWED - mutual)
    assert not stale, f"MUTUAL_ALLOWED lists pairs that no longer import each other: {stale}"


def test_no_module_over_the_line_limit():
    lengths = {
        str(path.relative_to(ROOT)): len(path.read_text().splitlines()) for path in MODULES.values()
    }
    long = {p: n for p, n in sorted(lengths.items()) if n > MAX_LINES and p not in LONG_ALLOWED}
    assert not long, (
        f"modules over {MAX_LINES} lines: {long}; split each into modules with one purpose "
        "(re-export the moved public names from the old module)"
    )
    stale = sorted(p for p in LONG_ALLOWED if lengths.get(p, 0) <= MAX_LINES)
    assert not stale, f"LONG_ALLOWED lists modules no longer over {MAX_LINES} lines: {stale}"


def test_every_module_says_what_it_is_for():
    missing = sorted(
        str(path.relative_to(ROOT))
        for path in MODULES.values()
        if path.read_text().strip() and not ast.get_docstring(ast.parse(path.read_text()))
    )
    assert not missing, f"modules without a docstring: {missing}"


def test_the_sandbox_worker_ships_every_part_as_one_program():
    # the worker runs as one `python -c` source in a jail that sees no project file: every part
    # must be joined, and none of the imports between the parts may survive the joining
    from rewardplug_code import sandbox

    parts = {p.name for p in (ROOT / "plugins/rewardplug_code").glob("zygote*.py")}
    assert parts == set(sandbox.WORKER_PARTS)
    assert sandbox.WORKER_PARTS[-1] == "zygote.py"  # the part that runs main()
    program = ast.parse(sandbox.worker_source())
    left = [n.module for n in ast.walk(program) if isinstance(n, ast.ImportFrom) and n.module]
    assert not [m for m in left if m.startswith("rewardplug")], left
    defined = {n.name for n in program.body if isinstance(n, ast.FunctionDef)}
    assert {"main", "harden", "child_call", "new_job_namespace", "read_msg"} <= defined
