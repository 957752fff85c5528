"""Per-source ``transform:`` lists: each function against a plain reference, the rules every
transform keeps (abstentions untouched, batch independence, monotone ones keep the tiers), and
the stack-level behaviour (reference scored once per prompt, load-time errors, short forms)."""

from __future__ import annotations

import asyncio
import math
import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import rewardplug
from rewardplug import transforms as tf
from rewardplug.discretizer import discretize
from rewardplug.types import Sample, Score
from tests.core.transform_rewards import CALLS

finite = st.floats(-1e3, 1e3, allow_nan=False)
taus = st.floats(0.01, 100.0)


def source(function="length_score", **extra):
    return {
        "name": "s",
        "use": "python",
        "with": {"function": f"tests.core.transform_rewards:{function}"},
        **extra,
    }


# -- each function against a plain reference -------------------------------------------------


def plain_sigmoid(z: float) -> float:
    return 1 / (1 + math.exp(-z)) if z >= 0 else math.exp(z) / (1 + math.exp(z))


def plain_log_sigmoid(z: float) -> float:
    return -math.log1p(math.exp(-z)) if z >= 0 else z - math.log1p(math.exp(z))


@given(st.lists(finite, min_size=1, max_size=20), finite, taus)
def test_par_and_log_sigmoid_match_plain_formulas(xs, ref, tau):
    got_par = tf.par(np.array(xs), ref, tau)
    got_log = tf.log_sigmoid(np.array(xs), ref, tau)
    for x, p, lg in zip(xs, got_par, got_log, strict=True):
        z = (x - ref) / tau
        assert p == pytest.approx(plain_sigmoid(z), rel=1e-9, abs=1e-12)
        assert lg == pytest.approx(plain_log_sigmoid(z), rel=1e-9, abs=1e-12)
        assert 0.0 <= p <= 1.0 and lg <= 0.0 and math.isfinite(lg)


@given(
    st.lists(finite, min_size=1, max_size=20),
    st.none() | finite,
    st.none() | finite,
    finite,
    finite,
)
def test_clip_and_scale_match_plain_formulas(xs, lo, hi, a, b):
    if lo is not None and hi is not None and lo > hi:
        lo, hi = hi, lo
    clipped = tf.clip(np.array(xs), lo, hi)
    scaled = tf.scale(np.array(xs), a, b)
    for x, c, s in zip(xs, clipped, scaled, strict=True):
        expect = x if lo is None else max(x, lo)
        expect = expect if hi is None else min(expect, hi)
        assert c == expect
        assert s == pytest.approx(a * x + b, rel=1e-12, abs=1e-9)


@given(st.integers(0, 5000), st.integers(1, 2000), st.integers(1, 2000))
def test_overlong_matches_dapo(n, max_tokens, cache):
    cache = min(cache, max_tokens)
    # DAPO's R_length in closed form: 0 up to L_max - L_cache, linear to -1 at L_max, -1 after
    expect = min(0.0, max(-1.0, (max_tokens - cache - n) / cache))
    assert tf.overlong_penalty(n, max_tokens, cache) == pytest.approx(expect, abs=1e-12)


# -- rules of the chain ------------------------------------------------------------------------

CHAINS = [
    [tf.ParSpec(kind="par", tau=2.0)],
    [tf.LogSigmoidSpec(kind="log_sigmoid", tau=0.5)],
    [tf.ClipSpec(kind="clip", min=-1.0, max=3.0)],
    [tf.ScaleSpec(kind="scale", a=-2.0, b=1.0)],
    [tf.OverlongSpec(kind="overlong", max_tokens=4, cache_tokens=2)],
    [tf.ScaleSpec(kind="scale", a=0.1, b=0.0), tf.ParSpec(kind="par", tau=1.0)],
]

scores = st.one_of(
    st.lists(finite, min_size=1, max_size=6).map(lambda d: Score.of(draws=d)),
    st.text(min_size=1, max_size=10).map(Score.abstain),
    st.text(min_size=1, max_size=10).map(Score.error),
)
words = st.lists(st.sampled_from(["a", "bb", "ccc"]), max_size=8).map(" ".join)


