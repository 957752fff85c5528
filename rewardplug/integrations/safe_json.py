"""JSON from untrusted clients: nesting depth, number size and value count bounded at parse time.

Python's ``json.loads`` accepts what a reward service must not: nesting deep enough to raise
``RecursionError`` (or, just under the limit, to reach code that recurses on it later), integers of
more digits than ``int`` converts to text (``ValueError``), ``NaN``/``Infinity`` and ``1e400``
(non-finite floats), and many millions of tiny values that take seconds to build and more to turn
into samples. :func:`loads` refuses all of them with an error that names the problem (a
:class:`JSONError`), before or while parsing, at a cost linear in the size of the text:

* the text is checked first by counting its brackets and commas and looking for a run of more
  digits than allowed (microseconds for an ordinary request). Only a text with more brackets or
  values than the limits allow is scanned in full, outside its strings -- a regular expression
  cuts the strings out of a text up to 256 KB, numpy finds them in 1 MB blocks in a larger one --
  about 10 ms per MB: 60 MB bodies are refused or parsed in 0.2 to 0.7 s here;
* ``json.loads`` then parses it, with hooks that refuse ``NaN``/``Infinity``, a float that is not
  finite (``1e400``) and, when the text has such a run of digits, a number with too many.

A :class:`JSONReader` keeps a running count of values over several texts (a request body and the
label strings inside it), so the labels cannot multiply the work the limit allows. The count is
an upper bound (commas plus brackets; a label string's commas may count twice).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

__all__ = ["JSONError", "JSONLimitError", "JSONLimits", "JSONReader", "MalformedJSON", "loads"]


class JSONError(ValueError):
    """Text refused by :func:`loads`; ``status`` is the HTTP status that fits (400, or 413 for too
    many values)."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


class MalformedJSON(JSONError):
    """Not JSON at all: a syntax error, or bytes that are not UTF-8."""


class JSONLimitError(JSONError):
    """JSON that breaks a :class:`JSONLimits` bound, or holds ``NaN``, ``Infinity`` or a number
    too large for a finite float."""


@dataclass(frozen=True)
class JSONLimits:
    """Bounds on one JSON text (and, for ``max_values``, on all texts one reader parses)."""

    #: arrays and objects nested in each other
    max_depth: int = 64
    #: digits in one number (Python converts at most 4,300 between int and text)
    max_number_digits: int = 1000
    #: values (array items, object members, containers) in all texts of one reader
    max_values: int = 2_000_000


DEFAULT_LIMITS = JSONLimits()

