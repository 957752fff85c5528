"""Isolation for candidate code: the bubblewrap command, the seccomp filter, the resource limits.

Two levels, chosen once per process by a probe:

* ``bwrap``: the worker runs in bubblewrap with new user/PID/network/IPC/UTS/cgroup namespaces, a
  read-only view of only the system libraries and the Python standard library (no site-packages,
  no home, no project, no data), a small private ``/tmp``, a cleared environment,
  ``--die-with-parent`` and ``--new-session``; inside it every child also gets rlimits + seccomp.
* ``rlimits+seccomp+landlock`` / ``rlimits+seccomp`` (fallback where bubblewrap cannot run): the
  worker is a plain child with a cleared environment in an empty temporary directory (as
  ``nobody`` when the scorer is root); children get rlimits, a stricter seccomp filter that also
  denies file writes and, where the kernel has Landlock, read access only to the system libraries
  and the Python installation. Without Landlock, files readable by that user stay readable: that
  level is weaker, and says so.

The seccomp filter is compiled here with libseccomp (``pyseccomp``) and shipped to the worker as
raw BPF, so the sandbox itself needs nothing but the standard library.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import threading
from functools import cache
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

__all__ = ["Limits", "bwrap_command", "isolation_level", "seccomp_bpf", "worker_source"]

BWRAP = "bwrap"
LEVEL_BWRAP = "bwrap"
LEVEL_FALLBACK = "rlimits+seccomp"
LEVEL_LANDLOCK = "rlimits+seccomp+landlock"
LEVEL_RLIMITS = "rlimits"

# Syscalls no test needs and every escape wants (EPERM, so the code sees an ordinary error).
_DENY = [
    "socket",
    "socketpair",
    "connect",
    "bind",
    "listen",
    "accept",
    "accept4",
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "kill",
    "tkill",
    "tgkill",
    "fork",
    "vfork",
    "execve",
    "execveat",
    "setsid",
    "setpgid",
    "mount",
    "umount2",
    "unshare",
    "setns",
    "chroot",
    "pivot_root",
    "keyctl",
    "add_key",
    "request_key",
    "bpf",
    "perf_event_open",
    "userfaultfd",
    "io_uring_setup",
    "kexec_load",
    "init_module",
    "finit_module",
    "delete_module",
    "reboot",
    "swapon",
    "swapoff",
    "acct",
    "setuid",
    "setgid",
    "setreuid",
    "setregid",
    "setresuid",
    "setresgid",
    "personality",
    "quotactl",
    "name_to_handle_at",
    "open_by_handle_at",
    "pidfd_open",
    "pidfd_send_signal",
    "pidfd_getfd",
]
# Extra denials for the fallback level, where the real file system is visible.
_DENY_WRITES = [
    "creat",
    "unlink",
    "unlinkat",
    "rename",
    "renameat",
    "renameat2",
    "mkdir",
    "mkdirat",
    "rmdir",
    "link",
    "linkat",
    "symlink",
    "symlinkat",
    "chmod",
    "fchmod",
    "fchmodat",
    "chown",
    "fchown",
    "lchown",
    "fchownat",
    "truncate",
    "utime",
    "utimes",
    "utimensat",
    "futimesat",
    "mknod",
    "mknodat",
]
_CLONE_THREAD = 0x00010000
_WRITE_FLAGS = (os.O_WRONLY, os.O_RDWR, os.O_CREAT, os.O_TRUNC, os.O_APPEND)


class Limits:
    """Resource limits applied inside every child (plain data, sent to the worker).

    ``read_only``: when set, Landlock limits the child to reading below these paths.
    """

    def __init__(
        self,
        memory_mb: int,
        cpu_seconds: int,
        output_bytes: int,
        read_only: list[str] | None = None,
    ):
        self.memory_mb = memory_mb
        self.cpu_seconds = cpu_seconds
        self.output_bytes = output_bytes
        self.read_only = read_only

    def as_dict(self) -> dict[str, Any]:
        return {
            "landlock": self.read_only,
            "memory_bytes": self.memory_mb * 2**20,
            "cpu_seconds": self.cpu_seconds,
            "file_bytes": self.output_bytes,
            "open_files": 64,
            "processes": 64,
        }


@cache
def seccomp_bpf(deny_writes: bool) -> bytes | None:
    """The deny-list filter as raw BPF, or None when libseccomp/pyseccomp is unavailable."""
    try:
        import pyseccomp as sc
    except (ImportError, OSError) as exc:  # the Python binding or libseccomp.so is missing
        log.warning("seccomp unavailable (%s); children get rlimits only", exc)
        return None
    flt = sc.SyscallFilter(sc.ALLOW)
    eperm = sc.ERRNO(errno.EPERM)
    names = _DENY + (_DENY_WRITES if deny_writes else [])
    for name in names:
        with contextlib.suppress(OSError, ValueError):  # a syscall this arch does not have
            flt.add_rule(eperm, name)
    # Threads are fine, new processes are not: clone without CLONE_THREAD is denied.
    flt.add_rule(eperm, "clone", sc.Arg(0, sc.MASKED_EQ, _CLONE_THREAD, 0))
    # clone3 takes its flags in memory seccomp cannot read: ENOSYS makes libc fall back to clone.
    flt.add_rule(sc.ERRNO(errno.ENOSYS), "clone3")
    if deny_writes:
        for flag in _WRITE_FLAGS:
            flt.add_rule(eperm, "openat", sc.Arg(2, sc.MASKED_EQ, flag, flag))
            flt.add_rule(eperm, "open", sc.Arg(1, sc.MASKED_EQ, flag, flag))
        flt.add_rule(eperm, "openat2")
    with tempfile.TemporaryFile() as fh:
        flt.export_bpf(fh)
        fh.seek(0)
        return fh.read()


@cache
def worker_source() -> str:
    """The worker program's source text (run with ``python -c`` so no project file is visible)."""
    return (Path(__file__).with_name("zygote.py")).read_text()


