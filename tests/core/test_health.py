"""A source that fails on a whole batch is loud: warned once, in /health and TRL's metrics, or a
hard error with ``on_source_failure: fail``."""

from __future__ import annotations

import warnings

import pytest

import rewardplug
from rewardplug.health import SourceFailure

GOOD = {
    "name": "len",
    "use": "python",
    "with": {"function": "tests.core.rewards_fixture:strict_signature"},
}
BROKEN = {
    "name": "flaky",
    "use": "python",
    "with": {"function": "tests.core.rewards_fixture:always_down"},
}
BATCH = [{"prompt": "p", "response": "boom"}, {"prompt": "p", "response": "fine"}]


def test_a_source_failing_on_the_whole_batch_is_warned_once_and_recorded():
    stack = rewardplug.load_stack({"sources": [GOOD, BROKEN]})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = stack.score(BATCH)
        stack.score(BATCH)
    messages = [str(w.message) for w in caught if "could not score" in str(w.message)]
    assert len(messages) == 1
    assert (
        "'flaky'" in messages[0] and "2 of 2" in messages[0] and "connection refused" in messages[0]
    )
    # the other source still scores; the samples abstain (the default on_abstain)
    assert all(r.sources["len"].status == "ok" and r.status == "abstain" for r in first)
    assert stack.health.as_dict()["flaky"]["batches"] == 2


def test_on_source_failure_fail_raises_with_the_reason():
    stack = rewardplug.load_stack({"sources": [GOOD, BROKEN], "on_source_failure": "fail"})
    with pytest.raises(SourceFailure, match=r"flaky.*connection refused"):
        stack.score(BATCH)


def test_a_share_below_the_threshold_is_not_reported():
    stack = rewardplug.load_stack(
        {
            "sources": [
                {
                    "name": "n",
                    "use": "python",
                    "with": {"function": "tests.core.rewards_fixture:nan_for_empty"},
                }
            ],
            "source_failure_share": 0.75,
        }
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        stack.score([{"response": ""}, {"response": "a"}, {"response": "b"}])  # 1 of 3 fails
        assert not stack.health.failures
        stack.score([{"response": ""}, {"response": ""}, {"response": ""}, {"response": "c"}])
    assert "n" in stack.health.failures  # 3 of 4 >= 0.75
    assert sum("could not score" in str(w.message) for w in caught) == 1


def test_trl_logs_the_failed_share_per_source():
    stack = rewardplug.load_stack({"sources": [GOOD, BROKEN]})
    metrics: dict[str, float] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        stack.as_trl_reward("rp")(
            prompts=["p", "p"], completions=["boom", "ok"], log_metric=metrics.__setitem__
        )
    assert metrics["rewards/rp/flaky/failed"] == 1.0
    assert metrics["rewards/rp/len/failed"] == 0.0
