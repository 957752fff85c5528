"""A pool of warm sandboxed workers, one per core, each hosting a pre-imported zygote.

Each :class:`Worker` is one sandbox (bubblewrap or the fallback) running ``zygote.py``; it serves
one submission at a time by forking a fresh child. The pool runs a batch of jobs on all workers
from threads (the parent only waits on pipes, so threads are enough). A worker that stops
answering is killed with its whole process group and replaced; its job is retried once, then
reported as a machinery failure (the sample abstains, it is never scored).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import pickle
import queue
import select
import shutil
import signal
import struct
import subprocess
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from rewardplug_code import cgroups, sandbox

__all__ = ["Pool", "Worker", "WorkerError"]

_REPLY_CAP = 256 * 2**20
#: tasks of a worker besides the candidate's: bwrap, zygote, supervisor, the job's first process,
#: child, and the few children killed but not yet reaped (zygote.UNREAPED)
PIDS_OVERHEAD = 10
_START_TIMEOUT = 30.0


class WorkerError(RuntimeError):
    """The sandbox machinery failed (start-up, a dead or unresponsive worker, a broken reply)."""


class Worker:
    """One warm sandbox process running the zygote; not thread-safe (one job at a time)."""

    #: let the zygote make namespaces per job where the kernel allows (tests turn it off to
    #: check what holds without them)
    job_namespaces = True

    def __init__(self, level: str, limits: sandbox.Limits, tmp_mb: int = 16):
        self.level = level
        self.limits = limits
        self.tmp_mb = tmp_mb
        self.proc: subprocess.Popen[bytes] | None = None
        self.cgroup: Path | None = None
        #: the fallback worker's working folder (removed with the worker)
        self.workdir: str | None = None
        #: whether each job runs in namespaces of its own (the zygote's probe says)
        self.pidns: bool | None = None

    def start(self) -> None:
        """Start the sandbox and wait for the zygote's ready message."""
        self.kill()  # what is left of a worker that died by itself (its folder, its cgroup)
        if self.level == sandbox.LEVEL_BWRAP:
            cmd, opts = sandbox.bwrap_command(), sandbox.bwrap_options()
        else:
            cmd, opts = sandbox.fallback_command()
            self.workdir = str(opts["cwd"])
        # every task of the worker counts: the sandbox's own few plus the candidate's
        self.cgroup = cgroups.make_pids_cgroup(self.limits.processes + PIDS_OVERHEAD)
        if self.cgroup is not None:
            if "user" in opts:  # the fallback's worker moves itself in as that user
                with contextlib.suppress(OSError):
                    os.chown(self.cgroup / "cgroup.procs", opts["user"], opts["group"])
            cmd = cgroups.in_cgroup(cmd, self.cgroup)
        bpf = sandbox.seccomp_bpf(self.level != sandbox.LEVEL_BWRAP)
        try:
            self.proc = subprocess.Popen(
                cmd,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                start_new_session=True,  # so the whole sandbox dies with one killpg
                **opts,
            )
            init = {
                "limits": self.limits.as_dict(),
                "bpf": base64.b64encode(bpf or b"").decode(),
                "mounts": sandbox.job_mounts(self.level, self.tmp_mb),
                "job_namespaces": self.job_namespaces,
            }
            self._send(init)
            reply = self._recv(time.monotonic() + _START_TIMEOUT)
        except (OSError, WorkerError) as exc:
            self.kill()
            raise WorkerError(f"the sandbox worker did not start: {exc}") from exc
        if not reply.get("ready"):
            self.kill()
            raise WorkerError(f"the sandbox worker sent {reply!r} instead of ready")
        self.pidns = bool(reply.get("pidns"))

    def run(self, job: dict[str, Any], backstop_s: float) -> dict[str, Any]:
        """Send one job and wait for its reply, at most ``backstop_s`` seconds."""
        if self.proc is None or self.proc.poll() is not None:
            self.start()
        try:
            if "check_code" in job:
                # Two messages: the supervisor forks the candidate's process between them, so
                # that process never holds the tests (see zygote.start_candidate).
                second = ("check_code", "prelude")
                self._send({k: v for k, v in job.items() if k not in second})
                self._send({k: job.get(k) for k in second})
            else:
                self._send(job)
            reply = self._recv(time.monotonic() + backstop_s)
        except (OSError, WorkerError) as exc:
            self.kill()
            raise WorkerError(f"sandbox worker failed during a job: {exc}") from exc
        if reply.get("id") != job["id"]:
            self.kill()
            raise WorkerError("sandbox worker answered a different job")
        return reply

    def kill(self) -> None:
        """SIGKILL the worker's whole process group (the sandbox and everything in it)."""
        proc, self.proc = self.proc, None
        if proc is None:
            self._remove_workdir()
            return
        with contextlib.suppress(OSError):
            os.killpg(proc.pid, signal.SIGKILL)
        for stream in (proc.stdin, proc.stdout):
            with contextlib.suppress(OSError):
                stream.close()  # type: ignore[union-attr]
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)
        cgroup, self.cgroup = self.cgroup, None
        if cgroup is not None:
            with contextlib.suppress(OSError):  # anything left in it (the fallback has no PID ns)
                for pid in (cgroup / "cgroup.procs").read_text().split():
                    with contextlib.suppress(OSError):
                        os.kill(int(pid), signal.SIGKILL)
            cgroups.remove_cgroup(cgroup)
        self._remove_workdir()

    def _remove_workdir(self) -> None:
        workdir, self.workdir = self.workdir, None
        if workdir is not None:
            shutil.rmtree(workdir, ignore_errors=True)

    def _send(self, obj: dict[str, Any]) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        body = json.dumps(obj).encode()
        self.proc.stdin.write(struct.pack(">I", len(body)) + body)
        self.proc.stdin.flush()

    def _recv(self, deadline: float) -> dict[str, Any]:
        assert self.proc is not None and self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        head = self._read(fd, 4, deadline)
        size = struct.unpack(">I", head)[0]
        if size > _REPLY_CAP:
            raise WorkerError(f"reply of {size} bytes exceeds the cap")
        reply = json.loads(self._read(fd, size, deadline))
        if not isinstance(reply, dict):
            raise WorkerError("malformed reply")
        return reply

    @staticmethod
    def _read(fd: int, n: int, deadline: float) -> bytes:
        chunks: list[bytes] = []
        got = 0
        while got < n:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise WorkerError("timed out waiting for the sandbox worker")
            data = os.read(fd, min(n - got, 1 << 20))
            if not data:
                raise WorkerError("the sandbox worker exited")
            chunks.append(data)
            got += len(data)
        return b"".join(chunks)


