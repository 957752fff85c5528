# ruff: noqa: SIM105, SIM115, UP031  (sandbox-side code: plain stdlib idioms, no contextlib)
"""The warm worker that runs inside the sandbox (stdlib only; never imported by the scorer).

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
import ctypes
import json
import os
import pickle
import resource
import select
import signal
import struct
import sys
import time

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

_libc = ctypes.CDLL(None, use_errno=True)
_libc.prctl.argtypes = [
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


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


# ---------------------------------------------------------------- framing


def read_msg(fd, sizes=None):
    """One length-prefixed JSON message (None at EOF); its size is appended to ``sizes``."""
    head = _read_exact(fd, 4)
    if head is None:
        return None
    size = struct.unpack(">I", head)[0]
    if sizes is not None:
        sizes.append(size)
    return json.loads(_read_exact(fd, size))


def _read_exact(fd, n):
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


# ---------------------------------------------------------------- hardening (in the child)


def landlock(paths):
    """Restrict file access to reading (and executing) below ``paths`` (Linux Landlock).

    Used by the fallback level, where the real file system is visible: test data, the project and
    ``/proc/<pid>/environ`` of other processes become unreadable.
    """
    syscall = _libc.syscall
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
    if _libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "PR_SET_NO_NEW_PRIVS failed")
    if syscall(446, ruleset, 0) != 0:
        raise OSError(ctypes.get_errno(), "landlock_restrict_self failed")
    os.close(ruleset)


def drop_capabilities():
    """Empty every capability set (matters in the fallback when the scorer runs as root)."""
    header = struct.pack("=Ii", 0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, this process
    data = bytes(24)  # two {effective, permitted, inheritable} triples, all zero
    if _libc.capset(ctypes.c_char_p(header), ctypes.c_char_p(data)) != 0:
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
        fprog = _SockFprog(len(bpf) // 8, ctypes.addressof(prog))
        if _libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "PR_SET_NO_NEW_PRIVS failed")
        if _libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.addressof(fprog), 0, 0) != 0:
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


# ---------------------------------------------------------------- child-side harness


def plain(value, depth=0, tuples=False):
    """Strict conversion to JSON data: exact builtin types only (subclasses are not data).

    ``tuples``: keep tuples apart from lists (for the checker, whose test code compares with
    tuple literals; the parent compares plain JSON, where both are lists).
    """
    if depth > 100:
        raise TypeError("value nested too deeply")
    t = type(value)
    if value is None or t is bool or t is str or t is float:
        return value
    if t is int:
        # Decimal conversion of huge ints is quadratic (and capped by Python); hex is linear.
        return value if -BIG < value < BIG else {BIGINT: hex(value)}
    if tuples and t is tuple:
        return {TUPLE: [plain(v, depth + 1, tuples) for v in value]}
    if t is list or t is tuple:
        return [plain(v, depth + 1, tuples) for v in value]
    if t is dict:
        if len(value) == 1 and (BIGINT in value or TUPLE in value):
            # the wire's own markers: a dict shaped like one would decode as an int or a tuple
            raise TypeError(
                "a dict with a reserved key (%s) is not plain data" % (BIGINT + "|" + TUPLE)
            )
        out = {}
        for k, v in dict.items(value):
            if type(k) is not str:
                raise TypeError("dict key of type %s is not plain data" % type(k).__name__)
            out[k] = plain(v, depth + 1, tuples)
        return out
    raise TypeError("returned %s, which is not plain data" % t.__name__)


def describe(exc):
    try:
        text = "%s: %s" % (type(exc).__name__, exc)
    except BaseException:
        text = "exception of a type whose message cannot be shown"
    return text[:MAX_ERROR]


def ok_payload(value, cap, tuples=False):
    data = json.dumps({"value": plain(value, 0, tuples)}, ensure_ascii=True).encode()
    if len(data) > cap:
        raise ValueError("result larger than %d bytes" % cap)
    return data


def err_payload(text):
    return json.dumps({"error": text}, ensure_ascii=True).encode()


def load_candidate(job, name):
    namespace = {"__name__": name, "__builtins__": __builtins__}
    code = compile(job["code"], "<candidate>", "exec")
    exec(code, namespace)
    return namespace


def load_entry_point(job):
    """Run the candidate's module code and return its entry-point function (raises otherwise)."""
    fn = load_candidate(job, "__candidate__").get(job["entry_point"])
    if not callable(fn):
        raise NameError("entry point %r is not defined as a function" % job["entry_point"])
    return fn


