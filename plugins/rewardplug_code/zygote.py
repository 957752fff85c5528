# ruff: noqa: SIM105, UP031  (sandbox-side code: plain stdlib idioms, no contextlib)
"""The warm worker that runs inside the sandbox (stdlib only; never imported by the scorer).

This is the worker program's last part and its entry point: ``sandbox.worker_source()`` joins
:mod:`~rewardplug_code.zygote_wire` (constants, framing), :mod:`~rewardplug_code.zygote_harden`,
:mod:`~rewardplug_code.zygote_child` (the candidate's side), :mod:`~rewardplug_code.zygote_jobns`
(per-job namespaces) and this file into one ``python -c`` source, dropping the imports between
them: the sandbox sees no project file, so the program must be one text.

The scorer starts this file as ``python -I -S -B -c <source>`` inside bubblewrap (or, in the
fallback, as a plain child with a cleared environment). It reads one init message, pre-imports
common modules, then serves jobs read from fd 0 and answers on fd 1, one at a time.

The zygote itself never reads a job (so its memory, which every child inherits, holds no
submission's data): per job it forks a *supervisor* that reads the job from fd 0, forks a
*child* that hardens itself (process group, fds, rlimits, capabilities, Landlock, seccomp) and
runs the candidate, and answers on fd 1. The child only reports *values* in frames on a private
pipe; the supervisor enforces wall-clock deadlines (SIGKILL of the child's process group), caps
output, and relays the raw frames. Nothing here sees expected values or decides a verdict: the
trusted parent does.

**The candidate never holds the tests.** Expected values of ``call``/``stdio`` cases never enter
the sandbox. A hardened ``check`` (assert-style test code that could not be converted) arrives in
a second message: the supervisor first forks the process that will answer ``candidate(...)``
calls (:func:`start_candidate`), then reads the test code and forks the checker that runs it.
So no process running candidate code -- by its frames, ``gc``, ``/proc/self/mem`` or inherited
heap -- can find the tests or their values. ``tests/rewardplug_code/test_sandbox_exploits.py``
checks this at both isolation levels.

A submission's results together are capped (``TOTAL_RESULT_BYTES``, counted as the bytes the
reply holds: a byte that JSON escapes counts 6): beyond it the remaining cases fail, so a flood
of large results is the submission's 0, never a broken reply. The supervisor's own address space
is capped too (:func:`cap_memory`).

Frames (child -> zygote): 4-byte big-endian length, 1-byte marker, payload.
``L`` candidate loaded; ``P`` one case's result, child goes on; ``F`` one case's result, child
exits (a fresh child takes the next case); ``A`` every remaining case fails with this payload.
"""

import base64
import os
import pickle
import resource
import select
import signal
import struct
import time

from rewardplug_code.zygote_child import (
    child_call,
    child_check,
    child_stdio,
    describe,
    err_payload,
    ok_payload,
    start_candidate,
)
from rewardplug_code.zygote_harden import harden, isolate_fds
from rewardplug_code.zygote_jobns import job_namespaces_work, new_job_namespace
from rewardplug_code.zygote_wire import (
    EXIT_EOF,
    PR_SET_DUMPABLE,
    PRELOAD,
    TOTAL_RESULT_BYTES,
    libc,
    read_msg,
    send_msg,
)

# ---------------------------------------------------------------- zygote side


def spawn(job, start, limits, bpf, candidate_fds=None):
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.setpgid(0, 0)
            isolate_fds((wfd, *(candidate_fds or ())))
            if job["mode"] == "check":
                child_check(job, start, wfd, limits, bpf, candidate_fds)
            harden(limits, bpf)
            if job["mode"] == "call":
                child_call(job, start, wfd)
            else:
                child_stdio(job, start, wfd)
        finally:
            os._exit(0)
    os.close(wfd)
    try:
        os.setpgid(pid, pid)
    except OSError:
        pass  # the child already did it (or is gone)
    return pid, rfd


def kill(pid, rfd, wait=True):
    """SIGKILL the child's process group; reap it now (``wait``) or later (:func:`reap`)."""
    for target in (lambda: os.killpg(pid, signal.SIGKILL), lambda: os.kill(pid, signal.SIGKILL)):
        try:
            target()
        except OSError:
            pass
    os.close(rfd)
    if not wait:
        return 0
    try:
        _, status = os.waitpid(pid, 0)
    except ChildProcessError:
        status = 0
    return status


def reap(pids=None, keep=0):
    """Collect children killed without waiting for them: those of ``pids`` that have ended, then
    the oldest until at most ``keep`` are left; without ``pids``, every child (blocking)."""
    if pids is None:
        while True:
            try:
                os.waitpid(-1, 0)
            except ChildProcessError:
                return
    for pid in list(pids):
        try:
            if os.waitpid(pid, os.WNOHANG)[0] == 0:
                continue
        except ChildProcessError:
            pass
        pids.remove(pid)
    while len(pids) > keep:
        try:
            os.waitpid(pids.pop(0), 0)
        except ChildProcessError:
            pass


