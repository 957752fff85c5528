"""Stacks: validation, draw-wise combination, abstain policy, TRL adapter."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

import rewardplug
from rewardplug import Sample, StackError, load_stack
from rewardplug.combine import align

FIX = "tests.core.rewards_fixture"


def stack(*sources, **top):
    return load_stack({"sources": list(sources), **top})


def py(name, function, weight=1.0, **with_):
    return {
        "name": name,
        "use": "python",
        "weight": weight,
        "with": {"function": f"{FIX}:{function}", **with_},
    }


def test_score_returns_one_reward_per_sample_in_order():
    s = stack(py("em", "exact_match"))
    batch = [Sample(prompt="p", response=r, gold="4") for r in ("4", "5", "4")]
    rewards = s.score(batch)
    assert [r.id for r in rewards] == [b.id for b in batch]
    assert [r.reward for r in rewards] == [1.0, 0.0, 1.0]
    assert [r.tier for r in rewards] == [0, 1, 0] and rewards[0].n_tiers == 2
    assert rewards[0].sources["em"].value == 1.0


def test_weighted_sum_combines_draw_wise():
    s = stack(
        py("em", "exact_match", weight=2.0),
        py("q", "noisy", weight=1.0),
        discretize={"enabled": False},
    )
    r = s.score([Sample(prompt="p", response="4", gold="4", quality=0.5)])[0]
    assert r.raw == pytest.approx(2.0 * 1.0 + 0.5)
    assert r.reward == r.raw and r.tier is None
    # the noisy source's spread (std 0.1 over 3 draws) propagates into the combined score
    assert 0.05 < r.std < 0.2


def test_min_and_mean_minus_var():
    samples = [Sample(prompt="p", response="4", gold="4", quality=0.5)]
    low = stack(py("em", "exact_match"), py("q", "noisy"), combine="min").score(samples)[0]
    assert low.raw == pytest.approx(0.5)
    mmv = stack(
        py("em", "exact_match"), py("q", "noisy"), combine="mean_minus_var", **{"lambda": 2.0}
    )
    r = mmv.score(samples)[0]
    # mean 0.75, variance across the two sources 0.0625
    assert r.raw == pytest.approx(0.75 - 2.0 * 0.0625)


@pytest.mark.parametrize(
    "combine",
    [
        {"combine": "mean_minus_var", "lambda": 2.0},  # the form stacks used before rule settings
        {"combine": {"mean_minus_var": {"lambda": 2.0}}},
        {"combine": {"kind": "mean_minus_var", "lambda": 2.0}},
        {"combine": {"mean_minus_var": {"lambda": 2.0}}, "lambda": 2.0},  # the same value twice
    ],
)
def test_a_combine_rules_settings_in_every_form_give_the_same_rewards(combine):
    samples = [Sample(prompt="p", response="4", gold="4", quality=0.5)]
    s = stack(py("em", "exact_match"), py("q", "noisy"), **combine)
    assert s.config.combine.kind == "mean_minus_var" and s.config.combine.lambda_ == 2.0
    assert s.score(samples)[0].raw == pytest.approx(0.75 - 2.0 * 0.0625)
    # a dumped config validates back to the same rule (what a copy of a stack goes through)
    again = type(s.config).model_validate(s.config.model_dump(by_alias=True))
    assert again.combine == s.config.combine


def test_combine_rule_settings_are_checked_by_the_rules_model():
    with pytest.raises(StackError, match="given twice"):
        stack(py("em", "exact_match"), combine={"mean_minus_var": {"lambda": 1}}, **{"lambda": 2})
    with pytest.raises(StackError, match=r"combine\.lambda: Input should be greater than or eq"):
        stack(py("em", "exact_match"), combine={"mean_minus_var": {"lambda": -1}})
    with pytest.raises(StackError, match=r"combine\.lamda: .*did you mean 'lambda'\?"):
        stack(py("em", "exact_match"), combine={"kind": "mean_minus_var", "lamda": 1})
    with pytest.raises(StackError, match=r"combine\.tau: .*allowed keys: kind$"):
        stack(py("em", "exact_match"), combine={"min": {"tau": 1}})


def test_abstaining_source_is_dropped_and_weights_renormalized():
    s = stack(
        py("em", "exact_match", weight=1.0),
        py("q", "noisy", weight=3.0),
        discretize={"enabled": False},
        on_abstain="renormalize",
    )
    batch = [
        Sample(prompt="p", response="4", gold="4"),
        Sample(prompt="p", response="4", gold="4", quality=1),
    ]
    r = s.score(batch)[0]  # no quality: q abstains
    assert r.status == "ok" and r.raw == pytest.approx(4.0 * 1.0)
    assert r.sources["q"].status == "abstain"


def test_abstain_policy_abstain():
    s = stack(py("em", "exact_match"), py("q", "noisy"), on_abstain="abstain")
    batch = [
        Sample(prompt="p", response="4", gold="4"),
        Sample(prompt="p", response="4", gold="4", quality=1),
    ]
    r, other = s.score(batch)
    assert r.reward is None and r.status == "abstain" and "q: tests.core" in r.reason
    assert other.status == "ok"


def test_all_sources_failing_is_an_error_not_a_zero():
    s = stack(py("f", "fragile"))
    r = s.score([Sample(prompt="p", response="boom")])[0]
    assert r.reward is None and r.status == "error" and "boom inside" in r.reason


class Broken(rewardplug.RewardSource):
    """A source whose whole batch fails."""

    def score(self, samples):
        raise OSError("disk on fire")


def test_batch_exception_becomes_per_sample_errors_and_policy_applies():
    s = load_stack(
        {"sources": [py("em", "exact_match"), {"name": "b", "use": f"{__name__}:Broken"}]}
    )
    r = s.score([Sample(prompt="p", response="4", gold="4")])[0]
    # the default policy: a sample with a failed source abstains (never a rescaled reward)
    assert r.status == "abstain" and r.reward is None and "disk on fire" in r.reason
    assert r.sources["b"].status == "error" and "disk on fire" in r.sources["b"].reason


def test_a_source_that_raises_is_logged_with_its_traceback_once_at_debug(caplog):
    """The samples of a raising source get errors, and its bug is findable: its traceback is
    logged at DEBUG the first time (per source and exception type); what a user sees is the
    one-line warning about the failed batch (tests/core/test_failure_messages.py)."""
    import logging

    s = load_stack({"sources": [{"name": "b", "use": f"{__name__}:Broken"}]})
    with caplog.at_level(logging.DEBUG, logger="rewardplug"):
        for _ in range(3):
            s.score([Sample(prompt="p", response="4")])
    raised = [r for r in caplog.records if "raised OSError on a batch" in r.getMessage()]
    assert [r.levelno for r in raised] == [logging.DEBUG]
    assert raised[0].exc_info and "disk on fire" in str(raised[0].exc_info[1])
    assert "'b'" in raised[0].getMessage()


def test_rewards_do_not_depend_on_batch_composition():
    s = stack(py("em", "exact_match"), py("q", "noisy"))
    a = [Sample(prompt="p", response=str(i % 3), gold="1", quality=i / 10) for i in range(6)]
    b = [Sample(prompt="other", response="x", gold="x", quality=0.3)]
    alone = s.score(a)
    mixed = s.score(b + a[::-1])[1:][::-1]
    assert [r.reward for r in alone] == [r.reward for r in mixed]
    assert [r.std for r in alone] == [r.std for r in mixed]


def test_align_uses_every_draw_and_is_seeded():
    out = align([1.0, 2.0, 3.0], 7, [0, 1])
    assert sorted(out.tolist()).count(1.0) >= 2 and len(out) == 7
    np.testing.assert_array_equal(out, align([1.0, 2.0, 3.0], 7, [0, 1]))
    assert align([5.0], 4, None).tolist() == [5.0] * 4


def test_validation_names_path_line_and_allowed_values(tmp_path):
    path = tmp_path / "stack.yaml"
    path.write_text(
        "sources:\n"
        "  - name: em\n"
        "    use: python\n"
        "    with:\n"
        f"      function: {FIX}:exact_match\n"
        "      treshold: 3\n"
        "combine: weighted_sum\n"
    )
    with pytest.raises(StackError) as err:
        load_stack(path)
    message = str(err.value)
    assert "sources[0].with.treshold (line 6)" in message
    assert "allowed keys: function, batched, kwargs" in message

    path.write_text(
        "sources:\n  - {name: a, use: python, with: {function: x:y}}\ncombine: maximum\n"
    )
    with pytest.raises(
        StackError,
        match="combine \\(line 3\\): unknown combine rule 'maximum'; known: mean_minus_var, min, "
        "weighted_sum",
    ):
        load_stack(path)
    path.write_text(
        "sources:\n  - {name: a, use: python, with: {function: x:y}}\ncombine: mean_minus_vra\n"
    )
    with pytest.raises(StackError, match=r"combine \(line 3\): .*did you mean 'mean_minus_var'"):
        load_stack(path)


def test_unknown_source_lists_the_known_ones():
    with pytest.raises(StackError, match=r"unknown source 'pyton'; known: .*python"):
        stack({"name": "a", "use": "pyton"})


def test_duplicate_names_and_zero_weights_are_rejected():
    with pytest.raises(StackError, match="used twice"):
        stack(py("a", "exact_match"), py("a", "exact_match"))
    with pytest.raises(StackError, match="weight > 0"):
        stack(py("a", "exact_match", weight=0))


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(StackError, match="does not exist"):
        load_stack(tmp_path / "nope.yaml")


def test_ascore_matches_score():
    s = stack(py("em", "exact_match"), py("q", "noisy"))
    batch = [
        Sample(prompt="p", response=r, gold="4", quality=q) for r, q in (("4", 0.2), ("3", 0.9))
    ]
    assert [r.reward for r in asyncio.run(s.ascore(batch))] == [r.reward for r in s.score(batch)]


def test_as_trl_reward_groups_consecutive_prompts_and_passes_columns():
    fn = stack(py("em", "exact_match")).as_trl_reward()
    assert fn.__name__ == "rewardplug"
    prompts = ["a", "a", "b", "b"]
    completions = [[{"role": "assistant", "content": c}] for c in ("1", "2", "1", "1")]
    out = fn(
        prompts=prompts,
        completions=completions,
        completion_ids=[[1]] * 4,
        gold=["1", "1", "1", "1"],
        trainer_state=object(),
    )
    assert out == [1.0, 0.0, 1.0, 1.0]


def test_as_trl_reward_returns_none_for_abstentions():
    fn = stack(py("q", "noisy")).as_trl_reward()
    assert fn(prompts=["a", "a"], completions=["x", "y"], quality=[0.5, None]) == [
        pytest.approx(0.5),
        None,
    ]


def test_validate_reports_every_problem_in_one_pass_with_suggestions(tmp_path):
    """A stack-level typo no longer hides the sources' problems; typos get a "did you mean"."""
    bad = tmp_path / "stack.yaml"
    bad.write_text(
        "sources:\n"
        "  - name: tests\n    use: test_case\n"
        "  - name: f\n    use: python\n    with: {functoin: 'x:y'}\n"
        "discretize: {confidance: 0.9}\n"
    )
    with pytest.raises(StackError) as info:
        load_stack(bad)
    text = str(info.value)
    assert "discretize.confidance (line 7)" in text and "did you mean 'confidence'" in text
    assert "unknown source 'test_case'" in text and "did you mean 'test_cases'" in text
    assert "sources[1].with.functoin (line 6)" in text and "did you mean 'function'" in text


def test_rewards_are_exactly_what_validation_would_build():
    """finish() builds Rewards without re-validating them: they must equal validated ones,
    with plain Python types (JSON-ready), for ok, abstaining and erroring samples."""
    from rewardplug.types import Reward

    s = stack(py("q", "noisy"), py("f", "fragile"), on_abstain="abstain")
    batch = [
        Sample(prompt=f"p{i % 2}", response=r, quality=q)
        for i, (r, q) in enumerate([("a", 0.9), ("b", 0.2), ("c", None), ("boom", 0.5)])
    ]
    for r in s.score(batch):
        again = Reward(**{name: getattr(r, name) for name in Reward.model_fields})
        assert again.model_dump() == r.model_dump()
        for name in ("reward", "raw", "std", "tier", "n_tiers", "group_size"):
            value = getattr(r, name)
            assert value is None or type(value) in (int, float), (name, type(value))
        assert r.row_fields() == again.row_fields()