@settings(max_examples=60)
@given(st.sampled_from(CHAINS), st.lists(st.tuples(scores, words), min_size=1, max_size=8))
def test_abstentions_pass_untouched_and_each_sample_stands_alone(specs, rows):
    chain = tf.TransformChain(specs)
    batch = [Sample(prompt="p", response=w, reference="ref ref") for _, w in rows]
    given_scores = [s for s, _ in rows]
    ref = {tf.reference_key(batch[0]): Score.of(1.5)}
    together = chain.apply(batch, given_scores, lambda refs: [Score.of(1.5)] * len(refs))
    for sample, before, after in zip(batch, given_scores, together, strict=True):
        if not before.ok:
            assert after is before  # never a number from "could not score"
            continue
        alone = tf.TransformChain(specs).transform(sample, before, ref)
        assert after.value == alone.value and after.draws == alone.draws
        assert len(after.draws) == len(before.draws)
        assert after.detail["untransformed"] == before.value


@settings(max_examples=60)
@given(
    st.sampled_from(
        [
            [tf.ParSpec(kind="par", tau=0.3)],
            [tf.LogSigmoidSpec(kind="log_sigmoid", tau=3.0)],
            [tf.ScaleSpec(kind="scale", a=7.0, b=-2.0)],
        ]
    ),
    st.lists(st.lists(st.floats(-5, 5), min_size=4, max_size=4), min_size=2, max_size=6),
)
def test_increasing_transforms_keep_the_exact_tiers(specs, draws):
    """A strictly increasing draw-wise transform cannot change P(R_i > R_j) between draws, so
    the exact discretizer's tiers stay as they were (what the docs report on real data) --
    as long as it keeps the walk's best-first order: the point estimate is the mean of the
    draws, and a non-linear transform can reorder two means (e.g. log_sigmoid, tau 3: means
    -2.25 and -2.5 of [2, -1, -5, -5] and [-1, -1, -3, -5] become -1.236 and -1.219)."""
    from rewardplug.pairs import p_exact

    chain = tf.TransformChain(specs)
    sample = Sample(prompt="p", response="r", reference="x")
    ref = {tf.reference_key(sample): Score.of(0.5)}
    before = np.array(draws)
    after = np.array([chain.transform(sample, Score.of(draws=d), ref).draws for d in draws])
    # rounding can merge draws that differ in the last bits; otherwise every pair is kept
    if len(np.unique(after)) != len(np.unique(before)):
        return
    k = np.full((1, len(draws)), before.shape[1])
    np.testing.assert_array_equal(
        p_exact(np.sort(after, axis=1)[None], k, 0.0),
        p_exact(np.sort(before, axis=1)[None], k, 0.0),
    )
    order = [np.argsort(-x.mean(axis=1), kind="stable") for x in (before, after)]
    means = [np.sort(x.mean(axis=1)) for x in (before, after)]
    same_order = (order[0] == order[1]).all() and all((np.diff(m) != 0).all() for m in means)
    groups = np.zeros(len(draws), dtype=object)
    if same_order:  # always so for `scale`, often for the others
        assert list(discretize(after, groups, 0.9).tier) == list(
            discretize(before, groups, 0.9).tier
        )


def test_non_finite_results_abstain_with_the_reason():
    chain = tf.TransformChain([tf.ScaleSpec(kind="scale", a=1e308, b=0.0)])
    out = chain.transform(Sample(response="x"), Score.of(draws=[1e10, 2e10]))
    assert out.status == "abstain" and "non-finite" in out.reason


def test_a_chain_pickles_and_still_works():
    chain = tf.TransformChain([tf.ParSpec(kind="par", tau=1.0)])
    sample = Sample(prompt="p", response="r", reference="x")
    chain.apply([sample], [Score.of(2.0)], lambda refs: [Score.of(1.0)] * len(refs))
    again = pickle.loads(pickle.dumps(chain))
    # the reference cache came along: no scorer needed
    assert again.apply([sample], [Score.of(2.0)])[0].value == pytest.approx(plain_sigmoid(1.0))