def child_call(job, start, wfd):
    cases = job["cases"]
    loads, b64decode = pickle.loads, base64.b64decode  # bound before the candidate can patch them
    cap = job["result_bytes"]
    tuples = bool(job.get("tuples"))  # assert-style tests: a tuple is not a list
    try:
        fn = load_entry_point(job)
    except BaseException as exc:
        write_all(wfd, frame(b"A", err_payload("loading the code failed: " + describe(exc))))
        os._exit(0)
    write_all(wfd, frame(b"L", b""))
    for i in range(start, len(cases)):
        args, kwargs = loads(b64decode(cases[i]))
        try:
            payload, marker = ok_payload(fn(*args, **kwargs), cap, tuples), b"P"
        except BaseException as exc:
            payload, marker = err_payload(describe(exc)), b"F"
        write_all(wfd, frame(marker, payload))
        if marker == b"F":
            os._exit(0)
    os._exit(0)


def child_stdio(job, start, wfd):
    stdin = job["stdin"][start].encode()
    cap = job["result_bytes"]
    in_fd = os.memfd_create("stdin")
    write_all(in_fd, stdin)
    os.lseek(in_fd, 0, 0)
    out_fd = os.memfd_create("stdout")
    os.dup2(in_fd, 0)
    os.dup2(out_fd, 1)
    sys.stdin = open(0, closefd=False)
    sys.stdout = open(1, "w", closefd=False)
    keep = os.dup(out_fd)
    error = None
    try:
        code = compile(job["code"], "<candidate>", "exec")
    except BaseException as exc:
        write_all(wfd, frame(b"A", err_payload("compiling the code failed: " + describe(exc))))
        os._exit(0)
    try:
        exec(code, {"__name__": "__main__", "__builtins__": __builtins__})
    except SystemExit as exc:
        if exc.code not in (None, 0):
            error = "program exited with status %r" % (exc.code,)
    except BaseException as exc:
        error = describe(exc)
    try:
        sys.stdout.flush()
    except BaseException:
        pass
    if error is not None:
        write_all(wfd, frame(b"F", err_payload(error)))
        os._exit(0)
    size = os.lseek(keep, 0, 2)
    if size > cap:
        write_all(wfd, frame(b"F", err_payload("output larger than %d bytes" % cap)))
        os._exit(0)
    out = os.pread(keep, size, 0).decode("utf-8", "replace")
    write_all(wfd, frame(b"P", json.dumps({"value": out}, ensure_ascii=True).encode()))
    os._exit(0)


def child_check(job, start, wfd, limits, bpf, candidate_fds):
    """Trusted checker: runs the test code; the candidate lives in a separate process.

    That process (see :func:`start_candidate`) was forked by the supervisor *before* the test
    code was read, so neither its memory nor anything it can reach holds the tests or their
    values. Every ``candidate(...)`` call crosses a strict JSON boundary, so the test code
    compares plain data the candidate cannot forge.
    """
    req_w, resp_r = candidate_fds
    harden(limits, bpf)
    timeout = job["timeout"]

    called: list[bool] = []  # not empty once the test code has called the candidate

    def candidate(*args, **kwargs):
        if not called:
            called.append(True)
        try:
            body = pickle.dumps((args, kwargs), protocol=4)
        except Exception as exc:
            raise RuntimeError("arguments cannot be sent to the candidate: %s" % exc) from None
        write_all(req_w, struct.pack(">I", len(body)) + body)
        reply = read_reply(resp_r, time.monotonic() + timeout, job["result_bytes"])
        if "error" in reply:
            raise RuntimeError("candidate failed: %s" % str(reply["error"])[:MAX_ERROR])
        return reply["value"]

    namespace: dict[str, object] = {"__name__": "__check__", "__builtins__": __builtins__}
    try:
        # The prompt's definitions the tests use (trusted, like the tests), one at a time: one
        # that fails (an import the sandbox lacks) is left out, and a test that needs it fails
        # with a NameError, reported as the tests' own failure.
        for source in job.get("prelude") or ():
            try:
                exec(compile(source, "<prompt>", "exec"), namespace)
            except Exception:
                pass
        exec(compile(job["check_code"], "<tests>", "exec"), namespace)
        # HumanEval's harness runs the test next to the solution, so a test may call the entry
        # point by its name (HumanEval/33 does): that name is the candidate too.
        namespace[job["entry_point"]] = candidate
        check = namespace["check"]
        if not callable(check):
            raise TypeError("the test code's check is not a function")
        check(candidate)
        payload = json.dumps({"value": True}).encode()
    except BaseException as exc:
        if not called or tests_fault(exc):
            payload = json.dumps({"tests_error": describe(exc)}, ensure_ascii=True).encode()
        else:
            payload = err_payload("check failed: " + describe(exc))
    write_all(wfd, frame(b"P", payload))
    os._exit(0)


