"""What crosses the sandbox boundary, and the trusted comparison of what comes back.

Parent -> child: case arguments, pickled (the child unpickles data from the trusted parent).
Child -> parent: one JSON payload per case, ``{"value": ...}`` or ``{"error": "..."}``. The parent
decodes it with :func:`json.loads`, so whatever the child did, the parent only ever holds plain
``None``/``bool``/``int``/``float``/``str``/``list``/``dict`` values: no object of the
candidate's (and no ``__eq__`` of its choosing) reaches the comparison. :func:`equal` then compares
with exact type rules: ``True`` is not ``1``, NaN equals nothing.
"""

from __future__ import annotations

import base64
import json
import math
import pickle
from typing import Any

__all__ = [
    "Decoded",
    "decode",
    "encode_args",
    "equal",
    "loads",
    "safe_text",
    "stdout_equal",
    "test_code_failure",
    "to_plain",
]

_MISSING = object()
BIGINT = "__bigint__"
#: how a tuple travels when tuples are kept apart from lists (assert-style tests)
TUPLE = "__tuple__"


class Decoded:
    """One case's decoded result: ``value`` (plain data) or ``error`` (why there is none)."""

    __slots__ = ("error", "value")

    def __init__(self, value: Any = _MISSING, error: str | None = None):
        self.value = value
        self.error = error

    @property
    def ok(self) -> bool:
        return self.error is None and self.value is not _MISSING


def encode_args(args: list[Any] | tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    """Arguments for one case, as the child expects them (base64 pickle of plain data)."""
    return base64.b64encode(pickle.dumps((tuple(args), dict(kwargs)), protocol=4)).decode()


def decode(raw: Any) -> Decoded:
    """Strictly decode one payload relayed by the worker; anything malformed is an error."""
    if raw is None:
        return Decoded(error="no result")
    if not isinstance(raw, str):
        return Decoded(error="malformed result")
    try:
        obj = json.loads(raw, object_hook=_bigint_hook)
    except (ValueError, RecursionError):
        return Decoded(error="malformed result")
    if type(obj) is not dict or len(obj) != 1:
        return Decoded(error="malformed result")
    if "error" in obj:
        err = obj["error"]
        return Decoded(error=safe_text(err) if type(err) is str else "malformed error")
    if "value" in obj:
        return Decoded(value=obj["value"])
    return Decoded(error="malformed result")


def test_code_failure(raw: Any) -> str | None:
    """Why a hardened check's *test code* failed by itself, and what to set so it does not (from
    ``{"tests_error": "..."}``, sent only by the trusted checker), else None. Never read from a
    reply of a process that runs candidate code."""
    if not isinstance(raw, str) or not raw.startswith('{"tests_error"'):
        return None
    try:
        obj = json.loads(raw)
    except ValueError:
        return None
    if type(obj) is dict and len(obj) == 1 and type(obj.get("tests_error")) is str:
        return _fix_hint(safe_text(obj["tests_error"]))
    return None


def _fix_hint(error: str) -> str:
    """The abstention's reason: what failed, and what to set so that it does not."""
    head = f"the test code failed by itself ({error}), so the candidate gets no verdict: "
    if error.startswith(("NameError", "UnboundLocalError")):
        return head + (
            "define what it needs in `tests.code`, or give the sample the plain-text `prompt` "
            "that defines it (the prompt's definitions the tests use are run before them)"
        )
    if error.startswith(("ModuleNotFoundError", "ImportError")):
        return head + (
            "the sandbox has only the standard library; `tests.code` must not import other packages"
        )
    return head + "fix `tests.code` (it raised before it called the candidate)"


def _bigint_hook(obj: dict[str, Any]) -> Any:
    """Huge ints travel as ``{"__bigint__": "0x..."}`` (decimal parsing of them is quadratic)."""
    if len(obj) == 1 and type(obj.get(BIGINT)) is str:
        text = obj[BIGINT]
        if len(text) <= 2 * 2**20:
            try:
                return int(text, 16)
            except ValueError:
                pass
    return obj


def safe_text(text: Any, limit: int = 300) -> str:
    """Text from the sandbox made safe to store and print: at most ``limit`` characters, lone
    surrogates (valid in a JSON escape, not in UTF-8) shown as escapes such as ``\\ud800``."""
    cut = str(text)[:limit]
    return cut.encode("utf-8", "backslashreplace").decode("utf-8")


def loads(text: str) -> Any:
    """``json.loads`` that understands the big-int encoding."""
    return json.loads(text, object_hook=_bigint_hook)


def to_plain(value: Any, tuples: bool = False) -> Any:
    """A trusted literal (e.g. from a test's ``assert``) in the JSON form results arrive in.

    Tuples become lists (as on the wire), or with ``tuples`` ``{"__tuple__": [...]}`` -- how the
    worker sends tuples for assert-style tests, where ``(1, 2) != [1, 2]`` as in Python; anything
    else that is not JSON data raises TypeError.
    """
    t = type(value)
    if value is None or t in (bool, int, float, str):
        return value
    if t is tuple and tuples:
        return {TUPLE: [to_plain(v, tuples) for v in value]}
    if t in (list, tuple):
        return [to_plain(v, tuples) for v in value]
    if t is dict and all(type(k) is str for k in value):
        return {k: to_plain(v, tuples) for k, v in value.items()}
    raise TypeError(f"{t.__name__} values cannot be compared as plain data")


def equal(actual: Any, expected: Any, atol: float = 0.0) -> bool:
    """Strict structural equality of two plain values.

    bools only equal bools; ints and floats compare numerically (within ``atol`` when it is > 0);
    NaN never equals anything; lists and dicts compare element-wise with the same rules.
    """
    ta, te = type(actual), type(expected)
    if ta is bool or te is bool:
        return ta is te and actual is expected
    if ta in (int, float) and te in (int, float):
        if (ta is float and math.isnan(actual)) or (te is float and math.isnan(expected)):
            return False
        if atol > 0 and (ta is float or te is float):
            try:
                close: bool = abs(actual - expected) <= atol or actual == expected
                return close
            except OverflowError:  # an int beyond float range: never within atol of a float
                return False
        same: bool = actual == expected
        return same
    if ta is not te:
        return False
    if ta is str or actual is None:
        same_text: bool = actual == expected
        return same_text
    if ta is list:
        return len(actual) == len(expected) and all(
            equal(a, e, atol) for a, e in zip(actual, expected, strict=True)
        )
    if ta is dict:
        return actual.keys() == expected.keys() and all(
            equal(actual[k], expected[k], atol) for k in expected
        )
    return False


def within(actual: Any, expected: Any, tol: float, inclusive: bool) -> bool:
    """``abs(actual - expected) < tol`` (or ``<=``) for plain non-bool numbers."""
    if type(actual) not in (int, float) or type(expected) not in (int, float):
        return False
    try:
        diff = abs(actual - expected)
    except OverflowError:  # an int beyond float range against a float
        return False
    if math.isnan(diff):
        return False
    inside: bool = diff <= tol if inclusive else diff < tol
    return inside


def stdout_equal(actual: str, expected: str) -> bool:
    """Program output matches: same number of lines, each equal after trimming trailing spaces."""
    a = [line.rstrip() for line in actual.splitlines()]
    e = [line.rstrip() for line in expected.splitlines()]
    return a == e
