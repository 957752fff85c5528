"""Isolation for candidate code: the bubblewrap command, the seccomp filter, the resource limits.

Two levels, chosen once per process by a probe:

* ``bwrap``: the worker runs in bubblewrap with new user/PID/network/IPC/UTS/cgroup namespaces, a
  read-only view of only the system libraries and the Python standard library (no site-packages,
  no home, no project, no data), a read-only root and ``/dev``, a cleared environment,
  ``--die-with-parent`` and ``--new-session``; each job gets a small fresh ``/tmp`` and
  ``/dev/shm`` (:func:`job_mounts`); inside it every child also gets rlimits + seccomp.
* ``rlimits+seccomp+landlock`` / ``rlimits+seccomp`` (fallback where bubblewrap cannot run): the
  worker is a plain child with a cleared environment in an empty temporary directory (as
  ``nobody`` when the scorer is root); children get rlimits, a stricter seccomp filter that also
  denies file writes and, where the kernel has Landlock, read access only to the system libraries
  and the Python installation. Without Landlock, files readable by that user stay readable: that
  level is weaker, and says so.

The seccomp filter (:mod:`rewardplug_code.seccomp`, re-exported here as :func:`seccomp_bpf`) is
compiled in the scorer with libseccomp (``pyseccomp``) and shipped to the worker as raw BPF, so
the sandbox itself needs nothing but the standard library.
"""

from __future__ import annotations

import ast
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

from rewardplug_code.interpreter import runnable_python
from rewardplug_code.seccomp import seccomp_bpf

log = logging.getLogger(__name__)

__all__ = [
    "Limits",
    "bwrap_command",
    "isolation_level",
    "job_mounts",
    "seccomp_bpf",
    "worker_source",
]

BWRAP = "bwrap"
LEVEL_BWRAP = "bwrap"
LEVEL_FALLBACK = "rlimits+seccomp"
LEVEL_LANDLOCK = "rlimits+seccomp+landlock"
LEVEL_RLIMITS = "rlimits"


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
        self.processes = 64

    def as_dict(self) -> dict[str, Any]:
        return {
            "landlock": self.read_only,
            "memory_bytes": self.memory_mb * 2**20,
            "cpu_seconds": self.cpu_seconds,
            "file_bytes": self.output_bytes,
            "open_files": 64,
            "processes": self.processes,
        }


#: the worker program's parts, in the order :func:`worker_source` joins them (each part imports
#: from the earlier ones only; zygote.py, last, runs ``main()``)
WORKER_PARTS = (
    "zygote_wire.py",
    "zygote_harden.py",
    "zygote_child.py",
    "zygote_jobns.py",
    "zygote.py",
)


@cache
def worker_source() -> str:
    """The worker program's source text (run with ``python -c`` so no project file is visible).

    The worker's parts joined into one program, without the imports between them (the sandbox
    cannot import a sibling module, and in one program their names are already global)."""
    joined = []
    for name in WORKER_PARTS:
        text = Path(__file__).with_name(name).read_text()
        lines = text.splitlines(keepends=True)
        for node in reversed(ast.parse(text).body):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
                "rewardplug_code"
            ):
                del lines[node.lineno - 1 : node.end_lineno]
        joined.append("".join(lines))
    return "\n".join(joined)


def _python() -> str:
    return os.path.realpath(sys.executable)


def _unprivileged() -> bool:
    """Whether workers must switch to ``nobody`` (the scorer is root)."""
    return os.geteuid() == 0


def bwrap_options() -> dict[str, Any]:
    """Popen options for bubblewrap: as ``nobody`` when the scorer is root, so the sandbox's
    uid 65534 maps to an unprivileged user outside too (not to root)."""
    opts: dict[str, Any] = {"env": {}}
    if _unprivileged():
        opts.update(user=65534, group=65534, extra_groups=[], cwd="/")
    return opts


