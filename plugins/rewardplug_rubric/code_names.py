"""Values a static reader can compute: strings and numbers built at run time from constants.

Used by the ``code_hack`` check (issue 26) to see through names built at run time:
``'op' + 'en'``, ``'/pr' + 'oc/self/mem'``, ``''.join(['sub', 'process'])``, ``chr(111) + chr(115)``,
``')0(tixe_.so'[::-1]``, ``f"{'_'}exit"``, ``bytes.fromhex('5f65786974').decode()``,
``base64.b64decode('...')``, ``'%s' % x`` and names bound once to any of these. Nothing is
executed: :func:`fold` interprets a small, bounded subset of expressions and returns
:data:`UNKNOWN` for everything else (or for values that would grow too large).
"""

from __future__ import annotations

import ast
import base64
import binascii
import codecs
from collections.abc import Callable
from typing import Any

__all__ = ["UNKNOWN", "constants", "fold", "is_literal"]

UNKNOWN: Any = object()
_MAX_TEXT = 100_000  # longer strings are not built (a size check needs the count, not the text)
_MAX_BITS = 4_096
_COMPARE: dict[type[ast.cmpop], Callable[[Any, Any], Any]] = {
    ast.Eq: lambda a, b: a == b, ast.NotEq: lambda a, b: a != b, ast.Lt: lambda a, b: a < b,
    ast.LtE: lambda a, b: a <= b, ast.Gt: lambda a, b: a > b, ast.GtE: lambda a, b: a >= b,
    ast.Is: lambda a, b: a is b, ast.IsNot: lambda a, b: a is not b,
}  # fmt: skip
_STR_METHODS = {
    "replace",
    "format",
    "lower",
    "upper",
    "strip",
    "lstrip",
    "rstrip",
    "title",
}  # larger integers are not computed (``10 ** 10 ** 10`` must not hang)


def is_literal(node: ast.AST) -> bool:
    """A plain literal: nothing about it is built at run time."""
    return isinstance(node, ast.Constant)


def constants(tree: ast.AST) -> dict[str, Any]:
    """Names bound exactly once in ``tree`` (any scope) to a value :func:`fold` can compute."""
    bound: dict[str, list[ast.AST]] = {}
    for node in ast.walk(tree):
        targets: list[ast.expr] = []
        value: ast.expr | None = None
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
        elif isinstance(node, ast.AugAssign | ast.For | ast.comprehension | ast.NamedExpr):
            targets, value = [node.target], None
        for target in targets:
            for part in ast.walk(target):
                if isinstance(part, ast.Name):
                    simple = isinstance(target, ast.Name) and value is not None
                    bound.setdefault(part.id, []).append(
                        value if simple and value is not None else ast.Pass()
                    )
    env: dict[str, Any] = {}
    for _ in range(4):  # names built from other names: a few rounds settle them
        for name, values in bound.items():
            if len(values) == 1 and name not in env and not isinstance(values[0], ast.Pass):
                folded = fold(values[0], env)
                if folded is not UNKNOWN:
                    env[name] = folded
    return env


def fold(node: ast.AST | None, env: dict[str, Any] | None = None) -> Any:
    """The value of ``node`` when it can be computed from constants, else :data:`UNKNOWN`."""
    try:
        value = _fold(node, env or {})
    except (ValueError, TypeError, ArithmeticError, IndexError, KeyError, RecursionError):
        return UNKNOWN
    except (binascii.Error, UnicodeError, LookupError):
        return UNKNOWN
    if isinstance(value, str | bytes) and len(value) > _MAX_TEXT:
        return UNKNOWN
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > _MAX_BITS:
        return UNKNOWN
    return value


def _fold(node: ast.AST | None, env: dict[str, Any]) -> Any:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        return env.get(node.id, UNKNOWN)
    if isinstance(node, ast.Tuple | ast.List):
        items = [fold(e, env) for e in node.elts]
        return UNKNOWN if any(i is UNKNOWN for i in items) else tuple(items)
    if isinstance(node, ast.JoinedStr):
        parts = []
        for v in node.values:
            part = fold(v.value, env) if isinstance(v, ast.FormattedValue) else fold(v, env)
            if part is UNKNOWN:
                return UNKNOWN
            parts.append(str(part))
        return "".join(parts)
    if isinstance(node, ast.BinOp):
        return _binop(node, env)
    if isinstance(node, ast.UnaryOp):
        value = fold(node.operand, env)
        if value is UNKNOWN:
            return UNKNOWN
        if isinstance(node.op, ast.Not):
            return not value
        return (
            -value if isinstance(node.op, ast.USub) and isinstance(value, int | float) else UNKNOWN
        )
    if isinstance(node, ast.Compare) and len(node.ops) == 1:
        left, right = fold(node.left, env), fold(node.comparators[0], env)
        compare = _COMPARE.get(type(node.ops[0]))
        if left is UNKNOWN or right is UNKNOWN or compare is None:
            return UNKNOWN
        return compare(left, right)
    if isinstance(node, ast.BoolOp):
        values = [fold(v, env) for v in node.values]
        if any(v is UNKNOWN for v in values):
            return UNKNOWN
        return all(values) if isinstance(node.op, ast.And) else any(values)
    if isinstance(node, ast.Subscript):
        base, index = fold(node.value, env), _index(node.slice, env)
        if base is UNKNOWN or index is UNKNOWN or not isinstance(base, str | bytes | tuple):
            return UNKNOWN
        return base[index]
    if isinstance(node, ast.Call):
        return _call(node, env)
    return UNKNOWN


