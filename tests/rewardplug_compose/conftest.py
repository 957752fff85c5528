"""Tiny real reward models for the compose tests, built from configs (no hub, seeded weights),
and a real chat-completions server on 127.0.0.1 for a step-grading judge."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.chat_server import ChatServer

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


@pytest.fixture(scope="session")
def tokenizer():
    pytest.importorskip("torch")
    from rewardplug_neural.loading import bundled_minilm
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(bundled_minilm()))


@pytest.fixture(scope="session")
def rm_pair(tmp_path_factory, tokenizer) -> tuple[Path, Path]:
    """Two 3-layer BERT reward models (dropout 0.1) that differ only in their seed."""
    from tests.rewardplug_neural.tiny_models import save_tiny_rm

    return tuple(
        save_tiny_rm(
            tmp_path_factory.mktemp(f"rm{seed}"), tokenizer, "bert", seed=seed, head_gain=20.0
        )
        for seed in (0, 1)
    )


@pytest.fixture
def serve():
    """``serve(responder)`` starts a :class:`ChatServer`; stopped after the test."""
    servers: list[ChatServer] = []

    def start(responder) -> ChatServer:
        server = ChatServer(responder).__enter__()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.__exit__()
