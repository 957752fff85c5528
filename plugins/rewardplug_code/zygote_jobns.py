# ruff: noqa: UP031  (sandbox-side code: plain stdlib idioms, no contextlib)
"""Per-job namespaces for the sandbox worker: new user and PID namespaces (and a fresh tmpfs per
mount) for each job's processes, and the probe that tells whether the kernel allows them.

Part of the worker program (see :mod:`rewardplug_code.zygote_wire` for how the parts are joined).
"""

import ctypes
import os

from rewardplug_code.zygote_wire import PR_SET_DUMPABLE, libc

CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
MS_NOSUID, MS_NODEV, MS_NOEXEC = 2, 4, 8


def new_job_namespace(mounts):
    """Put this process's future children in new user and PID namespaces (the user namespace
    lets an unprivileged process make the others) and, when ``mounts`` lists any, a mount
    namespace with a fresh, size- and inode-limited tmpfs on each ``[path, options]`` -- the
    only writable places a job has; they vanish with the job's last process. The uid and gid
    map to themselves (a tmpfs made in a user namespace holds only files of mapped ids).
    Raises OSError where the kernel does not allow it."""
    uid, gid = os.getuid(), os.getgid()
    flags = CLONE_NEWUSER | CLONE_NEWPID | (CLONE_NEWNS if mounts else 0)
    if libc.unshare(flags) != 0:
        raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWUSER | CLONE_NEWPID) failed")
    if not mounts:
        return
    # A non-dumpable process's /proc files belong to root, so it cannot write its own maps: the
    # job's first process is dumpable for these three writes (no other process of the job
    # exists yet, and the earlier job's are gone with its namespaces).
    libc.prctl(PR_SET_DUMPABLE, 1, 0, 0, 0)
    try:
        _write_proc("uid_map", "%d %d 1" % (uid, uid))
        _write_proc("setgroups", "deny")
        _write_proc("gid_map", "%d %d 1" % (gid, gid))
    finally:
        libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
    for path, options in mounts:
        flags = MS_NOSUID | MS_NODEV | MS_NOEXEC
        if libc.mount(b"tmpfs", path.encode(), b"tmpfs", flags, options.encode()) != 0:
            raise OSError(ctypes.get_errno(), "mounting a tmpfs on %s failed" % path)
    os.chdir(mounts[0][0])


def _write_proc(name, text):
    fd = os.open("/proc/self/" + name, os.O_WRONLY)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def job_namespaces_work(mounts):
    """Whether a child of this process can make a job's namespaces (probed once, in a fork):
    its first child is PID 1 there and, with ``mounts``, can write to the first of them."""
    pid = os.fork()
    if pid == 0:
        try:
            new_job_namespace(mounts)
            child = os.fork()
            if child == 0:
                ok = os.getpid() == 1
                if mounts:
                    fd = os.open("probe", os.O_WRONLY | os.O_CREAT, 0o600)
                    os.close(fd)
                os._exit(0 if ok else 1)
            _, status = os.waitpid(child, 0)
            os._exit(0 if os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0 else 1)
        except BaseException:
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    return os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
