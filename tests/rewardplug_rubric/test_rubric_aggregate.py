"""Properties of the draw-wise aggregation (hypothesis) on synthetic verdicts."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rewardplug_rubric.aggregate import Verdict, aggregate
from rewardplug_rubric.model import load_rubric

CATEGORIES = ["essential", "important", "optional", "pitfall"]

criterion = st.tuples(
    st.sampled_from(CATEGORIES),
    st.lists(st.floats(0, 1), min_size=1, max_size=4),  # outcomes (1 = programmatic)
)


def build(items, aggregate_name="weighted_mean"):
    rubric = load_rubric(
        {
            "aggregate": aggregate_name,
            "criteria": [{"category": c, "check": {"kind": "json"}} for c, _ in items],
        }
    )
    verdicts = [
        Verdict(c, outcomes=list(o)) for c, (_, o) in zip(rubric.criteria, items, strict=True)
    ]
    return rubric, verdicts


@settings(max_examples=60, deadline=None)
@given(st.lists(criterion, min_size=1, max_size=6), st.randoms())
def test_scores_in_range_order_free_and_gate_below_mean(items, rnd):
    rubric, verdicts = build(items)
    draws, _ = aggregate(rubric, verdicts)
    assert draws is not None and len(draws) == max(len(o) for _, o in items)
    assert all(-1e-12 <= d <= 1 + 1e-12 for d in draws)
    shuffled = list(zip(rubric.criteria, verdicts, strict=True))
    rnd.shuffle(shuffled)
    rubric2 = rubric.model_copy(update={"criteria": [c for c, _ in shuffled]})
    again, _ = aggregate(rubric2, [v for _, v in shuffled])
    assert again == pytest.approx(draws)
    gated, _ = aggregate(rubric.model_copy(update={"aggregate": "essential_gate"}), verdicts)
    assert all(g <= d + 1e-12 for g, d in zip(gated, draws, strict=True))


@settings(max_examples=40, deadline=None)
@given(st.lists(criterion, min_size=1, max_size=6))
def test_programmatic_only_rubrics_are_exact(items):
    exact = [(c, o[:1]) for c, o in items]
    rubric, verdicts = build(exact)
    draws, _ = aggregate(rubric, verdicts)
    assert draws is not None and len(draws) == 1


def test_draw_k_uses_each_criterion_kth_outcome():
    rubric, verdicts = build(
        [("essential", [1.0]), ("important", [1.0, 0.0]), ("pitfall", [0.0, 1.0])]
    )
    draws, _ = aggregate(rubric, verdicts)
    total = 1.0 + 0.7 + 0.9
    assert draws == pytest.approx([(1 + 0.7 + 0.9) / total, 1 / total])