# -- in a stack ----------------------------------------------------------------------------------


def test_par_centres_on_the_same_sources_score_of_the_reference_once_per_prompt():
    stack = rewardplug.load_stack(
        {"sources": [source(transform=[{"par": {"tau": 2.0}}], noise={"std": 0.5})]}
    )
    rows = [
        {"prompt": "p", "response": "abcd", "reference": "abc"},
        {"prompt": "p", "response": "abcdefgh", "reference": "abc"},
        {"prompt": "q", "response": "a", "reference": "abcdef"},
    ]
    CALLS.clear()
    rewards = stack.score(rows)
    refs_scored = [c for call in CALLS for c in call if c in ("abc", "abcdef")]
    assert sorted(refs_scored) == ["abc", "abcdef"]  # each reference once
    s0 = rewards[0].sources["s"]
    assert s0.value == pytest.approx(plain_sigmoid((4 - 3) / 2.0))
    assert s0.detail["transform"] == [{"kind": "par", "reference_value": 3.0}]
    assert all(0 < d < 1 for d in s0.draws) and len(s0.draws) == 32  # noise, then par
    assert rewards[2].sources["s"].value == pytest.approx(plain_sigmoid((1 - 6) / 2.0))
    # a second batch with the same prompts reuses the cache: no reference is scored again
    CALLS.clear()
    again = stack.score(list(reversed(rows)))
    assert not [c for call in CALLS for c in call if c in ("abc", "abcdef")]
    assert [r.sources["s"].draws for r in reversed(again)] == [
        r.sources["s"].draws for r in rewards
    ]


def test_a_later_centred_transform_centres_on_the_transformed_reference():
    stack = rewardplug.load_stack(
        {"sources": [source(transform=[{"kind": "scale", "a": 2.0}, "log_sigmoid"])]}
    )
    r = stack.score([{"prompt": "p", "response": "abcd", "reference": "ab"}])[0]
    assert r.sources["s"].value == pytest.approx(plain_log_sigmoid(8 - 4))
    assert r.sources["s"].detail["transform"][1]["reference_value"] == 4.0


def test_missing_or_unscorable_reference_abstains_that_source_with_the_reason():
    stack = rewardplug.load_stack(
        {
            "sources": [source(transform=["par"]), {**source("length_draws"), "name": "other"}],
            "on_abstain": "renormalize",
        }
    )
    with pytest.warns(UserWarning, match="could not score 2 of 2"):
        out = stack.score([{"prompt": "p", "response": "abc"}, {"prompt": "p", "response": "ab"}])
    assert out[0].sources["s"].status == "abstain"
    assert "no `reference`" in out[0].sources["s"].reason
    assert out[0].status == "ok"  # the other source carries it (on_abstain: renormalize)
    failing = rewardplug.load_stack({"sources": [source("fails_on_references", transform="par")]})
    with pytest.warns(UserWarning, match="could not score 1 of 1"):
        got = failing.score([{"prompt": "p", "response": "abc", "reference": "REF"}])[0]
    assert got.reward is None and "reference response could not be scored" in got.reason
    assert "cannot score references" in got.reason
    # errors are not cached: the reference is tried again on the next batch
    assert failing.transforms["s"].missing_references(
        [Sample(prompt="p", response="x", reference="REF")]
    )


def test_abstaining_source_scores_stay_abstentions_through_transforms():
    stack = rewardplug.load_stack(
        {"sources": [source("length_draws", transform=[{"kind": "clip", "max": 2}])]}
    )
    out = stack.score([{"prompt": "p", "response": "skip me"}, {"prompt": "p", "response": "abc"}])
    assert out[0].sources["s"].status == "abstain" and out[0].reward is None
    assert out[1].sources["s"].draws == [2.0, 2.0, 2.0]


