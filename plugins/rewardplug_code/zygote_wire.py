"""The sandbox worker's constants, libc handle and message framing (length-prefixed JSON between
the scorer and the zygote, frames between a child and its supervisor).

Part of the worker program (:mod:`rewardplug_code.zygote`): ``sandbox.worker_source()`` joins
the parts into the one ``python -c`` source that runs in the sandbox, which sees no project file
and cannot import a sibling module; the imports between parts are there for linters and type
checkers and are dropped when the parts are joined. Stdlib only; never imported by the scorer.
"""

import ctypes
import json
import os
import struct

PRELOAD = [
    "math",
    "re",
    "collections",
    "itertools",
    "functools",
    "heapq",
    "bisect",
    "string",
    "typing",
    "random",
    "fractions",
    "decimal",
    "statistics",
    "hashlib",
    "operator",
    "copy",
    "array",
    "datetime",
    "io",
]

libc = ctypes.CDLL(None, use_errno=True)
libc.prctl.argtypes = [
    ctypes.c_int,
    ctypes.c_ulong,
    ctypes.c_ulong,
    ctypes.c_ulong,
    ctypes.c_ulong,
]
PR_SET_DUMPABLE = 4
PR_SET_NO_NEW_PRIVS = 38
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2
MAX_ERROR = 300
BIG = 10**4000
BIGINT = "__bigint__"
EXIT_EOF = 3
TOTAL_RESULT_BYTES = 64 * 2**20
TUPLE = "__tuple__"


class SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


# ---------------------------------------------------------------- framing


def read_msg(fd, sizes=None):
    """One length-prefixed JSON message (None at EOF); its size is appended to ``sizes``."""
    head = read_exact(fd, 4)
    if head is None:
        return None
    size = struct.unpack(">I", head)[0]
    if sizes is not None:
        sizes.append(size)
    return json.loads(read_exact(fd, size))


def read_exact(fd, n):
    chunks, got = [], 0
    while got < n:
        data = os.read(fd, n - got)
        if not data:
            return None
        chunks.append(data)
        got += len(data)
    return b"".join(chunks)


def write_all(fd, data):
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def send_msg(fd, obj):
    body = json.dumps(obj).encode()
    write_all(fd, struct.pack(">I", len(body)))
    write_all(fd, body)  # not joined to the head: a large reply is not copied once more


def frame(marker, payload):
    body = marker + payload
    return struct.pack(">I", len(body)) + body
