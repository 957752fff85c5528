"""An interpreter the sandbox's unprivileged user can run.

Candidate code never runs as the scorer's uid: when the scorer is root, workers run as
``nobody`` (65534), at both isolation levels. That needs a Python that ``nobody`` can execute
and read. A system Python is; one under a private home (pyenv in ``/root``, mode 0700) is not.
For those, :func:`runnable_python` makes a read-only copy -- the executable, its shared library
and the standard library (no ``site-packages``, no test suite) -- once per machine and
interpreter, under ``/var/tmp``, owned by root and not writable by anyone else, so no submission
can change what a later one runs. The copy is built aside and renamed into place; a folder found
there is used only when it is this user's own and writable by no one else (whoever made it first
would choose the program every worker runs): anything else is refused, with the reason.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import stat
import sys
import sysconfig
import tempfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path

log = logging.getLogger(__name__)

__all__ = ["Interpreter", "cache_path", "runnable_python", "world_readable"]

CACHE_ROOT = Path("/var/tmp")


@dataclass(frozen=True)
class Interpreter:
    """Where the workers' Python is: its executable, its prefix, and the environment it needs."""

    executable: str
    prefix: str
    #: the original prefix when this is a copy (bubblewrap mounts the copy there)
    original_prefix: str
    env: dict[str, str]

    @property
    def copied(self) -> bool:
        return self.prefix != self.original_prefix


def world_readable(path: str | os.PathLike[str]) -> bool:
    """Whether any user can reach and read ``path`` (every parent folder searchable by others)."""
    p = Path(path)
    try:
        return bool(p.stat().st_mode & stat.S_IROTH) and all(
            d.stat().st_mode & stat.S_IXOTH for d in p.parents
        )
    except OSError:
        return False


def _stdlib() -> Path:
    return Path(os.path.realpath(sysconfig.get_paths()["stdlib"]))


def cache_path() -> Path:
    """Where the copy of this interpreter goes (one per machine, interpreter and build)."""
    exe = os.path.realpath(sys.executable)
    key = f"{exe}\0{sys.version}\0{os.stat(exe).st_mtime_ns}".encode()
    return CACHE_ROOT / f"rewardplug-python-{hashlib.blake2b(key, digest_size=6).hexdigest()}"


def _own(path: Path, folder: bool) -> bool:
    """Whether ``path`` is this user's own folder (or file), not a symlink, and writable by no
    one else; False when it does not exist. Raises RuntimeError for anything else there."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return False
    kind = stat.S_ISDIR if folder else stat.S_ISREG
    if kind(st.st_mode) and st.st_uid == os.geteuid() and not st.st_mode & 0o022:
        return True
    raise RuntimeError(
        f"refusing the interpreter copy at {path}: it is not a {'folder' if folder else 'file'} "
        f"owned by uid {os.geteuid()} and writable only by it (owner {st.st_uid}, mode "
        f"{stat.filemode(st.st_mode)}); whoever made it would choose the program every sandbox "
        "worker runs. Remove it to let rewardplug make its own."
    )


def _cached(target: Path) -> bool:
    """Whether ``target`` holds a finished copy this process may trust (raises if it may not)."""
    if not _own(target, folder=True):
        return False
    for sub in ("bin", "lib"):
        _own(target / sub, folder=True)
    return _own(target / "ready", folder=False)


@cache
def runnable_python() -> Interpreter:
    """This interpreter if any user can run it, else a read-only copy of it (made once)."""
    exe = os.path.realpath(sys.executable)
    prefix = os.path.realpath(sys.base_prefix)
    stdlib = _stdlib()
    if world_readable(exe) and world_readable(stdlib / "os.py"):
        return Interpreter(exe, prefix, prefix, {})
    target = cache_path()
    if not _cached(target):
        _copy(exe, Path(prefix), stdlib, target)
        if not _cached(target):
            raise RuntimeError(f"the interpreter copy at {target} is incomplete")
    copied_exe = str(target / "bin" / os.path.basename(exe))
    return Interpreter(copied_exe, str(target), prefix, {"LD_LIBRARY_PATH": str(target / "lib")})


def _copy(exe: str, prefix: Path, stdlib: Path, target: Path) -> None:
    """Copy the interpreter under ``target`` (atomically: built aside, then renamed)."""
    log.warning(
        "rewardplug test_cases: %s is not readable by an unprivileged user; copying the "
        "interpreter and its standard library to %s (once) so candidate code never runs as root",
        exe,
        target,
    )
    build = Path(tempfile.mkdtemp(prefix=target.name + "-", dir=target.parent))
    try:
        (build / "bin").mkdir()
        shutil.copy2(exe, build / "bin" / os.path.basename(exe))
        libdir = prefix / "lib"
        (build / "lib").mkdir()
        for lib in libdir.glob("libpython*.so*"):
            shutil.copy2(lib, build / "lib" / lib.name, follow_symlinks=True)
        relative = stdlib.relative_to(prefix)
        shutil.copytree(
            stdlib,
            build / relative,
            ignore=shutil.ignore_patterns(
                "site-packages", "test", "idlelib", "tkinter", "turtledemo"
            ),
            symlinks=False,
        )
        for path in [build, *build.rglob("*")]:
            if path.is_dir():
                path.chmod(0o755)
            else:
                path.chmod(0o755 if os.access(path, os.X_OK) else 0o644)
        (build / "ready").write_text("")
        try:
            build.rename(target)
        except OSError:  # another scorer won the race (its copy is checked like any other)
            if not _cached(target):
                raise
            shutil.rmtree(build, ignore_errors=True)
    except BaseException:
        shutil.rmtree(build, ignore_errors=True)
        raise