def _binop(node: ast.BinOp, env: dict[str, Any]) -> Any:
    left, right = fold(node.left, env), fold(node.right, env)
    if left is UNKNOWN or right is UNKNOWN:
        return UNKNOWN
    op = node.op
    if isinstance(op, ast.Add) and type(left) is type(right):
        return left + right
    if isinstance(op, ast.Mod) and isinstance(left, str):
        return left % right
    numbers = all(isinstance(v, int) and not isinstance(v, bool) for v in (left, right))
    if isinstance(op, ast.Mult):
        if numbers:
            return left * right
        text, count = (left, right) if isinstance(right, int) else (right, left)
        if isinstance(text, str | bytes | tuple) and isinstance(count, int):
            return text * count if len(text) * max(count, 0) <= _MAX_TEXT else UNKNOWN
        return UNKNOWN
    if not numbers:
        return UNKNOWN
    if isinstance(op, ast.Pow):
        if right < 0 or left.bit_length() * right > _MAX_BITS:
            return UNKNOWN
        return left**right
    ops = {ast.Sub: int.__sub__, ast.LShift: int.__lshift__, ast.FloorDiv: int.__floordiv__}
    if isinstance(op, ast.LShift) and right > _MAX_BITS:
        return UNKNOWN
    fn = ops.get(type(op))
    return fn(left, right) if fn else UNKNOWN


def _index(node: ast.AST, env: dict[str, Any]) -> Any:
    if isinstance(node, ast.Slice):
        parts = [None if p is None else fold(p, env) for p in (node.lower, node.upper, node.step)]
        return UNKNOWN if any(p is UNKNOWN for p in parts) else slice(*parts)
    return fold(node, env)


def _call(node: ast.Call, env: dict[str, Any]) -> Any:
    func = node.func
    args = [fold(a, env) for a in node.args]
    if node.keywords or any(a is UNKNOWN for a in args):
        return _join(node, env)
    if isinstance(func, ast.Name):
        if func.id == "chr" and len(args) == 1:
            return chr(args[0])
        if func.id == "str" and len(args) == 1 and isinstance(args[0], str | int | float):
            return str(args[0])
        if func.id in ("bytes", "bytearray") and len(args) == 1 and isinstance(args[0], tuple):
            return bytes(args[0])
        if func.id == "reversed" and len(args) == 1 and isinstance(args[0], str | tuple):
            return tuple(reversed(args[0]))
        return UNKNOWN
    if not isinstance(func, ast.Attribute):
        return UNKNOWN
    owner = func.value
    if isinstance(owner, ast.Name) and owner.id in ("base64", "codecs", "bytes", "binascii"):
        return _decode(f"{owner.id}.{func.attr}", args)
    base = fold(owner, env)
    if base is UNKNOWN:
        return UNKNOWN
    if func.attr == "join" and isinstance(base, str) and len(args) == 1:
        items = args[0]
        return (
            base.join(items)
            if isinstance(items, tuple) and all(isinstance(i, str) for i in items)
            else UNKNOWN
        )
    if func.attr in ("decode", "encode") and isinstance(base, bytes | str):
        return getattr(base, func.attr)(*[a for a in args if isinstance(a, str)][:1])
    plain = all(isinstance(a, str | int) for a in args)
    if func.attr in _STR_METHODS and isinstance(base, str) and plain:
        return getattr(base, func.attr)(*args)
    return UNKNOWN


def _join(node: ast.Call, env: dict[str, Any]) -> Any:
    """``sep.join(<generator or comprehension over constants>)``, e.g. ``''.join(chr(c) for c in ...)``."""
    func = node.func
    if not (isinstance(func, ast.Attribute) and func.attr == "join" and len(node.args) == 1):
        return UNKNOWN
    sep, gen = fold(func.value, env), node.args[0]
    if not isinstance(sep, str) or not isinstance(gen, ast.GeneratorExp | ast.ListComp):
        return UNKNOWN
    if len(gen.generators) != 1 or gen.generators[0].ifs:
        return UNKNOWN
    comp = gen.generators[0]
    items = fold(comp.iter, env)
    if not isinstance(comp.target, ast.Name) or not isinstance(items, tuple | str):
        return UNKNOWN
    out = []
    for item in items[:_MAX_TEXT]:
        value = fold(gen.elt, {**env, comp.target.id: item})
        if not isinstance(value, str):
            return UNKNOWN
        out.append(value)
    return sep.join(out)


def _decode(name: str, args: list[Any]) -> Any:
    if name in ("base64.b64decode", "base64.standard_b64decode") and args:
        return base64.b64decode(args[0])
    if name == "base64.b32decode" and args:
        return base64.b32decode(args[0])
    if name in ("base64.b16decode", "binascii.unhexlify", "binascii.a2b_hex") and args:
        return bytes.fromhex(args[0] if isinstance(args[0], str) else args[0].decode())
    if name == "base64.a85decode" and args:
        return base64.a85decode(args[0])
    if name == "bytes.fromhex" and args:
        return bytes.fromhex(args[0])
    if name == "codecs.decode" and len(args) == 2 and isinstance(args[0], str):
        return codecs.decode(args[0], args[1])
    return UNKNOWN
