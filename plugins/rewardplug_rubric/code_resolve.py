"""Name resolution for the ``code_hack`` visitor: what a reader can follow in the code.

Import aliases (``import os as o``), modules bound to names (``m = __import__('os'); q = m``),
``getattr(os, '_exit')``, ``operator.attrgetter('_exit')(os)``, ``(lambda: os)()``, namespace
lookups (``vars(__builtins__)['open']``, ``builtins.__dict__[...]``, ``globals()[...]``,
``sys.modules[...]``) and strings built at run time from constants
(:mod:`rewardplug_rubric.code_names`). A name built at run time is reported as it is resolved.
"""

from __future__ import annotations

import ast

from rewardplug_rubric.code_names import UNKNOWN, constants, fold

__all__ = ["GETTERS", "IMPORTERS", "NAMESPACES", "Resolver", "norm"]

IMPORTERS = {"__import__", "importlib.import_module", "importlib.__import__"}
GETTERS = {"operator.attrgetter", "operator.methodcaller"}
NAMESPACES = {"builtins", "__globals__"}  # what vars(), globals() and __builtins__ resolve to


def norm(name: str | None) -> str | None:
    """``builtins.open`` is ``open``: one name for every way of reaching a builtin."""
    if name and name.startswith("builtins."):
        return name[len("builtins.") :]
    return name


class Resolver:
    """Findings collected so far and the names known; the visitor builds on it."""

    def __init__(self, tree: ast.AST, depth: int = 0) -> None:
        self.found: list[tuple[str, int, str]] = []
        self.aliases: dict[str, str] = {}  # local name -> dotted module path
        self.modules: set[str] = set()  # top-level names of the imported modules
        self.env = constants(tree)
        self.depth = depth

    def add(self, family: str, node: ast.AST, what: str) -> None:
        self.found.append((family, getattr(node, "lineno", 0), what))

    # -- names ------------------------------------------------------------------------------

    def text(self, node: ast.AST, what: str) -> str | None:
        """The string ``node`` computes; a string built at run time is a finding itself."""
        value = fold(node, self.env)
        if not isinstance(value, str):
            return None
        if not isinstance(node, ast.Constant | ast.Name):
            self.add("dynamic_code", node, f"builds {what} {value[:40]!r} at run time")
        return value

    def dotted(self, node: ast.AST | None) -> str | None:
        """``os.path.join`` for an attribute chain, with every name a reader can follow resolved."""
        if isinstance(node, ast.Name):
            name = self.aliases.get(node.id, node.id)
            return "builtins" if name == "__builtins__" else name
        if isinstance(node, ast.Attribute):
            base = self.dotted(node.value)
            return f"{base}.{node.attr}" if base else None
        if isinstance(node, ast.Subscript):
            owner = self.dotted(node.value) or ""
            key = fold(node.slice, self.env)
            if not isinstance(key, str):
                return None
            if owner.endswith(".__dict__"):
                return f"{owner[: -len('.__dict__')]}.{key}"
            if owner == "builtins":
                return f"builtins.{key}"
            if owner == "__globals__":
                return self.dotted(ast.Name(key))
            if owner == "sys.modules":
                return key
            return None
        if isinstance(node, ast.Call):
            if isinstance(node.func, ast.Lambda) and not node.args:  # (lambda: os)()
                return self.dotted(node.func.body)
            getter = node.func  # operator.attrgetter('_exit')(os), methodcaller('system')(os)
            if isinstance(getter, ast.Call) and norm(self.dotted(getter.func)) in GETTERS:
                attr = fold(getter.args[0], self.env) if getter.args else UNKNOWN
                base = self.dotted(node.args[0]) if node.args else None
                return f"{base}.{attr}" if base and isinstance(attr, str) else None
            called = norm(self.dotted(node.func))
            if called in IMPORTERS and node.args:
                module = fold(node.args[0], self.env)
                return module if isinstance(module, str) else None
            if called == "getattr" and len(node.args) >= 2:
                base = self.dotted(node.args[0])
                attr = fold(node.args[1], self.env)
                return f"{base}.{attr}" if base and isinstance(attr, str) else None
            if called in ("vars", "globals", "locals"):
                if called == "vars" and node.args:
                    base = self.dotted(node.args[0])
                    return f"{base}.__dict__" if base else None
                return "__globals__"
        return None

    def is_module(self, node: ast.AST) -> bool:
        name = self.dotted(node)
        if name is None:
            return False
        root = name.split(".")[0]
        # a resolved call is __import__('m') / import_module('m') / getattr(m, 'x')
        return (
            root in self.modules
            or root in ("builtins", "__builtins__")
            or isinstance(node, ast.Call)
        )

    def _bind(self, local: str, value: ast.AST) -> None:
        """``m = __import__('os')``, ``q = m``, ``b = vars(__builtins__)``: follow the module."""
        if isinstance(value, ast.Constant):
            return
        name = self.dotted(value)
        if name is None:
            return
        root = name.split(".")[0]
        if root in self.modules or root in NAMESPACES or name.endswith(".__dict__"):
            self.aliases[local] = name
        elif isinstance(value, ast.Call) and norm(self.dotted(value.func)) in IMPORTERS:
            self.aliases[local] = name
            self.modules.add(root)
