# ruff: noqa: SIM105, SIM115, UP031  (sandbox-side code: plain stdlib idioms, no contextlib)
"""The child side of the sandbox worker: load the candidate, run ``call``/``stdio``/``check`` cases
and report each result as a frame; values are made plain (JSON-safe, capped) before they leave.

Part of the worker program (see :mod:`rewardplug_code.zygote_wire` for how the parts are joined).
"""

import base64
import json
import os
import pickle
import select
import struct
import sys
import time

from rewardplug_code.zygote_harden import harden, isolate_fds
from rewardplug_code.zygote_wire import BIG, BIGINT, MAX_ERROR, TUPLE, frame, read_exact, write_all

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
        head = read_exact(req_r, 4)
        if head is None:
            os._exit(0)
        args, kwargs = pickle.loads(read_exact(req_r, struct.unpack(">I", head)[0]))
        if load_error is not None:
            payload = err_payload(load_error)
        else:
            try:
                payload = ok_payload(fn(*args, **kwargs), cap, tuples=True)
            except BaseException as exc:
                payload = err_payload(describe(exc))
        write_all(resp_w, struct.pack(">I", len(payload)) + payload)
