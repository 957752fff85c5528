"""The local chat-completions server of the judge and rubric tests: it lives in
``benchmarks/chat_server.py`` (the judge benchmark serves with it too, and benchmarks import
nothing from ``tests/``); re-exported here under the name the test modules use."""

from benchmarks.chat_server import (
    ChatServer,
    Reply,
    Responder,
    TextScript,
    closed_port,
    http_options,
    scripted,
    user_text,
)

__all__ = [
    "ChatServer",
    "Reply",
    "Responder",
    "TextScript",
    "closed_port",
    "http_options",
    "scripted",
    "user_text",
]
