"""The children's seccomp filter: a system-call allow-list, compiled to raw BPF.

libseccomp (through ``pyseccomp``, the ``[code]`` extra) compiles the filter here, in the scorer;
the worker (:mod:`rewardplug_code.zygote`) only loads the BPF bytes, so the sandbox itself needs
nothing but the standard library. :mod:`rewardplug_code.sandbox` re-exports :func:`seccomp_bpf`.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import tempfile
from functools import cache

__all__ = ["seccomp_bpf"]

# the sandbox's logger, where this code lived: its warnings reach the same handlers
log = logging.getLogger("rewardplug_code.sandbox")

# The seccomp filter is an allow-list (the model of nsjail's and Chromium's sandboxes): a child
# may make only the system calls a pure-Python computation needs, each listed with why; every
# other call fails with EPERM, so the candidate sees an ordinary error. Not on it, on purpose:
# anything that sends a signal (kill, tkill, tgkill, rt_sigqueueinfo, rt_tgsigqueueinfo,
# pidfd_*), changes a limit or a priority (setrlimit, prlimit64 with a new limit, setpriority,
# sched_set*), traces or reads other processes (ptrace, process_vm_*, kcmp), creates processes
# (fork, vfork, clone without CLONE_THREAD, execve), or touches namespaces, mounts, keys, BPF,
# sockets, io_uring, perf, users and capabilities.
_ALLOW = {
    # memory: the allocator and mmap'd modules
    "brk": "heap",
    "mmap": "allocator, extension modules",
    "munmap": "allocator",
    "mremap": "allocator",
    "mprotect": "allocator, loader",
    "madvise": "allocator",
    "mincore": "allocator",
    # reading files: imports, open() of readable files (writes: see _WRITE_FLAGS below)
    "read": "pipes, files",
    "pread64": "files",
    "readv": "files",
    "preadv": "files",
    "preadv2": "files",
    "openat": "open() (write flags denied at the fallback level)",
    "open": "open() on older libcs",
    "close": "files",
    "close_range": "subprocess-free cleanup",
    "fstat": "files",
    "newfstatat": "os.stat, imports",
    "stat": "os.stat",
    "lstat": "os.lstat",
    "statx": "os.stat",
    "lseek": "files",
    "access": "os.access",
    "faccessat": "os.access",
    "faccessat2": "os.access",
    "getdents64": "os.listdir, import path scans",
    "getcwd": "os.getcwd",
    "readlink": "os.readlink",
    "readlinkat": "os.readlink",
    "dup": "fds",
    "dup2": "fds",
    "dup3": "fds",
    "pipe": "os.pipe",
    "pipe2": "os.pipe",
    "memfd_create": "stdio tests' stdin/stdout buffers",
    "fadvise64": "file reads",
    "fsync": "harmless",
    "fdatasync": "harmless",
    # writing: the result pipe, stdout/stderr (to /dev/null), memfds
    "write": "result frames, print",
    "writev": "print",
    "pwrite64": "files",
    # signals, only to itself: handlers, masks, alarms
    "rt_sigaction": "signal.signal",
    "rt_sigprocmask": "signal masks, threads",
    "rt_sigreturn": "return from a handler",
    "sigaltstack": "faulthandler, threads",
    "rt_sigsuspend": "signal.pause",
    "rt_sigtimedwait": "signal.sigtimedwait",
    "rt_sigpending": "signal.sigpending",
    "alarm": "signal.alarm (its own process)",
    "setitimer": "signal.setitimer (its own process)",
    "getitimer": "signal.getitimer",
    # time and sleeping
    "clock_gettime": "time",
    "clock_getres": "time",
    "gettimeofday": "time",
    "time": "time",
    "nanosleep": "time.sleep",
    "clock_nanosleep": "time.sleep",
    "times": "os.times",
    "getrusage": "resource.getrusage",
    # threads (clone is allowed only with CLONE_THREAD, below)
    "futex": "locks",
    "set_robust_list": "threads",
    "get_robust_list": "threads",
    "set_tid_address": "threads",
    "rseq": "threads (glibc)",
    "gettid": "threads",
    "sched_yield": "threads",
    "sched_getaffinity": "os.cpu_count",
    "arch_prctl": "thread TLS",
    "membarrier": "runtime barriers",
    # waiting on descriptors (selectors, asyncio without sockets)
    "select": "select",
    "pselect6": "select",
    "poll": "select.poll",
    "ppoll": "select.poll",
    "epoll_create1": "selectors",
    "epoll_ctl": "selectors",
    "epoll_wait": "selectors",
    "epoll_pwait": "selectors",
    "eventfd2": "event loops",
    # who and where am I (read-only)
    "getpid": "os.getpid",
    "getppid": "os.getppid",
    "getuid": "os.getuid",
    "geteuid": "os.geteuid",
    "getgid": "os.getgid",
    "getegid": "os.getegid",
    "getgroups": "os.getgroups",
    "getresuid": "os.getresuid",
    "getresgid": "os.getresgid",
    "getpgrp": "os.getpgrp",
    "getpgid": "os.getpgid",
    "getsid": "os.getsid",
    "uname": "platform",
    "sysinfo": "os.sysinfo",
    "getrandom": "random, hashing",
    "getrlimit": "resource.getrlimit",
    "getpriority": "os.getpriority",
    "sched_getparam": "os.sched_getparam",
    "sched_getscheduler": "os.sched_getscheduler",
    "wait4": "os.wait (there are no children)",
    "waitid": "os.waitid (no children)",
    # leaving
    "exit": "thread exit",
    "exit_group": "process exit",
}
# Extra calls at the bubblewrap level, whose file system is a private, size-limited tmpfs.
_ALLOW_WRITES = {
    "unlink": "temporary files",
    "unlinkat": "temporary files",
    "rename": "temporary files",
    "renameat": "temporary files",
    "renameat2": "temporary files",
    "mkdir": "temporary dirs",
    "mkdirat": "temporary dirs",
    "rmdir": "temporary dirs",
    "ftruncate": "temporary files",
    "truncate": "temporary files",
    "fchmod": "temporary files",
    "chmod": "temporary files",
    "fchmodat": "temporary files",
    "utimensat": "temporary files",
}
# ioctl only for the requests Python's io module makes (isatty, close-on-exec, non-blocking)
_IOCTLS = {
    "TCGETS": 0x5401,
    "TIOCGWINSZ": 0x5413,
    "FIONREAD": 0x541B,
    "FIONBIO": 0x5421,
    "FIONCLEX": 0x5450,
    "FIOCLEX": 0x5451,
}
# fcntl only for fd flags, duplication and locks: F_SETOWN/F_SETSIG would let a file's I/O signal
# another process (SIGIO), F_SETLEASE/F_NOTIFY signal this one from outside
_FCNTLS = {
    "F_DUPFD": 0,
    "F_GETFD": 1,
    "F_SETFD": 2,
    "F_GETFL": 3,
    "F_SETFL": 4,
    "F_GETLK": 5,
    "F_SETLK": 6,
    "F_SETLKW": 7,
    "F_OFD_GETLK": 36,
    "F_OFD_SETLK": 37,
    "F_OFD_SETLKW": 38,
    "F_DUPFD_CLOEXEC": 1030,
    "F_GETPIPE_SZ": 1032,
    "F_ADD_SEALS": 1033,
    "F_GET_SEALS": 1034,
}
_PRLIMIT64 = "prlimit64"  # resource.getrlimit: allowed only with new_limit == NULL (reads)
_CLONE_THREAD = 0x00010000
_WRITE_FLAGS = (os.O_WRONLY, os.O_RDWR, os.O_CREAT, os.O_TRUNC, os.O_APPEND)


@cache
def seccomp_bpf(deny_writes: bool) -> bytes | None:
    """The allow-list filter as raw BPF, or None when libseccomp/pyseccomp is unavailable.

    ``deny_writes`` (the fallback level, where the real file system is visible): no file may be
    opened for writing and no directory entry changed.
    """
    try:
        import pyseccomp as sc
    except ImportError as exc:  # the Python binding: an extra, not a core dependency
        log.warning(
            "seccomp unavailable (%s); children get rlimits only: pip install 'rewardplug[code]'",
            exc,
        )
        return None
    except OSError as exc:  # libseccomp.so, from the OS
        log.warning(
            "seccomp unavailable (%s); children get rlimits only: install libseccomp "
            "(Debian/Ubuntu package 'libseccomp2')",
            exc,
        )
        return None
    eperm = sc.ERRNO(errno.EPERM)
    flt = sc.SyscallFilter(eperm)
    allowed = dict(_ALLOW)
    if not deny_writes:
        allowed.update(_ALLOW_WRITES)
    for name in allowed:
        if name in ("openat", "open") and deny_writes:
            continue  # below, with their flags checked
        with contextlib.suppress(OSError, ValueError):  # a syscall this arch does not have
            flt.add_rule(sc.ALLOW, name)
    if deny_writes:
        # open only when no write flag is set: flags & (O_WRONLY|O_RDWR|O_CREAT|O_TRUNC|O_APPEND)
        write_mask = 0
        for flag in _WRITE_FLAGS:
            write_mask |= flag
        flt.add_rule(sc.ALLOW, "openat", sc.Arg(2, sc.MASKED_EQ, write_mask, 0))
        with contextlib.suppress(OSError, ValueError):
            flt.add_rule(sc.ALLOW, "open", sc.Arg(1, sc.MASKED_EQ, write_mask, 0))
    for request in _IOCTLS.values():
        flt.add_rule(sc.ALLOW, "ioctl", sc.Arg(1, sc.EQ, request))
    for command in _FCNTLS.values():
        flt.add_rule(sc.ALLOW, "fcntl", sc.Arg(1, sc.EQ, command))
    flt.add_rule(sc.ALLOW, _PRLIMIT64, sc.Arg(2, sc.EQ, 0))
    # Threads are fine, new processes are not: clone needs CLONE_THREAD.
    flt.add_rule(sc.ALLOW, "clone", sc.Arg(0, sc.MASKED_EQ, _CLONE_THREAD, _CLONE_THREAD))
    # clone3 takes its flags in memory seccomp cannot read: ENOSYS makes libc fall back to clone.
    flt.add_rule(sc.ERRNO(errno.ENOSYS), "clone3")
    with tempfile.TemporaryFile() as fh:
        flt.export_bpf(fh)
        fh.seek(0)
        return fh.read()