def _python() -> str:
    return os.path.realpath(sys.executable)


def bwrap_command(tmp_mb: int = 16) -> list[str]:
    """The bubblewrap argv that starts one worker."""
    prefix = os.path.realpath(sys.base_prefix)
    cmd = [
        shutil.which(BWRAP) or BWRAP,
        "--unshare-all",
        "--uid",
        "65534",
        "--gid",
        "65534",
        "--die-with-parent",
        "--new-session",
        "--clearenv",
        "--setenv",
        "PATH",
        "/usr/bin:/bin",
        "--ro-bind",
        "/usr",
        "/usr",
    ]
    for link in ("lib", "lib64", "bin", "sbin"):
        target = Path("/") / link
        if target.is_symlink():
            cmd += ["--symlink", os.readlink(target), f"/{link}"]
        elif target.is_dir():
            cmd += ["--ro-bind", str(target), f"/{link}"]
    if not prefix.startswith("/usr/"):
        cmd += ["--ro-bind", prefix, prefix]
        # Hide installed packages: only the standard library is needed.
        for site in {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}:
            site = os.path.realpath(site)
            if site.startswith(prefix) and os.path.isdir(site):
                cmd += ["--tmpfs", site]
    cmd += ["--proc", "/proc", "--dev", "/dev"]
    cmd += ["--size", str(tmp_mb * 2**20), "--tmpfs", "/tmp", "--chdir", "/tmp"]
    cmd += ["--", _python(), "-I", "-S", "-B", "-c", worker_source()]
    return cmd


def fallback_command() -> tuple[list[str], dict[str, object]]:
    """argv and Popen options for a worker without bubblewrap (cleared env, empty cwd)."""
    cwd = tempfile.mkdtemp(prefix="rewardplug-sandbox-")
    opts: dict[str, object] = {"env": {"PATH": "/usr/bin:/bin"}, "cwd": cwd}
    if os.geteuid() == 0 and _world_executable(_python()):
        # Root would own every file (and read every /proc/<pid>/environ); nobody owns none.
        os.chmod(cwd, 0o777)
        opts.update(user=65534, group=65534, extra_groups=[])
    return [_python(), "-I", "-S", "-B", "-c", worker_source()], opts


def _world_executable(path: str) -> bool:
    """Whether any user can run ``path`` (every parent folder searchable by others)."""
    p = Path(path)
    try:
        return bool(p.stat().st_mode & 0o001) and all(d.stat().st_mode & 0o001 for d in p.parents)
    except OSError:
        return False


_probe_lock = threading.Lock()
_probed: dict[str, str] = {}


def isolation_level(requested: str = "auto") -> str:
    """The isolation level to use: probe bubblewrap once per process (``auto``), or as forced."""
    if requested != "rlimits+seccomp":
        with _probe_lock:
            if "level" not in _probed:
                _probed["level"] = _probe()
            if _probed["level"] == LEVEL_BWRAP:
                return LEVEL_BWRAP
        if requested == "bwrap":
            raise RuntimeError(f"bubblewrap was requested but does not work: {_probed['why']}")
    if seccomp_bpf(True) is None:
        return LEVEL_RLIMITS
    return LEVEL_LANDLOCK if landlock_abi() > 0 else LEVEL_FALLBACK


@cache
def landlock_abi() -> int:
    """The kernel's Landlock ABI version (0 when unavailable)."""
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return max(0, int(libc.syscall(444, None, 0, 1)))
    except (OSError, AttributeError):
        return 0


def read_only_paths() -> list[str]:
    """What a fallback child may read: system libraries and the Python installation."""
    paths = ["/usr", "/lib", "/lib64", "/bin", os.path.realpath(sys.base_prefix)]
    return [p for p in dict.fromkeys(paths) if os.path.exists(p)]


def _probe() -> str:
    if shutil.which(BWRAP) is None:
        _probed["why"] = "bwrap is not installed (Debian/Ubuntu package 'bubblewrap')"
    else:
        cmd = [*bwrap_command()[: bwrap_command().index("--")], "--", _python(), "-I", "-S"]
        cmd += ["-c", "import os; print(os.getuid())"]
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=30, env={})
            if out.returncode == 0 and out.stdout.strip() == "65534":
                return LEVEL_BWRAP
            _probed["why"] = f"bwrap failed: {out.stderr.strip()[:300] or out.returncode}"
        except (OSError, subprocess.SubprocessError) as exc:
            _probed["why"] = f"bwrap failed: {exc}"
    log.warning(
        "rewardplug test_cases: bubblewrap is unavailable (%s); falling back to rlimits + "
        "seccomp without file-system or namespace isolation",
        _probed["why"],
    )
    return LEVEL_FALLBACK
