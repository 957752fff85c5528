"""The test formats of ``Sample.tests`` (contract) and their normalized plan.

* ``call``: ``{"kind": "call", "entry_point": "f", "cases": [{"args": [...], "kwargs": {},
  "expected": <JSON>}], "atol": 0.0}``
* ``stdio``: ``{"kind": "stdio", "cases": [{"stdin": "...", "stdout": "..."}]}``
* ``assert``: ``{"kind": "assert", "entry_point": "f", "code": "def check(candidate): ..."}``.
  Top-level ``assert candidate(<literals>) == <literal>`` (either side), ``assert
  abs(candidate(...) - v) < tol`` (or ``<=``), ``assert candidate(...)``, ``assert not
  candidate(...)`` become cases the parent compares. The rest of ``check`` (loops, computed
  arguments, helpers) is kept as one *hardened* case: the test code runs in a trusted checker
  process and every ``candidate(...)`` call is answered by the candidate in another process,
  as plain data. Names the test code uses without defining them (HumanEval/32's ``poly``) come
  from the sample's prompt, which is trusted like the tests: :func:`prompt_definitions`.

This module never executes test code: it parses it with :mod:`ast` and reads literals with
:func:`ast.literal_eval`.
"""

from __future__ import annotations

import ast
import math
from dataclasses import dataclass, field
from typing import Any

from rewardplug_code.protocol import to_plain

__all__ = ["TESTS_KEYS", "Case", "Plan", "TestsError", "parse_tests", "prompt_definitions"]

MAX_CASES = 10_000
#: the keys a ``tests`` mapping may have (any other is a mistake: a misspelt key is reported)
TESTS_KEYS = frozenset({"kind", "entry_point", "cases", "atol", "code"})


class TestsError(ValueError):
    """``Sample.tests`` is missing or malformed (the sample abstains with this message)."""


@dataclass
class Case:
    """One case the parent decides: compare the candidate's value with ``expected``."""

    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    expected: Any = None
    compare: str = "eq"  # eq | tol | truthy | falsy | stdout | true
    tol: float = 0.0
    inclusive: bool = False
    stdin: str = ""


@dataclass
class Plan:
    """How to run a sample's tests: the cases, and an optional hardened ``check`` remainder."""

    kind: str
    entry_point: str = ""
    cases: list[Case] = field(default_factory=list)
    atol: float = 0.0
    check_code: str | None = None
    unconverted: int = 0
    #: results keep tuples apart from lists (assert-style tests compare Python values)
    tuples: bool = False
    #: names the hardened check uses but does not define (helpers a prompt may define)
    needs: frozenset[str] = frozenset()

    @property
    def total(self) -> int:
        return len(self.cases) + (1 if self.check_code else 0)


def parse_tests(tests: Any) -> Plan:
    """Validate ``tests`` and build the plan; raises :class:`TestsError` with the reason."""
    if tests is None:
        raise TestsError("the sample has no `tests`")
    if not isinstance(tests, dict):
        raise TestsError(f"`tests` must be a mapping, got {type(tests).__name__}")
    kind = tests.get("kind")
    parser = {"call": _call, "stdio": _stdio, "assert": _assert}.get(kind)  # type: ignore[arg-type]
    if parser is None:
        raise TestsError(f"`tests.kind` must be 'call', 'stdio' or 'assert', got {kind!r}")
    plan = parser(tests)
    if len(plan.cases) > MAX_CASES:
        raise TestsError(f"{len(plan.cases)} cases is over the limit of {MAX_CASES}")
    return plan


def _entry_point(tests: dict[str, Any]) -> str:
    name = tests.get("entry_point")
    if not isinstance(name, str) or not name.isidentifier():
        raise TestsError(f"`tests.entry_point` must be a function name, got {name!r}")
    return name


def _cases(tests: dict[str, Any]) -> list[Any]:
    cases = tests.get("cases")
    if not isinstance(cases, list):
        raise TestsError("`tests.cases` must be a list")
    for i, case in enumerate(cases):
        if not isinstance(case, dict):
            raise TestsError(f"`tests.cases[{i}]` must be a mapping")
    return cases


def _call(tests: dict[str, Any]) -> Plan:
    atol = tests.get("atol", 0.0)
    if type(atol) not in (int, float) or not math.isfinite(atol) or atol < 0:
        raise TestsError(f"`tests.atol` must be a finite number >= 0, got {atol!r}")
    plan = Plan("call", _entry_point(tests), atol=float(atol))
    for i, case in enumerate(_cases(tests)):
        args, kwargs = case.get("args", []), case.get("kwargs", {})
        if not isinstance(args, list | tuple) or not isinstance(kwargs, dict):
            raise TestsError(f"`tests.cases[{i}]`: args must be a list and kwargs a mapping")
        if "expected" not in case:
            raise TestsError(f"`tests.cases[{i}]` has no `expected` value")
        try:
            expected = to_plain(case["expected"])
        except TypeError as exc:
            raise TestsError(f"`tests.cases[{i}].expected`: {exc}") from None
        plan.cases.append(Case(tuple(args), dict(kwargs), expected))
    return plan


def _stdio(tests: dict[str, Any]) -> Plan:
    plan = Plan("stdio")
    for i, case in enumerate(_cases(tests)):
        stdin, stdout = case.get("stdin", ""), case.get("stdout")
        if not isinstance(stdin, str) or not isinstance(stdout, str):
            raise TestsError(f"`tests.cases[{i}]`: stdin and stdout must be strings")
        plan.cases.append(Case(expected=stdout, compare="stdout", stdin=stdin))
    return plan


