"""The ``ensemble`` source: members' draws pooled (or averaged), failures left out and reported,
two tiny real reward models that differ only in their seed, and WCO / UWO through ``combine``."""

from __future__ import annotations

import pickle
import statistics
from collections import Counter

import pytest

import rewardplug
from rewardplug.types import Sample

FN = "tests.rewardplug_compose.step_rewards"


def py(name, function, **extra):
    return {"name": name, "use": "python", "with": {"function": f"{FN}:{function}"}, **extra}


def ensemble(*members, **options):
    return {
        "sources": [
            {"name": "ens", "use": "ensemble", "with": {"members": list(members), **options}}
        ]
    }


ROWS = [
    {"prompt": "p", "response": "short"},
    {"prompt": "p", "response": "a somewhat longer answer"},
]


def test_pooled_draws_are_the_members_draws_and_their_disagreement_widens_them():
    stack = rewardplug.load_stack(
        ensemble(py("a", "half_length"), py("b", "length", noise={"std": 0.5, "draws": 2}))
    )
    out = [r.sources["ens"] for r in stack.score(ROWS)]
    parts = {
        n: stack.sources["ens"].members[i].score([Sample(**ROWS[0])])[0] for i, n in enumerate("ab")
    }
    first = out[0]
    assert len(first.draws) == 4
    assert Counter(first.draws) == Counter(parts["a"].draws + parts["b"].draws)
    assert first.value == pytest.approx((parts["a"].value + parts["b"].value) / 2)
    # the members disagree by a factor of two in scale: the pool is wider than either member
    assert first.std > max(parts["a"].std, parts["b"].std)
    assert first.detail["members"]["a"]["value"] == parts["a"].value
    assert first.detail["disagreement"] == pytest.approx(
        statistics.stdev([parts["a"].value, parts["b"].value])
    )


def test_weights_set_each_members_share_of_the_pool_and_the_value():
    stack = rewardplug.load_stack(
        ensemble(
            py("a", "half_length", weight=3.0),
            py("b", "half_length", weight=1.0, transform=[{"scale": {"b": 100}}]),
        )
    )
    score = stack.score(ROWS[:1])[0].sources["ens"]
    big = [d for d in score.draws if d > 50]
    assert len(score.draws) == 4 and len(big) == 1  # round(2 * 2 * 1/4) = 1 of member b
    assert score.value == pytest.approx(0.75 * 2.5 + 0.25 * 102.5)


def test_mean_draws_average_the_members_draw_by_draw():
    stack = rewardplug.load_stack(
        ensemble(py("a", "half_length"), py("b", "half_length"), draws="mean")
    )
    score = stack.score(ROWS[:1])[0].sources["ens"]
    # both members give [2, 3]: every draw-wise mean lies between, averaging 2.5
    assert len(score.draws) == 2 and all(2.0 <= d <= 3.0 for d in score.draws)
    assert statistics.mean(score.draws) == pytest.approx(2.5)


def test_a_failing_member_is_left_out_and_named():
    stack = rewardplug.load_stack(ensemble(py("ok", "half_length"), py("weak", "fragile")))
    rows = [{"prompt": "p", "response": "boom"}, {"prompt": "p", "response": "fine"}]
    boom, fine = (r.sources["ens"] for r in stack.score(rows))
    assert boom.ok and sorted(boom.draws) == [1.5, 2.5]
    assert "boom inside" in boom.detail["failed"]["weak"]
    assert boom.detail["members"]["weak"]["status"] == "error"
    assert "failed" not in fine.detail and len(fine.draws) == 4


def test_no_member_left_abstains_or_errors_with_every_reason():
    stack = rewardplug.load_stack(ensemble(py("x", "fragile"), py("y", "fragile")))
    with pytest.warns(UserWarning, match="could not score"):
        reward = stack.score([{"prompt": "p", "response": "boom"}])[0]
    assert reward.reward is None and reward.status == "error"
    assert "0 of 2 members" in reward.reason and "x:" in reward.reason and "y:" in reward.reason
    two = rewardplug.load_stack(ensemble(py("x", "fragile"), py("z", "half_length"), min_members=2))
    with pytest.warns(UserWarning, match="could not score"):
        got = two.score([{"prompt": "p", "response": "boom"}])[0]
    assert got.sources["ens"].status == "abstain" and "min_members: 2" in got.reason


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            {"members": [py("a", "length"), {"use": "python", "with": {"functon": "x:y"}}]},
            r"members\[1\]\.with\.functon",
        ),
        (
            {"members": [py("a", "length"), {"use": "no_such_source"}]},
            r"members\[1\]\.use: unknown source 'no_such_source'",
        ),
        ({"members": [py("a", "length"), py("a", "length")]}, "used twice: a"),
        ({"members": [py("a", "length", weight=0)]}, "weight > 0"),
        ({"members": []}, "at least 1 item"),
        ({"members": [py("a", "length")], "draws": "median"}, "'pool' or 'mean'"),
    ],
)
def test_bad_ensembles_fail_at_load_naming_the_member(options, message):
    with pytest.raises(rewardplug.StackError, match=message):
        rewardplug.load_stack({"sources": [{"name": "ens", "use": "ensemble", "with": options}]})


