"""A tiny OpenAI-compatible chat-completions server on 127.0.0.1 for the rubric judge tests.

``ChatStub(reply)`` serves ``POST /v1/chat/completions``; ``reply(body, n)`` returns the texts
of the ``n`` choices for that request. Every request body is kept in ``requests``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Replier = Callable[[dict[str, Any], int], list[str]]


class ChatStub:
    """Threaded HTTP server answering chat completions with scripted texts."""

    def __init__(self, reply: Replier):
        self.reply = reply
        self.requests: list[dict[str, Any]] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("content-length") or 0)))
                stub.requests.append(body)
                n = int(body.get("n") or 1)
                texts = stub.reply(body, n)
                choices = [
                    {"index": i, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": t}}
                    for i, t in enumerate(texts)
                ]  # fmt: skip
                usage = {"prompt_tokens": 100, "completion_tokens": 10 * n, "total_tokens": 110}
                payload = json.dumps(
                    {"id": "x", "object": "chat.completion", "created": 0,
                     "model": body.get("model"), "choices": choices, "usage": usage}
                ).encode()  # fmt: skip
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def __enter__(self) -> ChatStub:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def user_text(body: dict[str, Any]) -> str:
    """The user message of a request."""
    return next(m["content"] for m in body["messages"] if m["role"] == "user")
