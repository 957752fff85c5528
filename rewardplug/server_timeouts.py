"""Time limits on *reading* an HTTP request, for ``rewardplug serve``'s uvicorn.

uvicorn has no limit on how long a client may take to send a request's headers or body, so a
client that never finishes holds its connection forever. :func:`guarded_http_protocol` makes a
uvicorn HTTP protocol class (httptools or h11) that answers such a client 408 and closes it.
uvicorn is imported inside the function, so importing this module stays light.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

__all__ = ["guarded_http_protocol"]

#: a read deadline that fires this late means the event loop was busy, not the client slow: the
#: client gets this much more time, so bytes already waiting in the kernel are read first
_LATE_S = 0.5


class _ReadDeadlines:
    """Mixin for a uvicorn HTTP protocol: time limits on *reading* each request.

    A connection must deliver a request's headers within ``header_timeout_s`` of its first byte
    (or of being accepted) and the body within ``body_timeout_s`` of the headers; past either it
    is answered ``408`` (JSON, ``Connection: close``) when it had sent part of a request and no
    answer had started, and closed in any case. Nothing is limited while the server is not
    reading (pipelined requests waiting their turn, a paused read) or once the request has been
    read: an answer may take as long as it takes (``--group-timeout``); between requests
    uvicorn's keep-alive timeout applies. uvicorn has no such limits of its own: without them a
    client that never finishes its headers or body holds its connection forever.
    """

    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0
    _read_phase: str | None = None
    _read_timer: asyncio.TimerHandle | None = None
    _read_due: float = 0.0
    _sent_bytes: bool = False

    # uvicorn's protocol attributes this mixin uses
    loop: asyncio.AbstractEventLoop
    transport: asyncio.Transport
    flow: Any
    cycle: Any

    def _reading(self, phase: str, *, sent_bytes: bool = True) -> None:
        """Start the deadline of ``phase`` ("headers" or "body") unless it is running."""
        self._sent_bytes = self._sent_bytes or sent_bytes
        if self._read_phase == phase and self._read_timer is not None:
            return
        self._done_reading()
        self._read_phase = phase
        limit = self.header_timeout_s if phase == "headers" else self.body_timeout_s
        self._arm_read_timer(self.loop.time() + limit)

    def _arm_read_timer(self, due: float) -> None:
        self._read_due = due
        self._read_timer = self.loop.call_at(due, self._read_deadline_passed)

    def _done_reading(self) -> None:
        if self._read_timer is not None:
            self._read_timer.cancel()
        self._read_timer = None
        self._read_phase = None

    def _read_deadline_passed(self) -> None:
        self._read_timer = None
        if self.transport.is_closing():
            return
        now = self.loop.time()
        if self.flow.read_paused:  # the server stopped reading, not the client
            limit = self.header_timeout_s if self._read_phase == "headers" else self.body_timeout_s
            self._arm_read_timer(now + limit)
            return
        if now - self._read_due > _LATE_S:  # the loop was busy: read what is waiting first
            self._arm_read_timer(now + _LATE_S)
            return
        phase, self._read_phase = self._read_phase, None
        cycle = self.cycle
        answer = self._sent_bytes
        if phase == "body" and cycle is not None:
            answer = not cycle.response_started  # else: its answer (e.g. a 405) went out
            if answer:  # the app reading the body sees a disconnect and answers nothing
                cycle.disconnected = True
                cycle.message_event.set()
        elif cycle is not None and not cycle.response_complete:
            answer = False  # half a pipelined request behind an answer being written
        if answer:
            limit, flag = (
                (self.header_timeout_s, "--header-timeout")
                if phase == "headers"
                else (self.body_timeout_s, "--body-timeout")
            )
            self.transport.write(_timeout_response(phase or "headers", limit, flag))
        self.transport.close()


def _timeout_response(phase: str, limit: float, flag: str) -> bytes:
    body = json.dumps(
        {"error": f"the request {phase} did not arrive within {limit:g} s ({flag}); closed"},
        separators=(",", ":"),
    ).encode()
    return (
        b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
        b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(body), body)
    )


def guarded_http_protocol(
    header_timeout_s: float = 10.0, body_timeout_s: float = 30.0, base: str = "auto"
) -> type:
    """A uvicorn HTTP protocol class (``uvicorn.Config(http=...)``) that closes clients that do
    not send a request's headers within ``header_timeout_s`` or its body within
    ``body_timeout_s`` (:class:`_ReadDeadlines`). ``base``: ``"httptools"``, ``"h11"`` or
    ``"auto"`` (httptools when installed, as uvicorn does)."""
    if header_timeout_s <= 0 or body_timeout_s <= 0:
        raise ValueError("header_timeout_s and body_timeout_s must be > 0")
    if base == "auto":
        try:
            import httptools  # noqa: F401
        except ImportError:
            base = "h11"
        else:
            base = "httptools"
    if base == "httptools":
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

        class GuardedHttpTools(_ReadDeadlines, HttpToolsProtocol):
            def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
                super().connection_made(transport)
                self._reading("headers", sent_bytes=False)

            def connection_lost(self, exc: Exception | None) -> None:
                self._done_reading()
                super().connection_lost(exc)

            def on_message_begin(self) -> None:
                super().on_message_begin()
                self._reading("headers")

            def on_headers_complete(self) -> None:
                self._reading("body")
                super().on_headers_complete()

            def on_message_complete(self) -> None:
                self._done_reading()
                super().on_message_complete()

        cls: type[_ReadDeadlines] = GuardedHttpTools
    elif base == "h11":
        import h11
        from uvicorn.protocols.http.h11_impl import H11Protocol

        class GuardedH11(_ReadDeadlines, H11Protocol):
            def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
                super().connection_made(transport)
                self._reading("headers", sent_bytes=False)

            def connection_lost(self, exc: Exception | None) -> None:
                self._done_reading()
                super().connection_lost(exc)

            def handle_events(self) -> None:
                super().handle_events()
                state = self.conn.their_state
                if state is h11.SEND_BODY:
                    self._reading("body")
                elif state is h11.IDLE:
                    # part of a request waiting in h11's buffer, or a new connection's first bytes
                    if self.conn.trailing_data[0] or self._read_phase == "headers":
                        self._reading("headers", sent_bytes=bool(self.conn.trailing_data[0]))
                else:  # the request is read (or the connection is done)
                    self._done_reading()

        cls = GuardedH11
    else:
        raise ValueError(f"base must be 'auto', 'httptools' or 'h11', not {base!r}")
    cls.header_timeout_s = float(header_timeout_s)
    cls.body_timeout_s = float(body_timeout_s)
    return cls