def bwrap_command() -> list[str]:
    """The bubblewrap argv that starts one worker."""
    prefix = os.path.realpath(sys.base_prefix)
    interp = runnable_python() if _unprivileged() else None
    cmd = [
        shutil.which(BWRAP) or BWRAP,
        "--unshare-all",
        # The zygote is PID 1 itself: bubblewrap's own init would be a dumpable process holding
        # the job and reply pipes, open to candidate code through /proc/1/fd wherever a job
        # cannot have namespaces of its own (the zygote is non-dumpable and reaps orphans).
        "--as-pid-1",
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
    if interp is not None and interp.copied:
        # the read-only copy (standard library only) where the interpreter expects itself
        cmd += ["--ro-bind", interp.prefix, prefix]
    elif not prefix.startswith("/usr/"):
        cmd += ["--ro-bind", prefix, prefix]
        # Hide installed packages: only the standard library is needed.
        for site in {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}:
            site = os.path.realpath(site)
            if site.startswith(prefix) and os.path.isdir(site):
                cmd += ["--tmpfs", site]
    # Nothing of the sandbox's own is writable: /dev (its device nodes stay usable) and the root
    # are read-only, /tmp is an empty mount point. Each job gets fresh tmpfs mounts of its own
    # (job_mounts), or no writable place at all where the kernel cannot make them.
    cmd += ["--proc", "/proc", "--dev", "/dev", "--remount-ro", "/dev", "--dir", "/tmp"]
    cmd += ["--chdir", "/", "--remount-ro", "/"]
    cmd += ["--", _python(), "-I", "-S", "-B", "-c", worker_source()]
    return cmd


#: inodes (files and folders) of a job's /tmp and /dev/shm: bounds the clean-up, like the size
TMP_INODES = 4096
SHM_MB, SHM_INODES = 4, 256


def job_mounts(level: str, tmp_mb: int = 16) -> list[list[str]]:
    """The fresh tmpfs mounts ``[path, options]`` each job of a worker gets (the zygote makes
    them in the job's own mount namespace; the first is the job's working folder). None at the
    fallback level, where the seccomp filter denies every file write."""
    if level != LEVEL_BWRAP:
        return []
    return [
        ["/tmp", f"size={tmp_mb * 2**20},nr_inodes={TMP_INODES},mode=1777"],
        ["/dev/shm", f"size={SHM_MB * 2**20},nr_inodes={SHM_INODES},mode=1777"],
    ]


def fallback_command() -> tuple[list[str], dict[str, object]]:
    """argv and Popen options for a worker without bubblewrap (cleared env, empty cwd).

    The working folder is a new empty one, private to the scorer's user (mode 0700: the worker
    changes into it before it drops to ``nobody``, and needs nothing in it -- no file can be
    written at this level); the caller removes it with the worker (``cwd`` in the options).
    As root, the worker runs as ``nobody``, with an interpreter it can read
    (:func:`~rewardplug_code.interpreter.runnable_python`): root would own every file, read every
    ``/proc/<pid>/environ`` and be exempt from process limits; nobody owns nothing.
    """
    python = _python()
    interp = runnable_python() if _unprivileged() else None  # (may refuse: before the folder)
    cwd = tempfile.mkdtemp(prefix="rewardplug-sandbox-")
    opts: dict[str, object] = {"env": {"PATH": "/usr/bin:/bin"}, "cwd": cwd}
    if interp is not None:
        python = interp.executable
        opts["env"] = {"PATH": "/usr/bin:/bin", **interp.env}
        opts.update(user=65534, group=65534, extra_groups=[])
    return [python, "-I", "-S", "-B", "-c", worker_source()], opts


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
    prefix = runnable_python().prefix if _unprivileged() else os.path.realpath(sys.base_prefix)
    paths = ["/usr", "/lib", "/lib64", "/bin", prefix]
    return [p for p in dict.fromkeys(paths) if os.path.exists(p)]


def _probe() -> str:
    if shutil.which(BWRAP) is None:
        _probed["why"] = "bwrap is not installed (Debian/Ubuntu package 'bubblewrap')"
    else:
        cmd = [*bwrap_command()[: bwrap_command().index("--")], "--", _python(), "-I", "-S"]
        cmd += ["-c", "import os; print(os.getuid())"]
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=30, **bwrap_options())
            if out.returncode == 0 and out.stdout.strip() == "65534":
                return LEVEL_BWRAP
            _probed["why"] = f"bwrap failed: {out.stderr.strip()[:300] or out.returncode}"
        except (OSError, subprocess.SubprocessError) as exc:
            _probed["why"] = f"bwrap failed: {exc}"
    return LEVEL_FALLBACK


def bwrap_unavailable_reason() -> str | None:
    """Why the last probe found bubblewrap unusable (None if it works or was not probed)."""
    return _probed.get("why")
