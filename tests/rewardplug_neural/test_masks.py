"""Keyed dropout masks: right rate, reproducible, independent of batch position and padding."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from rewardplug_neural.masks import dropout_by_key, row_keys, sample_key


def test_plugin_import_does_not_load_torch():
    code = (
        "import sys, rewardplug_neural.plugin as p; "
        "assert 'torch' not in sys.modules and 'transformers' not in sys.modules, 'heavy import'; "
        "print('ok')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_sources_are_registered(fresh_plugins):
    registry = fresh_plugins.sources()
    assert registry.get("neural_rm").__name__ == "NeuralRMSource"
    assert registry.get("embedding_similarity").__name__ == "EmbeddingSimilaritySource"


@pytest.mark.parametrize("rate", [0.02, 0.1, 0.5])
def test_drop_fraction_and_scaling(rate):
    x = torch.ones(8, 64, 128)
    keys = torch.tensor(row_keys(list(range(8)), [0] * 8, seed=3))
    y = dropout_by_key(x, rate, keys, site=5)
    dropped = (y == 0).float().mean().item()
    assert abs(dropped - rate) < 0.01 + rate * 0.05
    kept = y[y != 0]
    assert torch.allclose(kept, torch.full_like(kept, 1 / (1 - rate)))


@pytest.mark.parametrize("rate", [1e-9, 0.1, 0.5, 0.999999])
def test_mask_is_the_documented_hash_compare_and_keeps_non_finite_values(rate):
    """Element e of row r is kept iff ((h(e) ^ h(r, site)) * C) >= rate * 2**32 - 2**31 (int32,
    wrapping): checked against that formula written out with a plain comparison, at rates whose
    thresholds sit next to the int32 limits; a dropped inf or NaN stays non-finite (x * 0)."""
    from rewardplug_neural.masks import _C32, _GOLDEN, _element_hash, _high32, _signed, mix64

    x = torch.randn(6, 40, 50)
    x[0, 0, :8] = float("inf")
    x[1, 1, :8] = float("nan")
    keys = torch.tensor(row_keys(list(range(6)), [1] * 6, seed=9))
    site = 11
    row_hash = _high32(mix64(keys ^ _signed((site + 1) * _GOLDEN))).view(-1, 1, 1)
    z = torch.bitwise_xor(_element_hash((40, 50), x.device).unsqueeze(0), row_hash) * _C32
    keep = z >= round(rate * 2**32) - 2**31
    want = torch.where(keep, x, x * 0) * (1.0 / (1.0 - rate))
    got = dropout_by_key(x, rate, keys, site)
    assert torch.equal(torch.isnan(got), torch.isnan(want))
    both = ~torch.isnan(want)
    assert torch.equal(got[both], want[both])
    assert torch.isinf(x).any() and not torch.isfinite(got[0, 0, :8]).any()


def test_sites_seeds_and_draws_give_different_masks():
    x = torch.ones(1, 32, 64)
    k0 = torch.tensor(row_keys([7], [0], seed=0))
    masks = [
        dropout_by_key(x, 0.3, k0, site=0),
        dropout_by_key(x, 0.3, k0, site=1),
        dropout_by_key(x, 0.3, torch.tensor(row_keys([7], [1], seed=0)), site=0),
        dropout_by_key(x, 0.3, torch.tensor(row_keys([7], [0], seed=1)), site=0),
    ]
    for i in range(len(masks)):
        for j in range(i + 1, len(masks)):
            assert not torch.equal(masks[i], masks[j])
    assert torch.equal(masks[0], dropout_by_key(x, 0.3, k0, site=0))  # reproducible


@settings(max_examples=30, deadline=None)
@given(
    rows=st.integers(1, 5),
    length=st.integers(1, 12),
    pad=st.integers(0, 6),
    hidden=st.integers(1, 9),
    rate=st.floats(0.05, 0.9),
    perm_seed=st.integers(0, 1000),
)
def test_mask_of_a_row_ignores_batch_order_and_padding(rows, length, pad, hidden, rate, perm_seed):
    keys = torch.tensor(row_keys([sample_key(str(i)) for i in range(rows)], [0] * rows, seed=11))
    x = torch.randn(rows, length + pad, hidden, generator=torch.Generator().manual_seed(perm_seed))
    full = dropout_by_key(x, rate, keys, site=2)
    perm = torch.randperm(rows, generator=torch.Generator().manual_seed(perm_seed))
    shuffled = dropout_by_key(x[perm], rate, keys[perm], site=2)
    assert torch.equal(shuffled, full[perm])
    unpadded = dropout_by_key(x[:, :length].contiguous(), rate, keys, site=2)
    assert torch.equal(unpadded, full[:, :length])


@settings(max_examples=25, deadline=None)
@given(
    st.integers(1, 3),
    st.integers(2, 5),
    st.integers(1, 9),
    st.sampled_from([0.1, 0.5]),
    st.booleans(),
    st.booleans(),
)
def test_attention_shared_across_copies_equals_every_copy_its_own(
    n, k, length, rate, masked, differ
):
    """``copies``: the scores and softmax of K equal copies are computed once per input, each
    copy keeps its own dropout mask -- the output is bit for bit that of all rows; when the
    copies' queries differ it falls back to all rows."""
    from rewardplug_neural.attention import eager_attention

    heads, dim = 2, 4
    gen = torch.Generator().manual_seed(n * 100 + k * 10 + length)
    query = torch.randn(n, heads, length, dim, generator=gen).repeat_interleave(k, 0)
    key = torch.randn(n, heads, length, dim, generator=gen).repeat_interleave(k, 0)
    value = torch.randn(n * k, heads, length, dim, generator=gen)
    if differ:
        query[1] += 1.0
    mask = None
    if masked:
        mask = torch.zeros(n, 1, 1, length)
        mask[0, ..., length // 2 :] = torch.finfo(torch.float32).min
        mask = mask.repeat_interleave(k, 0)
    keys = torch.tensor(row_keys([i for i in range(n) for _ in range(k)], list(range(k)) * n, 0))

    class Module:
        pass

    calls: list[int] = []
    softmax = torch.softmax

    def counting(x, *args, **kwargs):
        calls.append(x.shape[0])
        return softmax(x, *args, **kwargs)

    every_row, _ = eager_attention(Module(), query, key, value, mask, rate=rate, keys=keys, site=3)
    torch.softmax = counting
    try:
        shared, _ = eager_attention(
            Module(), query, key, value, mask, rate=rate, keys=keys, site=3, copies=k
        )
    finally:
        torch.softmax = softmax
    assert torch.equal(shared, every_row)
    assert sum(calls) == (n * k if differ else n)