# bytes that JSON escapes as \uXXXX (control characters, and non-ASCII bytes that a frame may
# hold and that are relayed as U+FFFD): a result is budgeted by its size in the reply
_PRINTABLE = bytes(range(0x20, 0x7F))
# children killed but not yet reaped at once: each still counts against the worker's pids.max
UNREAPED = 2


def relayed_size(payload):
    """What ``payload`` costs in the reply (an upper bound: 6 bytes per escaped byte)."""
    odd = len(payload.translate(None, _PRINTABLE))
    return len(payload) + payload.count(b'"') + payload.count(b"\\") + 5 * odd


def exit_text(status):
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        name = {9: "SIGKILL (memory or CPU limit?)", 11: "SIGSEGV (crash, e.g. deep recursion)"}
        return "child died by signal %s" % name.get(sig, sig)
    return "child exited (status %d) before returning a result" % os.WEXITSTATUS(status)


def run_job(job, limits, bpf, candidate_fds=None):
    n = job["n"]
    results: list[str | None] = [None] * n
    faults: list[str | None] = [None] * n
    per_case = job["timeout"]
    total_deadline = time.monotonic() + job["total_timeout"]
    cap = job["result_bytes"] + 16
    # All results of a job together stay far below what the parent accepts in one reply, so a
    # submission that returns huge values fails its cases (a 0) instead of breaking the reply.
    budget = job.get("total_result_bytes", TOTAL_RESULT_BYTES)
    one_per_child = job["mode"] != "call"
    unreaped: list[int] = []
    i = 0
    while i < n:
        if time.monotonic() >= total_deadline:
            for k in range(i, n):
                faults[k] = "not run: the submission's total time budget was spent"
            break
        # Children whose verdict is in are killed without waiting for them (their teardown
        # overlaps the next child's work), and reaped here: so a job with any number of failing
        # cases -- each ends its child -- never holds more than a few.
        reap(unreaped, UNREAPED)
        pid, rfd = spawn(job, i, limits, bpf, candidate_fds)
        k, buf, loaded, restart_at = i, b"", job["mode"] != "call", None
        deadline = min(time.monotonic() + per_case + job["load_timeout"], total_deadline)
        while restart_at is None:
            left = deadline - time.monotonic()
            ready = select.select([rfd], [], [], max(left, 0))[0] if left > 0 else []
            if not ready:
                faults[k] = "timeout" if deadline < total_deadline else "total time budget spent"
                if not loaded:  # a program that hangs while loading hangs every time
                    for j in range(k, n):
                        faults[j] = "timeout while loading the code"
                    restart_at = n
                else:
                    restart_at = k + 1
                kill(pid, rfd)
                break
            data = os.read(rfd, 1 << 16)
            if not data:
                status = kill(pid, rfd)
                if not loaded:
                    for j in range(k, n):
                        faults[j] = "crashed while loading the code: " + exit_text(status)
                    restart_at = n
                else:
                    faults[k] = exit_text(status)
                    restart_at = k + 1
                break
            buf += data
            while len(buf) >= 4 and restart_at is None:
                size = struct.unpack(">I", buf[:4])[0]
                if size > cap or size == 0:
                    return {"violation": "oversized or empty frame from the child"}, pid, rfd
                if len(buf) < 4 + size:
                    break
                marker, payload, buf = buf[4:5], buf[5 : 4 + size], buf[4 + size :]
                if marker == b"L" and not loaded:
                    loaded = True
                    deadline = min(time.monotonic() + per_case, total_deadline)
                    continue
                if marker not in (b"P", b"F", b"A") or k >= n or (marker != b"A" and not loaded):
                    # Results before the harness has loaded the code were not made by it.
                    return {"violation": "unexpected frame from the child"}, pid, rfd
                if marker == b"A":
                    text = payload.decode("ascii", "replace")
                    for j in range(k, n):
                        results[j] = text
                    restart_at = n
                    break
                budget -= relayed_size(payload)
                if budget < 0:
                    for j in range(k, n):
                        faults[j] = "results exceed the submission's total size budget"
                    restart_at = n
                    break
                results[k] = payload.decode("ascii", "replace")
                k += 1
                deadline = min(time.monotonic() + per_case, total_deadline)
                if marker == b"F" or one_per_child or k == n:
                    restart_at = k
            if restart_at is not None:
                kill(pid, rfd, wait=False)  # its verdict is in; reaped before the next spawn
                unreaped.append(pid)
        i = restart_at
    return {"results": results, "faults": faults}, None, None