def test_overlong_punishes_long_responses_by_word_count():
    stack = rewardplug.load_stack(
        {
            "sources": [
                source(
                    "length_draws",
                    transform=[{"kind": "overlong", "max_tokens": 6, "cache_tokens": 4}],
                )
            ]
        }
    )
    rows = [{"prompt": "p", "response": " ".join(["w"] * n)} for n in (2, 4, 6, 9)]
    out = [r.sources["s"] for r in stack.score(rows)]
    assert [s.detail["transform"][0]["tokens"] for s in out] == [2, 4, 6, 9]
    assert [s.detail["transform"][0]["penalty"] for s in out] == [0.0, -0.5, -1.0, -1.0]
    assert out[1].value == pytest.approx(len(rows[1]["response"]) - 0.5)


def test_overlong_with_a_local_tokenizer_counts_its_tokens():
    pytest.importorskip("transformers")
    from rewardplug_neural.loading import bundled_minilm
    from transformers import AutoTokenizer

    path = str(bundled_minilm())
    spec = {"kind": "overlong", "max_tokens": 10, "cache_tokens": 5, "tokenizer": path}
    stack = rewardplug.load_stack({"sources": [source(transform=[spec])]})
    text = "Tokenization splits unbelievably long words"
    n = len(AutoTokenizer.from_pretrained(path)(text, add_special_tokens=False)["input_ids"])
    assert n != len(text.split())
    got = stack.score([{"prompt": "p", "response": text}])[0].sources["s"]
    assert got.detail["transform"][0]["tokens"] == n
    assert got.value == pytest.approx(len(text) + tf.overlong_penalty(n, 10, 5))


def test_unknown_tokenizer_fails_at_load_naming_it(tmp_path):
    missing = str(tmp_path / "no-such-tokenizer")
    spec = {"kind": "overlong", "max_tokens": 10, "cache_tokens": 5, "tokenizer": missing}
    with pytest.raises(
        rewardplug.StackError, match=r"sources\[0\]\.transform: .*no-such-tokenizer"
    ):
        rewardplug.load_stack({"sources": [source(transform=[spec])]})


@pytest.mark.parametrize(
    ("transform", "message"),
    [
        (
            [{"kind": "parr"}],
            r"transform\[0\]: unknown transform 'parr'; known: clip, .*"
            r"did you mean 'par'\?",
        ),
        ([{"kind": "clip"}], "clip needs `min`, `max` or both"),
        ([{"clip": {"min": 2, "max": 1}}], "clip min"),
        ([{"kind": "par", "tau": 0}], r"transform\[0\]\.tau: Input should be greater than 0"),
        (
            [{"kind": "par", "taux": 1}],
            r"transform\[0\]\.taux: Extra inputs are not permitted; did you mean 'tau'\?; "
            "allowed keys: kind, tau",
        ),
        ([{"overlong": {"max_tokens": 5, "cache_tokens": 6}}], "must not exceed"),
        ("nope", "unknown transform 'nope'; known: clip, log_sigmoid, overlong, par, scale"),
        ([{"tau": 1}], r"transform\[0\]: a transform needs `kind:` naming it"),
        ([3], r"transform\[0\]: a transform is a name or a mapping with `kind:`"),
    ],
)
def test_bad_transforms_fail_at_load_with_the_path(transform, message):
    with pytest.raises(rewardplug.StackError, match=message):
        rewardplug.load_stack({"sources": [source(transform=transform)]})


def test_async_scoring_transforms_the_same_way():
    spec = source("length_draws", transform=[{"par": {"tau": 3}}, {"scale": {"a": 2, "b": 1}}])
    stack = rewardplug.load_stack({"sources": [spec]})
    rows = [
        {"prompt": "p", "response": "abcdef", "reference": "abc"},
        {"prompt": "p", "response": "a", "reference": "abc"},
    ]
    sync = stack.score(rows)
    fresh = rewardplug.load_stack({"sources": [spec]})
    asynced = asyncio.run(fresh.ascore(rows))
    assert [r.sources["s"].draws for r in asynced] == [r.sources["s"].draws for r in sync]
    assert [r.reward for r in asynced] == [r.reward for r in sync]
