"""Bad configuration fails at stack load with a clear message; stacks use the sources by name."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from pydantic import ValidationError
from rewardplug_neural.embedding_source import EmbeddingSimilaritySource
from rewardplug_neural.rm_source import NeuralRMSource

from tests.rewardplug_neural.tiny_models import save_tiny_rm


def test_nonexistent_model_path(tmp_path):
    with pytest.raises(ValidationError, match="does not exist"):
        NeuralRMSource(model=str(tmp_path / "no_such_model"))
    with pytest.raises(ValidationError, match=r"no config\.json"):
        EmbeddingSimilaritySource(model=str(tmp_path))


def test_offline_hub_id_not_cached(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ValidationError, match="HF_HUB_OFFLINE"):
        NeuralRMSource(model="nobody-xyz/not-a-cached-reward-model")


def test_encoder_is_not_a_reward_model(minilm_dir):
    with pytest.raises(ValidationError, match="not a sequence-classification"):
        NeuralRMSource(model=str(minilm_dir))


def test_classifier_without_trained_head_is_refused(tmp_path, minilm_dir):
    shutil.copytree(minilm_dir, tmp_path / "m")
    cfg_path = tmp_path / "m" / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["architectures"] = ["BertForSequenceClassification"]
    cfg["num_labels"] = 1
    cfg_path.write_text(json.dumps(cfg))
    src = NeuralRMSource(model=str(tmp_path / "m"), device="cpu")  # the config alone looks fine
    with pytest.raises(ValueError, match="no trained classification head"):
        src.load()


def test_dropout_free_model_needs_dropout_rate(llama_rm):
    with pytest.raises(ValidationError, match="dropout_rate"):
        NeuralRMSource(model=str(llama_rm), mc_samples=4)
    NeuralRMSource(model=str(llama_rm), mc_samples=4, dropout_rate=0.05)  # fine


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_requested_without_cuda(bert_rm):
    with pytest.raises(ValidationError, match="CUDA is not available"):
        NeuralRMSource(model=str(bert_rm), device="cuda")


@pytest.mark.parametrize(
    "bad",
    [
        {"mc_samples": 0},
        {"mc_layers": 0},
        {"mc_layers": "top"},
        {"dtype": "int8"},
        {"dropout_rate": 1.5},
        {"temperature": 1},
    ],
)
def test_invalid_fields(bert_rm, bad):
    with pytest.raises(ValidationError):
        NeuralRMSource(model=str(bert_rm), **bad)


def test_multi_output_head_needs_head_index(tmp_path, tokenizer, samples):
    save_tiny_rm(
        tmp_path,
        tokenizer,
        "bert",
        seed=0,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=512,
        num_labels=3,
    )
    with pytest.raises(ValueError, match="head_index"):
        NeuralRMSource(model=str(tmp_path), device="cpu").load()
    picked = NeuralRMSource(model=str(tmp_path), device="cpu", head_index=2, mc_samples=2)
    assert picked.score(samples[:1])[0].ok


def test_stack_uses_the_sources_by_name(bert_rm, samples, fresh_plugins):
    from rewardplug import load_stack

    stack = load_stack(
        {
            "sources": [
                {
                    "name": "rm",
                    "use": "neural_rm",
                    "with": {"model": str(bert_rm), "mc_samples": 4, "device": "cpu"},
                },
                {
                    "name": "sim",
                    "use": "embedding_similarity",
                    "weight": 0.5,
                    "with": {"mc_samples": 4, "device": "cpu"},
                },
            ]
        }
    )
    batch = [
        s.model_copy(update={"reference": "Paris is the capital of France."}) for s in samples[:3]
    ]
    rewards = stack.score(batch)
    assert len(rewards) == 3 and all(r.status == "ok" for r in rewards)
    assert {"rm", "sim"} <= set(rewards[0].sources)
    assert all(len(r.sources["rm"].draws) == 4 for r in rewards)


def test_stack_with_a_bad_model_fails_at_load(tmp_path, fresh_plugins):
    from rewardplug import load_stack

    with pytest.raises(ValueError, match="does not exist"):
        load_stack(
            {
                "sources": [
                    {"name": "rm", "use": "neural_rm", "with": {"model": str(tmp_path / "nope")}}
                ]
            }
        )