def tests_fault(exc):
    """Whether ``exc`` is the test code's own failure whatever the candidate answered: a name it
    needs is undefined or a module it imports is missing, raised by a line of the test code or
    the prompt itself (not by ``eval`` of a candidate's answer, nor inside the candidate)."""
    if not isinstance(exc, (NameError, ImportError)):
        return False
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return tb is not None and tb.tb_frame.f_code.co_filename in ("<tests>", "<prompt>")


def start_candidate(job, limits, bpf):
    """Fork the process that answers a hardened check's ``candidate(...)`` calls.

    Called by the supervisor before it reads the test code (the job's second message): the
    invariant is that the candidate's process never holds the tests.
    """
    req_r, req_w = os.pipe()
    resp_r, resp_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.setpgid(0, 0)
            isolate_fds((req_r, resp_w))
            harden(limits, bpf)
            serve_candidate(job, req_r, resp_w)
        finally:
            os._exit(0)
    os.close(req_r)
    os.close(resp_w)
    try:
        os.setpgid(pid, pid)
    except OSError:
        pass
    return pid, req_w, resp_r


def read_reply(fd, deadline, cap):
    head = b""
    body = b""
    need = 4
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("candidate call timed out")
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            continue
        data = os.read(fd, 65536)
        if not data:
            raise RuntimeError("candidate process died")
        if len(head) < 4:
            head += data
            if len(head) < 4:
                continue
            data, head = head[4:], head[:4]
            need = struct.unpack(">I", head)[0]
            if need > cap:
                raise RuntimeError("candidate reply too large")
        body += data
        if len(body) >= need:
            value = json.loads(body[:need], object_hook=_checker_hook)
            if type(value) is not dict:
                raise RuntimeError("malformed candidate reply")
            return value


def _checker_hook(obj):
    if len(obj) == 1:
        if type(obj.get(TUPLE)) is list:
            return tuple(obj[TUPLE])
        if type(obj.get(BIGINT)) is str:
            return int(obj[BIGINT], 16)
    return obj


def serve_candidate(job, req_r, resp_w):
    cap = job["result_bytes"]
    try:
        fn = load_entry_point(job)
        load_error = None
    except BaseException as exc:
        load_error = "loading the code failed: " + describe(exc)
    while True:
        head = _read_exact(req_r, 4)
        if head is None:
            os._exit(0)
        args, kwargs = pickle.loads(_read_exact(req_r, struct.unpack(">I", head)[0]))
        if load_error is not None:
            payload = err_payload(load_error)
        else:
            try:
                payload = ok_payload(fn(*args, **kwargs), cap, tuples=True)
            except BaseException as exc:
                payload = err_payload(describe(exc))
        write_all(resp_w, struct.pack(">I", len(payload)) + payload)


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
    if _libc.unshare(flags) != 0:
        raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWUSER | CLONE_NEWPID) failed")
    if not mounts:
        return
    # A non-dumpable process's /proc files belong to root, so it cannot write its own maps: the
    # job's first process is dumpable for these three writes (no other process of the job
    # exists yet, and the earlier job's are gone with its namespaces).
    _libc.prctl(PR_SET_DUMPABLE, 1, 0, 0, 0)
    try:
        _write_proc("uid_map", "%d %d 1" % (uid, uid))
        _write_proc("setgroups", "deny")
        _write_proc("gid_map", "%d %d 1" % (gid, gid))
    finally:
        _libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
    for path, options in mounts:
        flags = MS_NOSUID | MS_NODEV | MS_NOEXEC
        if _libc.mount(b"tmpfs", path.encode(), b"tmpfs", flags, options.encode()) != 0:
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
    _libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
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
