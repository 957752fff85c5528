"""Fixtures for the judge tests: a real chat-completions server on 127.0.0.1, and a tmp cache."""

from __future__ import annotations

import os

import pytest

from tests.chat_server import ChatServer

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # litellm: no price-map download


@pytest.fixture
def serve():
    """``serve(responder, latency_s=0)`` starts a :class:`ChatServer`; stopped after the test."""
    servers: list[ChatServer] = []

    def start(responder, latency_s: float = 0.0) -> ChatServer:
        server = ChatServer(responder, latency_s).__enter__()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.__exit__()


@pytest.fixture(params=["openai", "litellm"])
def client_kind(request) -> str:
    """Both HTTP backends, through their real client libraries."""
    return request.param
