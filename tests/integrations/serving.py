"""Test helper: a real server process on 127.0.0.1 (``rewardplug serve`` or any command)."""

from __future__ import annotations

import resource
import socket
import subprocess
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def raise_open_files(wanted: int) -> int:
    """Raise this process's soft RLIMIT_NOFILE to ``wanted`` (at most the hard limit, which an
    unprivileged process cannot raise); the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


@contextmanager
def server_process(
    cmd: Sequence[str],
    port: int,
    env: dict[str, str],
    *,
    open_files: int | None = None,
    stderr_lines: list[str] | None = None,
) -> Iterator[str]:
    """Run ``cmd`` until ``GET /health`` on ``port`` answers 200; yield its base URL; stop it.

    ``open_files``: raise the server's RLIMIT_NOFILE soft limit to this (one socket per
    in-flight request). The server's stderr is read by a thread (so a chatty server never blocks
    on a full pipe) into ``stderr_lines`` when given."""
    preexec = None if open_files is None else (lambda: raise_open_files(open_files))
    proc = subprocess.Popen(
        list(cmd), env=env, stderr=subprocess.PIPE, text=True, preexec_fn=preexec
    )
    lines: list[str] = [] if stderr_lines is None else stderr_lines
    reader = threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True)
    reader.start()
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                reader.join(timeout=5)
                raise AssertionError("server exited:\n" + "".join(lines))
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "server did not come up"
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        reader.join(timeout=5)
