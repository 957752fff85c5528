"""Abstaining never pays: whatever the stack's shape, a sample whose source abstains never gets a
higher reward than the same sample with that source at its lowest score (issue 27).

Under RL a response that can make a source abstain (an unparseable judge reply, a missing field)
would otherwise learn to: with ``on_abstain: renormalize`` the other sources' scores are rescaled
to the full range. The default, ``abstain``, masks the sample; ``floor`` counts the source at its
declared lowest score, exactly as if it had scored that.
"""

from __future__ import annotations

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import rewardplug
from rewardplug import Sample
from rewardplug.config import StackError

METHODS = ["weighted_sum", "min", "mean_minus_var"]


def source(i: int, weight: float, floor: float | None = None) -> dict:
    spec = {
        "name": f"s{i}",
        "use": "python",
        "weight": weight,
        "with": {
            "function": "tests.core.rewards_fixture:column_draws",
            "kwargs": {"column": f"c{i}"},
        },
    }
    if floor is not None:
        spec["floor"] = floor
    return spec


@st.composite
def shapes(draw):
    n_sources = draw(st.integers(1, 4))
    weights = [draw(st.floats(0.1, 3.0)) for _ in range(n_sources)]
    floors = [draw(st.floats(-2.0, 1.0)) for _ in range(n_sources)]
    size = draw(st.integers(1, 4))
    rows = []
    for _ in range(size):
        row = {}
        for i in range(n_sources):
            k = draw(st.integers(1, 5))
            row[f"c{i}"] = [floors[i] + draw(st.floats(0.0, 3.0)) for _ in range(k)]
        rows.append(row)
    method = draw(st.sampled_from(METHODS))
    who = draw(st.integers(0, size - 1))
    which = draw(st.integers(0, n_sources - 1))
    confidence = draw(st.sampled_from([0.6, 0.9]))
    return weights, floors, rows, method, who, which, confidence


def score(stack, rows, ids=None):
    ids = list(range(len(rows))) if ids is None else ids
    samples = [
        Sample(id=f"r{j}", group="g", prompt="p", response=f"answer {j}", metadata=row)
        for j, row in zip(ids, rows, strict=True)
    ]
    return stack.score(samples)


@settings(max_examples=60, deadline=None)
@given(shapes())
def test_a_source_that_abstains_counts_at_its_floor(shape):
    weights, floors, rows, method, who, which, confidence = shape
    # (a sample no source scored has nothing to count a floor against: it abstains, as below)
    assume(len(weights) > 1)
    stack = rewardplug.load_stack(
        {
            "sources": [
                source(i, w, f) for i, (w, f) in enumerate(zip(weights, floors, strict=True))
            ],
            "combine": method,
            "on_abstain": "floor",
            "discretize": {"confidence": confidence},
        }
    )
    abstaining = [dict(r) for r in rows]
    abstaining[who][f"c{which}"] = None  # this source cannot score this sample
    at_floor = [dict(r) for r in rows]
    at_floor[who][f"c{which}"] = [floors[which]]  # ... or it scores its lowest
    got, want = score(stack, abstaining), score(stack, at_floor)
    for g, w in zip(got, want, strict=True):
        assert (g.reward, g.tier, g.raw, g.n_tiers) == (w.reward, w.tier, w.raw, w.n_tiers)
    assert got[who].status == "ok" and f"s{which}" in got[who].reason


@settings(max_examples=60, deadline=None)
@given(shapes())
def test_by_default_a_sample_with_an_abstaining_source_abstains_and_leaves_the_rest(shape):
    weights, _, rows, method, who, which, confidence = shape
    stack = rewardplug.load_stack(
        {
            "sources": [source(i, w) for i, w in enumerate(weights)],
            "combine": method,
            "discretize": {"confidence": confidence},
        }
    )
    abstaining = [dict(r) for r in rows]
    abstaining[who][f"c{which}"] = None
    got = score(stack, abstaining)
    assert got[who].reward is None and got[who].status == "abstain"
    assert f"s{which}" in got[who].reason
    # the others' rewards are those of the group without it
    keep = [j for j in range(len(rows)) if j != who]
    rest = score(stack, [rows[j] for j in keep], ids=keep)
    others = [g for j, g in enumerate(got) if j != who]
    assert [(g.reward, g.tier) for g in others] == [(r.reward, r.tier) for r in rest]


def test_renormalize_is_opt_in_because_it_pays_for_abstaining():
    rows = [{"c0": [1.0], "c1": [0.0]}, {"c0": [1.0], "c1": None}]
    spec = [source(0, 1.0), source(1, 1.0)]
    opt_in = rewardplug.load_stack(
        {"sources": spec, "on_abstain": "renormalize", "discretize": {"enabled": False}}
    )
    honest, abstained = score(opt_in, rows)
    assert abstained.reward > honest.reward  # 2.0 > 1.0: making s1 abstain paid
    default = rewardplug.load_stack({"sources": spec, "discretize": {"enabled": False}})
    assert score(default, rows)[1].reward is None


def test_floor_needs_a_floor_for_every_weighted_source():
    with pytest.raises(StackError, match="give 's1' a `floor:`"):
        rewardplug.load_stack(
            {"sources": [source(0, 1.0, 0.0), source(1, 1.0)], "on_abstain": "floor"}
        )
