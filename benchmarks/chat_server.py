"""A real chat-completions HTTP server on 127.0.0.1 for the judge and rubric tests and benchmark.

Speaks enough of the OpenAI API (``POST /v1/chat/completions``) for the openai and litellm
clients: ``n`` choices, ``logprobs``/``top_logprobs``, usage. Its behaviour is scripted per
request by a ``responder(body, server) -> Reply`` function, so tests can serve canned grades,
slow answers, 429 with ``Retry-After``, 5xx, garbage bodies and empty ``choices``;
:func:`scripted` adapts a plain ``texts(body, n) -> list[str]`` script. Shared by the test folders
(as ``tests.chat_server``, a re-export) and ``benchmarks/judge_bench.py``.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    """What the server sends for one request."""

    texts: list[str] | None = None  # one text per choice; None: repeat `text` n times
    text: str = "Rating: 7"
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    raw: bytes | None = None  # send these bytes verbatim (garbage)
    delay_s: float = 0.0
    logprobs: list[dict[str, float]] | None = None  # per token {token: logprob}, first = chosen
    error: dict[str, Any] | None = None


Responder = Callable[[dict[str, Any], "ChatServer"], Reply]
TextScript = Callable[[dict[str, Any], int], list[str]]


def scripted(script: TextScript) -> Responder:
    """A responder answering each request with the choices ``script(body, n)``."""
    return lambda body, server: Reply(texts=script(body, int(body.get("n") or 1)))


def user_text(body: dict[str, Any]) -> str:
    """The user message(s) of a request, joined by newlines."""
    return "\n".join(str(m["content"]) for m in body["messages"] if m["role"] == "user")


class _Server(ThreadingHTTPServer):
    # A listen backlog of 5 (socketserver's default) drops the SYNs of a burst of concurrent
    # clients, which then wait a full TCP retransmit (1 s): the fake, not the client, was slow.
    request_queue_size = 256


class ChatServer:
    """Threaded HTTP server (a context manager); ``requests`` records every request body."""

    def __init__(self, responder: Responder, latency_s: float = 0.0):
        self.responder = responder
        self.latency_s = latency_s
        self.requests: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                with server.lock:
                    server.requests.append(body)
                reply = server.responder(body, server)
                time.sleep(server.latency_s + reply.delay_s)
                if reply.raw is not None:
                    payload, ctype = reply.raw, "text/plain"
                elif reply.status != 200:
                    err = reply.error or {"message": f"status {reply.status}", "type": "error"}
                    payload, ctype = json.dumps({"error": err}).encode(), "application/json"
                else:
                    payload, ctype = (
                        json.dumps(_completion(body, reply)).encode(),
                        "application/json",
                    )
                try:
                    self.send_response(reply.status)
                    self.send_header("content-type", ctype)
                    self.send_header("content-length", str(len(payload)))
                    for k, v in reply.headers.items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client timed out and left

        self.httpd = _Server(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def __enter__(self) -> ChatServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _completion(body: dict[str, Any], reply: Reply) -> dict[str, Any]:
    n = int(body.get("n") or 1)
    texts = reply.texts if reply.texts is not None else [reply.text] * n
    choices = []
    for i, text in enumerate(texts):
        choice: dict[str, Any] = {
            "index": i,
            "message": {"role": "assistant", "content": text},
            "finish_reason": "stop",
        }
        if body.get("logprobs") and reply.logprobs is not None:
            k = int(body.get("top_logprobs") or 0)
            content = []
            for position in reply.logprobs:
                (token, lp), *_ = position.items()
                top = sorted(position.items(), key=lambda kv: -kv[1])[:k]
                content.append(
                    {
                        "token": token,
                        "logprob": lp,
                        "bytes": None,
                        "top_logprobs": [{"token": t, "logprob": p, "bytes": None} for t, p in top],
                    }
                )
            choice["logprobs"] = {"content": content}
        choices.append(choice)
    prompt_chars = sum(len(str(m.get("content"))) for m in body.get("messages", []))
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", "judge"),
        "choices": choices,
        "usage": {
            "prompt_tokens": prompt_chars // 4,
            "completion_tokens": 5 * len(choices),
            "total_tokens": prompt_chars // 4 + 5 * len(choices),
        },
    }


def http_options(kind: str, server: ChatServer, tmp_path: Any, **extra: Any) -> dict[str, Any]:
    """``with:`` options for a judge talking to ``server`` with ``kind``'s client."""
    model = "judge" if kind == "openai" else "openai/judge"
    options = {
        "backend": kind,
        "model": model,
        "base_url": server.base_url,
        "cache_dir": str(tmp_path / "cache"),
        "backoff_s": 0.01,
        "backoff_max_s": 2.0,
        "timeout_s": 10.0,
    }
    options.update(extra)
    return options


def closed_port() -> int:
    """A port on 127.0.0.1 where nothing listens (bound, then released)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