def test_batch_independent_and_picklable():
    stack = rewardplug.load_stack(
        ensemble(py("a", "half_length"), py("b", "length", noise={"std": 1.0}))
    )
    together = [r.sources["ens"].draws for r in stack.score(ROWS)]
    alone = [stack.score([row])[0].sources["ens"].draws for row in ROWS]
    assert together == alone
    clone = pickle.loads(pickle.dumps(stack.sources["ens"]))
    assert [s.draws for s in clone.score([Sample(**r) for r in ROWS])] == together


# -- two tiny real reward models ---------------------------------------------------------------

SAMPLES = [
    {"prompt": "What is the capital of France?", "response": "Paris."},
    {"prompt": "What is the capital of France?", "response": "It is Lyon, I believe."},
    {"prompt": "What is the capital of France?", "response": "The capital of France is Paris."},
]


def rm(name, path, k=4):
    return {
        "name": name,
        "use": "neural_rm",
        "with": {"model": str(path), "mc_samples": k, "device": "cpu"},
    }


@pytest.mark.slow
def test_two_reward_models_pool_their_mc_dropout_draws(rm_pair):
    from rewardplug_neural.rm_source import NeuralRMSource

    stack = rewardplug.load_stack(ensemble(rm("rm0", rm_pair[0]), rm("rm1", rm_pair[1])))
    scores = [r.sources["ens"] for r in stack.score(SAMPLES)]
    direct = [
        NeuralRMSource(model=str(p), mc_samples=4, device="cpu").score(
            [Sample(**s) for s in SAMPLES]
        )
        for p in rm_pair
    ]
    for i, score in enumerate(scores):
        a, b = direct[0][i], direct[1][i]
        assert len(score.draws) == 8
        assert Counter(round(d, 5) for d in score.draws) == Counter(
            round(d, 5) for d in a.draws + b.draws
        )
        assert score.value == pytest.approx((a.value + b.value) / 2, abs=1e-5)
        assert score.std >= min(a.std, b.std)
        assert score.detail["disagreement"] == pytest.approx(
            statistics.stdev([a.value, b.value]), abs=1e-5
        )
    # the seeds make genuinely different models: their scores disagree
    assert any(abs(direct[0][i].value - direct[1][i].value) > 0.1 for i in range(3))


@pytest.mark.slow
def test_combine_min_and_mean_minus_var_over_the_members_are_wco_and_uwo(rm_pair):
    """Coste et al.'s objectives: the members as sources of the stack, combined per draw."""
    members = [rm("rm0", rm_pair[0]), rm("rm1", rm_pair[1])]
    ens = rewardplug.load_stack(ensemble(*members)).score(SAMPLES)
    values = [
        (
            r.sources["ens"].detail["members"]["rm0"]["value"],
            r.sources["ens"].detail["members"]["rm1"]["value"],
        )
        for r in ens
    ]
    wco = rewardplug.load_stack({"sources": members, "combine": "min"}).score(SAMPLES)
    uwo = rewardplug.load_stack(
        {"sources": members, "combine": "mean_minus_var", "lambda": 0.5}
    ).score(SAMPLES)
    for (a, b), w, u in zip(values, wco, uwo, strict=True):
        assert w.raw == pytest.approx(min(a, b), abs=1e-5)
        mean = (a + b) / 2
        assert u.raw == pytest.approx(
            mean - 0.5 * ((a - mean) ** 2 + (b - mean) ** 2) / 2, abs=1e-5
        )


def test_async_scoring_gives_the_same_ensemble():
    import asyncio

    spec = ensemble(py("a", "half_length"), py("b", "length", noise={"std": 1.0}))
    sync = [r.sources["ens"] for r in rewardplug.load_stack(spec).score(ROWS)]
    asynced = [r.sources["ens"] for r in asyncio.run(rewardplug.load_stack(spec).ascore(ROWS))]
    assert [s.draws for s in asynced] == [s.draws for s in sync]
    assert [s.value for s in asynced] == [s.value for s in sync]