#: a JSON string (possessive: never backtracks); in valid JSON, left to right, exactly the strings
_STRING = re.compile(rb'"[^"\\]*+(?:\\.[^"\\]*+)*+"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
#: digits to "0", everything else to a space: a run of digits becomes a run of "0"
_DIGITS = bytes(48 if 48 <= b <= 57 else 32 for b in range(256))
#: texts up to this size are scanned with the regular expression, larger ones with numpy
_SMALL = 256 * 1024
_BLOCK = 1 << 20


def _no_constant(name: str) -> Any:
    raise JSONLimitError(f"{name} is not a JSON number; send a finite number or null")


class JSONReader:
    """Parses JSON texts within :class:`JSONLimits`, counting values over all of them."""

    def __init__(self, limits: JSONLimits = DEFAULT_LIMITS):
        self.limits = limits
        #: values counted so far (array items, object members and containers; an upper bound)
        self.values = 0
        self._long_run = b"0" * (limits.max_number_digits + 1)

    def loads(self, text: bytes | str) -> Any:
        """The value of ``text`` (UTF-8 bytes or str); raises :class:`JSONLimitError`."""
        if isinstance(text, str):
            data = text.encode("utf-8", "surrogatepass")
        else:
            data = bytes(text)
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise MalformedJSON(
                    f"the body is not UTF-8 ({exc.reason} at byte {exc.start}); send JSON as UTF-8"
                ) from None
        self._check_structure(data)
        # a run of more digits than allowed somewhere (maybe in a string): check every number
        long_runs = self._long_run in data.translate(_DIGITS)
        try:
            return json.loads(
                text,
                parse_float=self._float,
                parse_int=self._int if long_runs else None,
                parse_constant=_no_constant,
            )
        except JSONError:
            raise
        except json.JSONDecodeError as exc:
            raise MalformedJSON(f"malformed JSON: {exc}") from None
        except (RecursionError, ValueError) as exc:  # not reached within the limits: a backstop
            raise JSONLimitError(f"JSON past a limit: {type(exc).__name__}: {exc}") from None

    def _int(self, text: str) -> int:
        if len(text) > self.limits.max_number_digits + 1:  # a sign and the digits
            raise self._too_long()
        return int(text)

    def _float(self, text: str) -> float:
        # the length of the token bounds its digits (and keeps this hook cheap: one call a float)
        if len(text) > self.limits.max_number_digits:
            raise self._too_long()
        value = float(text)
        if not math.isfinite(value):
            raise JSONLimitError(
                f"the number {text[:40]} is too large for a finite float; send a finite number"
            )
        return value

    def _too_long(self) -> JSONLimitError:
        return JSONLimitError(
            f"a number of more than {self.limits.max_number_digits} digits; send such values as "
            "strings"
        )

    def _check_structure(self, data: bytes) -> None:
        """Count values and check the depth, outside strings; raise past a limit."""
        limits = self.limits
        openers = data.count(b"[") + data.count(b"{")
        values = openers + data.count(b",")
        if openers > limits.max_depth or self.values + values > limits.max_values:
            # brackets and commas inside strings do not count: look outside the strings only
            scan = _scan_small if len(data) <= _SMALL else _scan_large
            values, depth_over = scan(data, limits.max_depth)
            if self.values + values > limits.max_values:
                raise JSONLimitError(
                    f"more than {limits.max_values} JSON values (array items and object "
                    "members) in one request; send fewer samples per request",
                    413,
                )
            if depth_over:
                raise JSONLimitError(
                    f"arrays and objects nested more than {limits.max_depth} deep; no reward "
                    "request needs that"
                )
        self.values += values


def _step_table() -> Any:
    import numpy as np

    step = np.zeros(256, dtype=np.int8)
    step[list(b"[{")] = 1
    step[list(b"]}")] = -1
    return step


def _scan_small(data: bytes, max_depth: int) -> tuple[int, bool]:
    """Values, and whether the nesting is deeper than ``max_depth``: strings cut out first."""
    skeleton = _STRING.sub(b'""', data)
    openers = skeleton.count(b"[") + skeleton.count(b"{")
    values = openers + skeleton.count(b",")
    if openers <= max_depth:
        return values, False
    import numpy as np

    brackets = np.frombuffer(skeleton.translate(None, _NOT_BRACKETS), np.uint8)
    return values, int(np.cumsum(_step_table()[brackets], dtype=np.int64).max()) > max_depth


def _scan_large(data: bytes, max_depth: int, block_size: int = _BLOCK) -> tuple[int, bool]:
    """:func:`_scan_small` in numpy blocks: escaped backslashes and quotes blanked, then a
    position is inside a string when an odd number of quotes precede it."""
    import numpy as np

    clean = data.replace(b"\\\\", b"  ").replace(b'\\"', b"  ")
    codes = np.frombuffer(clean, np.uint8)
    step = _step_table()
    counts = np.zeros(256, dtype=bool)
    counts[list(b"[{,")] = True
    values = depth = parity = 0
    for start in range(0, len(codes), block_size):
        block = codes[start : start + block_size]
        outside = ((np.cumsum(block == 34, dtype=np.int64) + parity) & 1) == 0
        parity = 0 if outside[-1] else 1
        values += int(np.count_nonzero(counts[block] & outside))
        running = np.cumsum(step[block] * outside, dtype=np.int64)
        if depth + int(running.max()) > max_depth:
            return values, True
        depth += int(running[-1])
    return values, False


def loads(text: bytes | str, limits: JSONLimits = DEFAULT_LIMITS) -> Any:
    """``json.loads`` within ``limits`` (see the module docstring); raises
    :class:`JSONLimitError`."""
    return JSONReader(limits).loads(text)
