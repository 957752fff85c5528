"""An explicit plugin host: two stacks with different plugin sets in one process, each resolving
its names -- at load and while it scores, in its threads and tasks -- through its own host."""

from __future__ import annotations

import asyncio
import types
from collections.abc import Sequence

import pytest

import rewardplug
from rewardplug import Sample, Score, plugins
from rewardplug.criteria import Criterion


class Shouty(rewardplug.RewardSource):
    """A source only the 'loud' plugin has: the share of upper-case letters."""

    def score(self, samples: Sequence[Sample]) -> list[Score]:
        return [
            Score.of(value=sum(c.isupper() for c in s.response) / max(1, len(s.response)))
            for s in samples
        ]


class HasBang(Criterion):
    """A rubric check kind only the 'loud' plugin has."""

    kind: str = "has_bang"

    def check(self, sample: Sample) -> bool:
        return "!" in sample.response


def _loud_plugin() -> types.SimpleNamespace:
    def register_sources(register):
        register("shouty", Shouty)

    def register_criteria(register):
        register("has_bang", HasBang)

    def register_combiners(register):
        register(
            "first_only",
            lambda values, weights, present, config: values[0],
            rewardplug.CombineConfig,
        )

    return types.SimpleNamespace(
        __name__="loud",
        register_sources=rewardplug.hookimpl(register_sources),
        register_criteria=rewardplug.hookimpl(register_criteria),
        register_combiners=rewardplug.hookimpl(register_combiners),
    )


BANG_RUBRIC = {
    "criteria": [{"id": "bang", "text": "exclaims", "weight": 1, "check": {"kind": "has_bang"}}]
}
#: two sources, so Stack.score runs them in threads; the rubric comes with each sample, so its
#: check kind is resolved while the stack scores, not when it loads
STACK = {
    "sources": [
        {"name": "shout", "use": "shouty"},
        {"name": "style", "use": "rubric"},
    ],
    "discretize": {"enabled": False},
}
ROWS = [
    {"group": "g", "prompt": "p", "response": "HI!", "rubric": BANG_RUBRIC},
    {"group": "g", "prompt": "p", "response": "hi", "rubric": BANG_RUBRIC},
]


def test_two_hosts_with_different_plugins_live_in_one_process():
    loud = rewardplug.Host([_loud_plugin()])
    quiet = rewardplug.Host()
    stack = rewardplug.load_stack(STACK, host=loud)
    assert stack.host is loud
    with pytest.raises(rewardplug.StackError, match="unknown source 'shouty'"):
        rewardplug.load_stack(STACK, host=quiet)
    with pytest.raises(rewardplug.StackError, match="unknown source 'shouty'"):
        rewardplug.load_stack(STACK)  # the default host never saw the loud plugin
    assert "shouty" not in plugins.default_host().sources().names()
    assert "has_bang" in loud.criteria().names()
    assert "has_bang" not in quiet.criteria().names()

    loud_row, quiet_row = stack.score(ROWS)
    assert loud_row.sources["style"].value == 1.0 and quiet_row.sources["style"].value == 0.0
    assert loud_row.sources["shout"].value == pytest.approx(2 / 3)
    assert loud_row.reward > quiet_row.reward
    # the async path (tasks) sees the stack's host as well
    again = asyncio.run(stack.ascore(ROWS))
    assert [r.reward for r in again] == [loud_row.reward, quiet_row.reward]
    stack.close()


def test_a_combine_rule_of_one_host_is_unknown_to_another():
    spec = {
        "sources": [{"name": "shout", "use": "shouty"}],
        "combine": "first_only",
        "discretize": {"enabled": False},
    }
    stack = rewardplug.load_stack(spec, host=rewardplug.Host([_loud_plugin()]))
    [row] = stack.score([{"prompt": "p", "response": "AB"}])
    assert row.reward == 1.0
    with pytest.raises(rewardplug.StackError, match="first_only"):
        rewardplug.load_stack(
            {
                **spec,
                "sources": [{"name": "n", "use": "python", "with": {"function": "builtins:len"}}],
            }
        )


def test_a_host_without_entry_points_has_only_the_core_and_its_own_plugins():
    host = rewardplug.Host([_loud_plugin()], entry_points=False)
    names = {info["name"] for info in host.report()}
    assert {"python", "rules", "loud"} <= names
    assert "rubric" not in names  # an entry-point plugin of this distribution
    assert "test_cases" not in host.sources().names()
    blocked = rewardplug.Host([_loud_plugin()], disable=["loud"])
    assert "shouty" not in blocked.sources().names()


def test_a_pickled_stack_uses_the_current_host_where_it_is_unpickled():
    import pickle

    stack = rewardplug.load_stack(
        {
            "sources": [
                {
                    "name": "n",
                    "use": "python",
                    "with": {"function": "tests.core.transform_rewards:length_draws"},
                }
            ]
        },
        host=rewardplug.Host(),
    )
    copy = pickle.loads(pickle.dumps(stack))
    assert copy.host is plugins.current_host() and stack.host is not copy.host
    rows = [{"prompt": "p", "response": "abc"}]
    [row], [want] = copy.score(rows), stack.score(rows)
    assert row.sources["n"].ok and row.sources["n"].value == want.sources["n"].value