def _assert(tests: dict[str, Any]) -> Plan:
    entry = _entry_point(tests)
    code = tests.get("code")
    if not isinstance(code, str):
        raise TestsError("`tests.code` must hold the test code (a `check(candidate)` function)")
    try:
        module = ast.parse(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        raise TestsError(f"`tests.code` does not parse: {exc}") from None
    check = next(
        (n for n in module.body if isinstance(n, ast.FunctionDef) and n.name == "check"), None
    )
    if check is None or not check.args.args:
        raise TestsError("`tests.code` must define `check(candidate)`")
    name = check.args.args[0].arg
    plan = Plan("assert", entry, tuples=True)
    remainder: list[ast.stmt] = []
    for stmt in check.body:
        case = _convert(stmt, name) if isinstance(stmt, ast.Assert) else None
        if case is not None:
            plan.cases.append(case)
        elif not _inert(stmt):
            remainder.append(stmt)
    if any(isinstance(n, ast.Assert | ast.Raise) for s in remainder for n in ast.walk(s)):
        plan.unconverted = sum(isinstance(n, ast.Assert) for s in remainder for n in ast.walk(s))
        check.body = remainder
        plan.check_code = ast.unparse(module)
        plan.needs = frozenset(_loaded(module) - _bound(module.body))
    return plan


def _loaded(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}


def _bound(body: list[ast.stmt]) -> set[str]:
    """Names a module's top-level statements bind (definitions, imports, assignments)."""
    names: set[str] = set()
    for stmt in body:
        if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(stmt.name)
        elif isinstance(stmt, ast.Import | ast.ImportFrom):
            names.update((a.asname or a.name).split(".")[0] for a in stmt.names)
        elif isinstance(stmt, ast.Assign | ast.AnnAssign | ast.AugAssign):
            targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
            names.update(n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name))
    return names


def prompt_definitions(prompt: object, needs: frozenset[str], entry_point: str) -> list[str]:
    """The top-level statements of ``prompt`` (when it is Python source) that define what the
    test code ``needs``, with what those use in turn, in the prompt's order; one source text
    each. The entry point's own stub is left out (the checker binds that name to the candidate);
    a prompt that is not Python (prose, chat messages) defines nothing."""
    if not needs or not isinstance(prompt, str):
        return []
    try:
        module = ast.parse(prompt)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return []
    kinds: tuple[type[ast.stmt], ...] = (
        ast.FunctionDef,
        ast.AsyncFunctionDef,
        ast.ClassDef,
        ast.Import,
        ast.ImportFrom,
    )
    kinds += (ast.Assign, ast.AnnAssign)
    defs = [(s, _bound([s]) - {entry_point}) for s in module.body if isinstance(s, kinds)]
    wanted, chosen = set(needs), set()
    grew = True
    while grew:
        grew = False
        for i, (stmt, binds) in enumerate(defs):
            if i not in chosen and binds & wanted:
                chosen.add(i)
                wanted |= _loaded(stmt)
                grew = True
    return [ast.unparse(defs[i][0]) for i in sorted(chosen)]


def _inert(stmt: ast.stmt) -> bool:
    """Docstrings, ``pass`` and always-true literal asserts (``assert True, "..."``)."""
    if isinstance(stmt, ast.Pass):
        return True
    if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
        return True
    if isinstance(stmt, ast.Assert) and isinstance(stmt.test, ast.Constant):
        return bool(stmt.test.value)
    return False


_NO = object()


def _literal(node: ast.expr) -> Any:
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return _NO


def _call_args(node: ast.expr, name: str) -> tuple[tuple[Any, ...], dict[str, Any]] | None:
    """Literal arguments of ``name(...)``, or None when ``node`` is not such a call."""
    if not (
        isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == name
    ):
        return None
    args = [_literal(a) for a in node.args]
    if any(a is _NO for a in args):
        return None
    if any(k.arg is None for k in node.keywords):
        return None
    kwargs = {k.arg: _literal(k.value) for k in node.keywords}
    if any(v is _NO for v in kwargs.values()):
        return None
    return tuple(args), kwargs  # type: ignore[return-value]


def _expected(node: ast.expr) -> Any:
    value = _literal(node)
    if value is _NO:
        return _NO
    try:
        return to_plain(value, tuples=True)
    except TypeError:
        return _NO


def _convert(stmt: ast.Assert, name: str) -> Case | None:
    test = stmt.test
    if (call := _call_args(test, name)) is not None:
        return Case(*call, compare="truthy")
    if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
        if (call := _call_args(test.operand, name)) is not None:
            return Case(*call, compare="falsy")
        return None
    if not (isinstance(test, ast.Compare) and len(test.ops) == 1):
        return None
    op, left, right = test.ops[0], test.left, test.comparators[0]
    if isinstance(op, ast.Eq | ast.Is):
        for call_node, value_node in ((left, right), (right, left)):
            call = _call_args(call_node, name)
            if call is not None and (expected := _expected(value_node)) is not _NO:
                if isinstance(op, ast.Is) and not any(expected is c for c in (True, False, None)):
                    return None
                return Case(*call, expected=expected)
        return None
    if isinstance(op, ast.Lt | ast.LtE):
        tol = _literal(right)
        if type(tol) not in (int, float) or not _is_abs(left):
            return None
        diff = left.args[0]  # type: ignore[attr-defined]
        if not (isinstance(diff, ast.BinOp) and isinstance(diff.op, ast.Sub)):
            return None
        for call_node, value_node in ((diff.left, diff.right), (diff.right, diff.left)):
            call = _call_args(call_node, name)
            value = _literal(value_node)
            if call is not None and type(value) in (int, float):
                return Case(
                    *call,
                    expected=value,
                    compare="tol",
                    tol=float(tol),
                    inclusive=isinstance(op, ast.LtE),
                )
    return None


def _is_abs(node: ast.expr) -> bool:
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in ("abs",)
        and len(node.args) == 1
        and not node.keywords
    )
