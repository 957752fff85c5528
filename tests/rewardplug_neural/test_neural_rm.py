"""neural_rm on tiny real models loaded through the real loading path (save_pretrained -> load)."""

from __future__ import annotations

import statistics

import pytest
import torch
from rewardplug_neural.rm_source import NeuralRMSource

from rewardplug.types import Sample


def plain_scores(path, samples, chat=False):
    """Reference: a fresh eval-mode model, one sample at a time, no rewardplug machinery."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(path).eval()
    tok = AutoTokenizer.from_pretrained(path)
    out = []
    with torch.no_grad():
        for s in samples:
            if chat:
                msgs = [
                    {"role": "user", "content": s.prompt},
                    {"role": "assistant", "content": s.response},
                ]
                text = tok.apply_chat_template(msgs, tokenize=False)
                enc = tok(text, add_special_tokens=False, return_tensors="pt")
            else:
                enc = tok(s.prompt, s.response, return_tensors="pt")
            out.append(model(**enc).logits[0, 0].item())
    return out


@pytest.fixture(scope="module")
def bert_source(bert_rm):
    return NeuralRMSource(model=str(bert_rm), mc_samples=6, device="cpu", batch_size=3)


def test_value_is_the_plain_eval_forward(bert_source, bert_rm, samples):
    scores = bert_source.score(samples)
    assert all(s.ok for s in scores)
    expected = plain_scores(bert_rm, samples)
    assert [s.value for s in scores] == pytest.approx(expected, abs=1e-5)
    assert all(s.detail["encoding"] == "pair" for s in scores)


def test_draws_vary_are_seeded_and_reproducible(bert_source, bert_rm, samples):
    first = bert_source.score(samples)
    again = bert_source.score(samples)
    for a, b in zip(first, again, strict=True):
        assert len(a.draws) == 6
        assert a.std > 1e-4, "MC dropout draws should differ"
        assert a.draws == pytest.approx(b.draws, abs=1e-6)
    other_seed = NeuralRMSource(model=str(bert_rm), mc_samples=6, device="cpu", seed=1)
    moved = other_seed.score(samples[:1])[0]
    assert moved.value == pytest.approx(first[0].value, abs=1e-6)
    assert moved.draws != pytest.approx(first[0].draws, abs=1e-6)
    # the draws spread around the deterministic score
    spread = [statistics.mean(s.draws) - s.value for s in first]
    assert max(abs(x) for x in spread) < 10 * max(s.std for s in first)


def test_scores_do_not_depend_on_the_rest_of_the_batch(bert_source, samples):
    together = bert_source.score(samples)
    for i, s in enumerate(samples):
        alone = bert_source.score([s])[0]
        assert alone.value == pytest.approx(together[i].value, abs=1e-5)
        assert alone.draws == pytest.approx(together[i].draws, abs=1e-5)
    reordered = bert_source.score(list(reversed(samples)))[::-1]
    for a, b in zip(reordered, together, strict=True):
        assert a.draws == pytest.approx(b.draws, abs=1e-5)


def test_batched_copies_equal_a_naive_loop(bert_rm, samples):
    # all K copies of every input in one forward, against one row per forward
    batched = NeuralRMSource(
        model=str(bert_rm), mc_samples=5, device="cpu", mc_batch_rows=5 * len(samples)
    ).score(samples)
    looped = NeuralRMSource(model=str(bert_rm), mc_samples=5, device="cpu", mc_batch_rows=1).score(
        samples
    )
    for a, b in zip(batched, looped, strict=True):
        assert a.draws == pytest.approx(b.draws, abs=1e-5)


@pytest.mark.parametrize("chunk_elements", [1, 1 << 30])
def test_attention_chunking_does_not_change_draws(bert_rm, samples, monkeypatch, chunk_elements):
    """Stochastic attention runs a few rows at a time: one row per chunk or all rows at once
    give the same draws (the attention-probability masks are keyed per row)."""
    from rewardplug_neural import attention

    src = NeuralRMSource(model=str(bert_rm), mc_samples=4, device="cpu", mc_batch_rows=64)
    assert src.load().controller.attention_rate > 0, "the test model must drop attention probs"
    default = src.score(samples)
    monkeypatch.setattr(attention, "_CHUNK_ELEMENTS", chunk_elements)
    chunked = src.score(samples)
    for a, b in zip(default, chunked, strict=True):
        assert a.std > 1e-5
        assert a.draws == pytest.approx(b.draws, abs=1e-5)


def mc_layers_inputs(bert_rm, samples, k):
    """An ``mc_layers: 1`` source on the tiny BERT RM, loaded, with the samples' engine inputs:
    ``(source, loaded model, batch, mask keys)``."""
    from rewardplug_neural.encode import collate, encode_pair
    from rewardplug_neural.masks import sample_key

    src = NeuralRMSource(model=str(bert_rm), mc_samples=k, device="cpu", mc_layers=1)
    loaded = src.load()
    enc = [encode_pair(loaded.tokenizer, s.prompt_text, s.response, 512) for s in samples]
    batch = collate(enc, loaded.tokenizer.pad_token_id, "cpu")
    keys = [sample_key(s.prompt_text, s.response) for s in samples]
    return src, loaded, batch, keys


def test_mc_layers_computes_the_first_layers_shared_projections_once_per_input(
    bert_rm, samples, monkeypatch
):
    """With the cached hidden states the K copies enter the top layer equal: its query, key and
    value maps multiply one row per input, the maps after a dropout site all K rows -- and the
    draws are those of running every copy (the cache test below compares them to the full
    model)."""
    import torch.nn.functional as F

    k = 4
    _, loaded, batch, keys = mc_layers_inputs(bert_rm, samples, k)
    top = loaded.controller.layers[-1]
    names = {
        id(m.weight): name for name, m in top.named_modules() if isinstance(m, torch.nn.Linear)
    }
    rows: dict[str, list[int]] = {}
    linear = F.linear

    def counting_linear(x, weight, bias=None):
        if id(weight) in names:
            rows.setdefault(names[id(weight)], []).append(x.shape[0])
        return linear(x, weight, bias)

    monkeypatch.setattr(F, "linear", counting_linear)
    shared = loaded.engine.run(batch, keys, k, seed=0, mc_layers=1)
    monkeypatch.setattr(F, "linear", linear)
    n = len(samples)
    stochastic = {name: calls[1:] for name, calls in rows.items()}  # calls[0]: the value pass
    for name in ("attention.self.query", "attention.self.key", "attention.self.value"):
        assert sum(stochastic[name]) == n, name
    assert sum(stochastic["output.dense"]) == n * k  # after dropout: every copy its own
    plain = loaded.engine.run(batch, keys, k, seed=0, mc_layers=1, reuse_lower=False)
    assert torch.allclose(shared.draws, plain.draws, atol=1e-5)
    assert shared.draws.std(dim=1).min() > 1e-5


def test_mc_layers_computes_the_first_layers_attention_softmax_once_per_input(
    bert_rm, samples, monkeypatch
):
    """In the real model, the top layer's stochastic attention takes one softmax row per input
    (not per copy), and the draws are those of running every copy."""
    k = 4
    _, loaded, batch, keys = mc_layers_inputs(bert_rm, samples, k)
    rows: list[int] = []
    softmax = torch.softmax

    def counting(x, *args, **kwargs):
        rows.append(x.shape[0])
        return softmax(x, *args, **kwargs)

    monkeypatch.setattr(torch, "softmax", counting)
    shared = loaded.engine.run(batch, keys, k, seed=0, mc_layers=1)
    assert sum(rows) == len(samples)
    rows.clear()
    plain = loaded.engine.run(batch, keys, k, seed=0, mc_layers=1, reuse_lower=False)
    assert sum(rows) == len(samples) * k  # no cached hidden states, no sharing: every copy
    assert torch.allclose(shared.draws, plain.draws, atol=1e-5)


def test_shared_projections_keep_a_modules_own_forward_hook(bert_rm, samples):
    """A linear map that already carries an instance-level forward (as accelerate's device hooks
    install) is wrapped, called, and given back unchanged after the stochastic passes."""
    src = NeuralRMSource(model=str(bert_rm), mc_samples=4, device="cpu", mc_layers=1)
    loaded = src.load()
    query = loaded.controller.layers[-1].attention.self.query
    calls = []
    original = query.forward

    def hooked(x):
        calls.append(x.shape[0])
        return original(x)

    query.forward = hooked
    try:
        scores = src.score(samples)
        assert query.__dict__["forward"] is hooked and calls
        assert all(s.ok and s.std > 1e-5 for s in scores)
    finally:
        del query.forward


def test_mc_layers_cache_equals_running_top_layers_on_the_same_hidden_states(bert_rm, samples):
    src, loaded, batch, keys = mc_layers_inputs(bert_rm, samples, 4)
    cached = loaded.engine.run(batch, keys, 4, seed=0, mc_layers=1, reuse_lower=True)
    full = loaded.engine.run(batch, keys, 4, seed=0, mc_layers=1, reuse_lower=False)
    assert torch.allclose(cached.draws, full.draws, atol=1e-5)
    assert torch.allclose(cached.values, full.values)
    everything = loaded.engine.run(batch, keys, 4, seed=0, mc_layers="all")
    assert not torch.allclose(everything.draws, cached.draws, atol=1e-4)
    # the source uses the cache and still varies
    scores = src.score(samples)
    assert all(s.std > 1e-5 for s in scores)
    got = torch.tensor([s.draws for s in scores])
    assert torch.allclose(got, cached.draws[:, :, 0], atol=1e-5)


def test_model_stays_in_eval_mode_and_sampling_stops_after_an_exception(bert_rm, samples):
    src = NeuralRMSource(model=str(bert_rm), mc_samples=3, device="cpu")
    loaded = src.load()
    before = src.score(samples[:1])[0]

    def explode(module, args, output):
        if loaded.controller.state.active:
            raise RuntimeError("boom inside a stochastic pass")

    handle = loaded.controller.layers[-1].register_forward_hook(explode)
    try:
        failed = src.score(samples[:2])
    finally:
        handle.remove()
    assert [s.status for s in failed] == ["error", "error"]
    assert "boom" in failed[0].reason
    assert not loaded.controller.state.active
    assert not any(m.training for m in loaded.model.modules())
    after = src.score(samples[:1])[0]
    assert after.value == pytest.approx(before.value, abs=1e-6)
    assert after.draws == pytest.approx(before.draws, abs=1e-6)


def test_llama_style_model_without_dropout_gets_injected_dropout(llama_rm, samples):
    src = NeuralRMSource(model=str(llama_rm), mc_samples=6, device="cpu", dropout_rate=0.1)
    scores = src.score(samples)
    assert all(s.ok and s.detail["encoding"] == "chat_template" for s in scores)
    assert [s.value for s in scores] == pytest.approx(
        plain_scores(llama_rm, samples, chat=True), abs=1e-5
    )
    assert all(s.std > 1e-4 for s in scores)
    summary = src.load().controller.summary()
    assert summary["hidden"]["sites"] == 6  # attention + MLP outputs of 3 layers
    assert summary["head"]["sites"] == 1
    assert summary["attention_probs"]["rates"] == [0.1]
    alone = src.score(samples[2:3])[0]
    assert alone.draws == pytest.approx(scores[2].draws, abs=1e-5)


def test_each_injected_position_alone_makes_draws_vary(llama_rm, samples):
    src = NeuralRMSource(model=str(llama_rm), mc_samples=4, device="cpu", dropout_rate=0.2)
    loaded = src.load()
    saved = loaded.controller.site_modules
    assert {m.kind for m in saved} == {"hidden", "head"} and len(saved) == 7
    rate = loaded.controller.attention_rate
    for kind in ("attention_probs", "hidden", "head"):
        for m in saved:
            m.p = 0.2 if m.kind == kind else 0.0
        loaded.controller.attention_rate = rate if kind == "attention_probs" else 0.0
        s = src.score(samples[1:2])[0]
        assert s.std > 1e-5, f"dropout at {kind} positions had no effect"
    for m in saved:
        m.p = 0.0
    loaded.controller.attention_rate = 0.0
    assert src.score(samples[1:2])[0].std == 0.0  # and nothing else is random


def test_dropout_rate_overrides_the_model_rate(bert_rm, samples):
    low = NeuralRMSource(model=str(bert_rm), mc_samples=8, device="cpu", dropout_rate=0.01).score(
        samples
    )
    high = NeuralRMSource(model=str(bert_rm), mc_samples=8, device="cpu", dropout_rate=0.3).score(
        samples
    )
    assert statistics.mean(s.std for s in high) > 2 * statistics.mean(s.std for s in low)


def test_single_sample_means_no_dropout(llama_rm, samples):
    src = NeuralRMSource(model=str(llama_rm), mc_samples=1, device="cpu")
    s = src.score(samples[:1])[0]
    assert s.draws == [s.value]


def test_truncation_is_reported_and_keeps_the_response(bert_rm):
    src = NeuralRMSource(model=str(bert_rm), mc_samples=2, device="cpu", max_length=32)
    long_prompt = Sample(prompt="word " * 200, response="short answer")
    long_response = Sample(prompt="question?", response="blah " * 300)
    a, b = src.score([long_prompt, long_response])
    assert a.ok and b.ok
    assert a.detail["tokens"] <= 32 and a.detail["truncation"]["part"] == "prompt"
    assert a.detail["truncation"]["original_tokens"] > 200
    assert b.detail["truncation"]["part"] == "prompt+response"
    assert (
        b.detail["truncation"]["dropped_tokens"] == b.detail["truncation"]["original_tokens"] - 32
    )


def test_chat_truncation_keeps_the_end(llama_rm):
    src = NeuralRMSource(
        model=str(llama_rm), mc_samples=2, device="cpu", dropout_rate=0.1, max_length=24
    )
    s = src.score([Sample(prompt="word " * 100, response="final")])[0]
    assert s.ok and s.detail["tokens"] == 24 and s.detail["truncation"]["part"] == "prompt"


def test_empty_response_is_scored_and_flagged(bert_source):
    s = bert_source.score([Sample(prompt="Say something.", response="")])[0]
    assert s.ok and s.detail["empty_response"] is True


def test_nan_logits_abstain_with_a_reason(bert_rm, samples):
    src = NeuralRMSource(model=str(bert_rm), mc_samples=3, device="cpu")
    loaded = src.load()
    with torch.no_grad():
        loaded.model.classifier.bias.fill_(float("nan"))
    scores = src.score(samples[:2])
    assert all(s.status == "abstain" and "non-finite" in s.reason for s in scores)


def test_pickling_drops_the_model_and_reloads(bert_source, samples):
    import pickle

    bert_source.load()
    clone = pickle.loads(pickle.dumps(bert_source))
    assert clone._loaded is None
    assert clone.score(samples[:1])[0].draws == pytest.approx(
        bert_source.score(samples[:1])[0].draws
    )
