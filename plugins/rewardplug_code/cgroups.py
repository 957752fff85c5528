"""A process and thread limit that holds for every uid: one pids cgroup per sandbox worker.

``RLIMIT_NPROC`` does nothing for a task whose user is root outside every user namespace, so the
sandbox also starts each worker inside a cgroup whose ``pids.max`` counts every task (threads
included) of everything started in it, whatever the uid. cgroup v1's pids hierarchy or a v2
subtree with the pids controller, where this process may create cgroups; else nothing (the
caller says so in ``detail.isolation``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from functools import cache
from pathlib import Path

log = logging.getLogger(__name__)

__all__ = ["in_cgroup", "make_pids_cgroup", "pids_cgroup_root", "remove_cgroup"]

_PIDS_V1 = Path("/sys/fs/cgroup/pids")
_CG_UNIFIED = Path("/sys/fs/cgroup")
_cg_counter = iter(range(1, 1 << 62))


@cache
def pids_cgroup_root() -> Path | None:
    """A cgroup folder under which this process may create pids-limited cgroups, or None."""
    candidates = []
    if (_PIDS_V1 / "cgroup.procs").exists():
        candidates.append(_PIDS_V1)
    controllers = _CG_UNIFIED / "cgroup.controllers"
    if controllers.exists():
        with contextlib.suppress(OSError):
            own = Path("/proc/self/cgroup").read_text().splitlines()
            path = next((line[3:] for line in own if line.startswith("0::")), None)
            if (
                path is not None
                and "pids"
                in (_CG_UNIFIED / path.lstrip("/") / "cgroup.subtree_control").read_text()
            ):
                candidates.append(_CG_UNIFIED / path.lstrip("/"))
    for root in candidates:
        probe = root / f"rewardplug-probe-{os.getpid()}"
        try:
            probe.mkdir()
            (probe / "pids.max").write_text("8")
            return root
        except OSError:
            continue
        finally:
            with contextlib.suppress(OSError):
                probe.rmdir()
    return None


def make_pids_cgroup(limit: int) -> Path | None:
    """A new cgroup whose tasks (processes and threads) are capped at ``limit``, or None."""
    root = pids_cgroup_root()
    if root is None:
        return None
    path = root / f"rewardplug-{os.getpid()}-{next(_cg_counter)}"
    try:
        path.mkdir()
        (path / "pids.max").write_text(str(limit))
    except OSError as exc:
        log.warning("could not create a pids cgroup at %s (%s)", path, exc)
        remove_cgroup(path)
        return None
    return path


def in_cgroup(cmd: list[str], cgroup: Path) -> list[str]:
    """``cmd``, started inside ``cgroup``: a shell moves itself in, then execs the command (so
    nothing of the worker ever runs outside it)."""
    return ["/bin/sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', str(cgroup), *cmd]


def remove_cgroup(path: Path | None) -> None:
    """Remove a worker's cgroup once its tasks are gone (best effort, a few tries)."""
    if path is None:
        return
    for _ in range(50):
        try:
            path.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.02)
    log.warning("could not remove the cgroup %s", path)
