"""embedding_similarity with the real bundled all-MiniLM-L6-v2 encoder."""

from __future__ import annotations

import pytest
import torch
from rewardplug_neural.embedding_source import EmbeddingSimilaritySource

from rewardplug.types import Sample

REF = "A cat is sitting on a mat."
PAIRS = [
    Sample(prompt="q", response="The cat sat on the mat.", reference=REF),
    Sample(prompt="q", response="Stock markets fell sharply today.", reference=REF),
    Sample(prompt="q", response=REF, reference=REF),
]


@pytest.fixture(scope="module")
def minilm():
    return EmbeddingSimilaritySource(mc_samples=6, device="cpu")


def test_minilm_runs_for_real_and_matches_sentence_transformers(minilm, minilm_dir):
    scores = minilm.score(PAIRS)
    assert all(s.ok for s in scores)
    assert scores[0].value > 0.7 > 0.3 > scores[1].value
    assert minilm.load().extra["pooling"] == "mean"
    st = pytest.importorskip("sentence_transformers")
    model = st.SentenceTransformer(str(minilm_dir), device="cpu")
    emb = model.encode([p.response for p in PAIRS[:2]] + [REF], normalize_embeddings=True)
    expected = [float(emb[0] @ emb[2]), float(emb[1] @ emb[2])]
    assert [s.value for s in scores[:2]] == pytest.approx(expected, abs=1e-5)


def test_draws_vary_and_identical_texts_stay_identical(minilm):
    near, far, same = minilm.score(PAIRS)
    assert near.std > 1e-3 and far.std > 1e-3
    # the same text gets the same masks in every draw, so its cosine with itself is 1 every time
    assert same.value == pytest.approx(1.0, abs=1e-5)
    assert same.draws == pytest.approx([1.0] * 6, abs=1e-5)


def test_missing_reference_abstains_and_others_still_score(minilm):
    out = minilm.score(
        [
            Sample(prompt="q", response="hello"),
            PAIRS[0],
            Sample(prompt="q", response="x", reference="  "),
        ]
    )
    assert out[0].status == "abstain" and "reference" in out[0].reason
    assert out[1].ok
    assert out[2].status == "abstain"


def test_reference_from_a_dataset_column(minilm):
    src = EmbeddingSimilaritySource(mc_samples=2, device="cpu", reference_field="ground_truth")
    s = src.score([Sample(prompt="q", response=REF, ground_truth=REF)])[0]
    assert s.ok and s.value == pytest.approx(1.0, abs=1e-5)


def test_mc_layers_one_is_cheap_but_still_stochastic(minilm_dir):
    src = EmbeddingSimilaritySource(mc_samples=4, device="cpu", mc_layers=1, seed=5)
    scores = src.score(PAIRS[:2])
    assert all(s.std > 1e-4 for s in scores)
    full = EmbeddingSimilaritySource(mc_samples=4, device="cpu", seed=5).score(PAIRS[:2])
    assert scores[0].value == pytest.approx(full[0].value, abs=1e-6)
    # fewer stochastic layers -> less spread
    assert sum(s.std for s in scores) < sum(s.std for s in full)


def test_long_texts_are_truncated_and_reported(minilm):
    s = minilm.score([Sample(prompt="q", response="word " * 600, reference=REF)])[0]
    assert s.ok
    trunc = s.detail["response"]["truncation"]
    assert trunc["kept_tokens"] == 256 and trunc["original_tokens"] > 600


def test_empty_response_is_scored(minilm):
    s = minilm.score([Sample(prompt="q", response="", reference=REF)])[0]
    assert s.ok and -1.0 <= s.value <= 1.0


def test_dropout_rate_raises_the_spread(minilm_dir):
    low = EmbeddingSimilaritySource(mc_samples=8, device="cpu", dropout_rate=0.02).score(PAIRS[:2])
    high = EmbeddingSimilaritySource(mc_samples=8, device="cpu", dropout_rate=0.2).score(PAIRS[:2])
    assert sum(s.std for s in high) > 2 * sum(s.std for s in low)
    assert low[0].value == pytest.approx(high[0].value, abs=1e-6)  # value is deterministic
    assert torch.get_num_threads() >= 1


def test_a_batch_without_any_reference_abstains_whole(minilm):
    """No sample has a reference: every one abstains with the reason (it once crashed)."""
    scores = minilm.score([Sample(prompt="q", response="a"), Sample(prompt="q", response="b")])
    assert [s.status for s in scores] == ["abstain", "abstain"]
    assert all("reference" in s.reason for s in scores)