class Pool:
    """``size`` warm workers; :meth:`run` spreads a batch of jobs over all of them.

    Each worker is owned by one long-lived daemon thread that starts its sandbox and runs its
    jobs: bubblewrap's ``--die-with-parent`` follows the *thread* that started it, so a sandbox
    started from a short-lived thread would die with that thread.
    """

    def __init__(self, level: str, limits: sandbox.Limits, size: int, tmp_mb: int = 16):
        self.level = level
        self._limit = "+pids.max" if cgroups.pids_cgroup_root() is not None else "+rlimit-nproc"
        self.workers = [Worker(level, limits, tmp_mb) for _ in range(max(1, size))]
        self._todo: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._closed = False

    @property
    def isolation(self) -> str:
        """What ``detail.isolation`` reports: the level, ``+pidns`` when every started worker
        runs each job in a PID namespace of its own, and the task limit in force."""
        started = [w.pidns for w in self.workers if w.pidns is not None]
        pidns = "+pidns" if started and all(started) else ""
        return self.level + pidns + self._limit

    def _ensure_threads(self) -> None:
        with self._lock:
            if self._closed:
                raise WorkerError("the pool is closed")
            if not self._threads:
                for w in self.workers:
                    t = threading.Thread(target=self._serve, args=(w,), daemon=True)
                    t.start()
                    self._threads.append(t)

    def _serve(self, worker: Worker) -> None:
        while True:
            item = self._todo.get()
            if item is None:  # close(): stop and take the sandbox down
                worker.kill()
                return
            job, backstop, future = item
            try:
                future.set_result(self._run_one(worker, job, backstop))
            except BaseException as exc:  # never lose a job: report it as a machinery failure
                future.set_result(WorkerError(f"{type(exc).__name__}: {exc}"))

    def run(self, jobs: Sequence[dict[str, Any]], backstop: Sequence[float]) -> list[Any]:
        """Run every job; each entry is the worker's reply dict or a :class:`WorkerError`."""
        self._ensure_threads()
        futures = [Future() for _ in jobs]  # type: ignore[var-annotated]
        for job, limit, future in zip(jobs, backstop, futures, strict=True):
            self._todo.put((job, limit, future))
        return [f.result() for f in futures]

    @staticmethod
    def _run_one(worker: Worker, job: dict[str, Any], backstop: float) -> Any:
        error: WorkerError | None = None
        for _ in range(2):  # a fresh worker gets one more try
            try:
                reply = worker.run(job, backstop)
            except WorkerError as exc:
                error = exc
                continue
            if "machinery" not in reply:
                return reply
            worker.kill()  # a supervisor died: never reuse that worker
            error = WorkerError(str(reply["machinery"]))
        # The job broke two fresh workers. Whose fault? A fresh worker's own health probe
        # decides: if it passes, the machinery works and the submission broke it -- a 0 for the
        # submission (every case fails), never an abstention it could use to dodge a 0.
        if _healthy(worker):
            return {"violation": f"the submission broke its sandbox worker twice ({error})"}
        return error

    def close(self) -> None:
        """Stop the worker threads and kill every sandbox."""
        with self._lock:
            self._closed = True
            threads, self._threads = self._threads, []
        for _ in threads:
            self._todo.put(None)
        for t in threads:
            t.join(timeout=10)
        for w in self.workers:
            w.kill()


_PROBE = {
    "mode": "call",
    "code": "def probe(x):\n    return x + 1\n",
    "entry_point": "probe",
    "n": 1,
    "cases": [base64.b64encode(pickle.dumps(((41,), {}), protocol=4)).decode()],
    "timeout": 10.0,
    "load_timeout": 10.0,
    "total_timeout": 20.0,
    "result_bytes": 1024,
    "tuples": False,
}


def _healthy(worker: Worker) -> bool:
    """Whether a fresh worker runs a trivial job correctly (the machinery's own check)."""
    worker.kill()
    try:
        reply = worker.run({**_PROBE, "id": "health-probe"}, 30.0)
    except WorkerError:
        return False
    return reply.get("results") == ['{"value": 42}'] and reply.get("faults") == [None]
