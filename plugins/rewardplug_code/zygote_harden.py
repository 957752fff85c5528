# ruff: noqa: UP031  (sandbox-side code: plain stdlib idioms, no contextlib)
"""Hardening, in the sandbox worker's child before it runs candidate code: Landlock, capabilities,
rlimits, no-new-privs and the seccomp filter, and closing every inherited fd but the kept ones.

Part of the worker program (see :mod:`rewardplug_code.zygote_wire` for how the parts are joined).
"""

import ctypes
import os
import resource
import signal
import struct

from rewardplug_code.zygote_wire import (
    PR_SET_NO_NEW_PRIVS,
    PR_SET_SECCOMP,
    SECCOMP_MODE_FILTER,
    SockFprog,
    libc,
)

# ---------------------------------------------------------------- hardening (in the child)


def landlock(paths):
    """Restrict file access to reading (and executing) below ``paths`` (Linux Landlock).

    Used by the fallback level, where the real file system is visible: test data, the project and
    ``/proc/<pid>/environ`` of other processes become unreadable.
    """
    syscall = libc.syscall
    abi = syscall(
        444, None, 0, 1
    )  # landlock_create_ruleset(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION)
    if abi < 1:
        raise OSError(ctypes.get_errno(), "Landlock is not available")
    handled = (1 << 13) - 1  # every ABI 1 file-system right
    if abi >= 2:
        handled |= 1 << 13  # REFER
    if abi >= 3:
        handled |= 1 << 14  # TRUNCATE
    attr = struct.pack("=Q", handled)
    ruleset = syscall(444, ctypes.c_char_p(attr), len(attr), 0)
    if ruleset < 0:
        raise OSError(ctypes.get_errno(), "landlock_create_ruleset failed")
    read_only = (1 << 0) | (1 << 2) | (1 << 3)  # EXECUTE | READ_FILE | READ_DIR
    for path in paths:
        try:
            fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
        except OSError:
            continue
        rule = struct.pack("=Qi", read_only, fd)
        if syscall(445, ruleset, 1, ctypes.c_char_p(rule), 0) != 0:
            raise OSError(ctypes.get_errno(), "landlock_add_rule failed for %s" % path)
        os.close(fd)
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "PR_SET_NO_NEW_PRIVS failed")
    if syscall(446, ruleset, 0) != 0:
        raise OSError(ctypes.get_errno(), "landlock_restrict_self failed")
    os.close(ruleset)


def drop_capabilities():
    """Empty every capability set (matters in the fallback when the scorer runs as root)."""
    header = struct.pack("=Ii", 0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, this process
    data = bytes(24)  # two {effective, permitted, inheritable} triples, all zero
    if libc.capset(ctypes.c_char_p(header), ctypes.c_char_p(data)) != 0:
        raise OSError(ctypes.get_errno(), "capset failed")


def harden(limits, bpf):
    """Apply rlimits, Landlock (when asked) and the seccomp filter (irreversible)."""
    mem = limits["memory_bytes"]
    for name, value in (
        ("RLIMIT_AS", mem),
        ("RLIMIT_DATA", mem),
        ("RLIMIT_CPU", limits["cpu_seconds"]),
        ("RLIMIT_FSIZE", limits["file_bytes"]),
        ("RLIMIT_NOFILE", limits["open_files"]),
        ("RLIMIT_CORE", 0),
        ("RLIMIT_NPROC", limits["processes"]),
    ):
        res = getattr(resource, name)
        hard = resource.getrlimit(res)[1]
        if hard != resource.RLIM_INFINITY:
            value = min(value, hard)  # a limit can always be lowered, never raised
        # a failure is not ignored: a child without its limits must not run the candidate
        resource.setrlimit(res, (value, value))
    # Oversized writes must fail with EFBIG instead of killing the harness mid-report.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    drop_capabilities()
    if limits.get("landlock"):
        landlock(limits["landlock"])
    if bpf:
        prog = ctypes.create_string_buffer(bpf)
        fprog = SockFprog(len(bpf) // 8, ctypes.addressof(prog))
        if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "PR_SET_NO_NEW_PRIVS failed")
        if libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.addressof(fprog), 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "seccomp filter install failed")


def isolate_fds(keep):
    """stdin/stdout/stderr to /dev/null; close every other fd except ``keep``."""
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    keep = sorted({0, 1, 2, *keep})
    start = 3
    for fd in keep:
        if fd >= start:
            os.closerange(start, fd)
            start = fd + 1
    os.closerange(start, 4096)