def supervise(inp, out, limits, bpf, jobns):
    """One job, in a fresh process forked from the clean zygote: read it, run it, reply, exit.

    The zygote itself never reads a job, so no child can find another submission's code or
    results in the memory it inherits. With ``jobns`` (a list of fresh mounts) the job runs in
    namespaces of its own (:func:`new_job_namespace`): its first process (PID 1 there) runs the
    job, and when it exits the kernel kills whatever the submission left behind and frees the
    job's file systems -- nothing it wrote reaches the next job, and there is nothing to walk.
    """
    sizes: list[int] = []
    job = read_msg(inp, sizes)
    if job is None:
        os._exit(EXIT_EOF)
    cap_memory(sizes[0])
    if jobns is not None:
        try:
            new_job_namespace(jobns)
        except OSError:
            jobns = None  # nothing is writable then: the sandbox's own mounts are read-only
    if jobns is None:
        run_supervised(job, inp, out, limits, bpf)
        os._exit(0)
    pid = os.fork()
    if pid == 0:
        try:
            run_supervised(job, inp, out, limits, bpf)
        finally:
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    if not (os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0):
        send_msg(out, {"id": job["id"], "machinery": "job init died: " + exit_text(status)})
    os._exit(0)


def cap_memory(job_bytes):
    """Bound this supervisor's address space (and its job's first process's): what the zygote
    uses, room for the job's own message and a full reply (results are capped at
    ``TOTAL_RESULT_BYTES`` as relayed). The soft limit only: each child sets its own."""
    try:
        with open("/proc/self/statm") as fh:
            used = int(fh.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        used = 1 << 30
    cap = used + 4 * TOTAL_RESULT_BYTES + 8 * job_bytes
    hard = resource.getrlimit(resource.RLIMIT_AS)[1]
    if hard == resource.RLIM_INFINITY or cap < hard:
        resource.setrlimit(resource.RLIMIT_AS, (cap, hard))


def run_supervised(job, inp, out, limits, bpf):
    """Run ``job`` (reading a hardened check's tests only after forking the candidate's process)
    and send the reply; exits the process."""
    candidate = None
    try:
        if job.get("mode") == "check":
            # Fork the candidate's process first, then read the tests (the second message).
            candidate = start_candidate(job, limits, bpf)
            second = read_msg(inp)
            job["check_code"], job["prelude"] = second["check_code"], second.get("prelude")
        reply, pid, rfd = run_job(job, limits, bpf, candidate and candidate[1:])
        if pid is not None:
            kill(pid, rfd)
    except Exception as exc:  # machinery failure: the parent makes the sample abstain
        reply = {"machinery": describe(exc)}
    if candidate is not None:
        os.close(candidate[1])
        kill(candidate[0], candidate[2])
    reply["id"] = job["id"]
    send_msg(out, reply)
    reap()  # after replying: the teardown of killed children overlaps the parent's work
    os._exit(0)


def warm_up():
    """Run, once in the zygote, what every child runs first (the compiler, pickle, json and the
    result encoder): their first use builds caches and state that each forked child would
    otherwise build again, about 2 ms of a 7 ms job."""
    code = compile("def _warm(x, y=1):\n    return [x + y for _ in range(3)]\n", "<warm>", "exec")
    namespace: dict[str, object] = {}
    exec(code, namespace)
    warm = namespace["_warm"]
    assert callable(warm)  # defined just above
    args = pickle.loads(base64.b64decode(base64.b64encode(pickle.dumps(((1, "a", 2.5), {})))))
    ok_payload(warm(args[0][0]), 1 << 16, True)
    err_payload(describe(ValueError("warm-up")))


def wait_for(pid):
    """Wait for child ``pid``; as bubblewrap's PID 1 the zygote also reaps any orphan that ends
    meanwhile (a job's processes, when its supervisor died before them)."""
    while True:
        try:
            done, status = os.waitpid(-1, 0)
        except ChildProcessError:
            return 0
        if done == pid:
            return status


def main():
    # Non-dumpable: children cannot open /proc/<zygote>/mem or its fds to forge replies.
    libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
    inp, out = os.dup(0), os.dup(1)
    isolate_fds((inp, out))
    init = read_msg(inp)
    limits = init["limits"]
    bpf = base64.b64decode(init["bpf"]) if init.get("bpf") else b""
    mounts = init.get("mounts") or []
    probe = init.get("job_namespaces", True)
    del init
    for name in PRELOAD:
        try:
            __import__(name)
        except ImportError:
            pass
    warm_up()
    jobns = mounts if probe and job_namespaces_work(mounts) else None
    send_msg(out, {"ready": True, "pid": os.getpid(), "pidns": jobns is not None})
    while True:
        # Block until the parent sends a job, so the supervisor is forked just in time.
        select.select([inp], [], [])
        pid = os.fork()
        if pid == 0:
            try:
                supervise(inp, out, limits, bpf, jobns)
            finally:
                os._exit(1)
        status = wait_for(pid)
        if os.WIFEXITED(status) and os.WEXITSTATUS(status) == EXIT_EOF:
            return
        if not (os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0):
            # The supervisor died mid-job: say so (the parent retries on a fresh worker).
            send_msg(out, {"id": None, "machinery": "job supervisor died: " + exit_text(status)})


if __name__ == "__main__":
    main()
