"""``llm_judge`` ``mode: pairwise`` against a real chat server, and the Bradley–Terry fit it uses.

The scripted judge prefers the response with the higher hidden quality tag (``[q=N]``) and, when
two are equally good, names whichever is shown first: a position bias the source must report.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rewardplug_judge.bradley_terry import fit, log_likelihood, win_scores
from rewardplug_judge.pairwise import parse_winner
from rewardplug_judge.source import JudgeSource

from rewardplug.types import Sample
from tests.chat_server import Reply, closed_port, http_options, user_text

_QUALITY = re.compile(r"## Response ([AB])\n.*?\[q=(\d+)\]", re.S)


def biased_judge(body, server) -> Reply:
    q = {side: int(v) for side, v in _QUALITY.findall(user_text(body))}
    winner = "A" if q["A"] >= q["B"] else "B"  # equal: the first shown wins
    return Reply(texts=[f"A is q{q['A']}, B is q{q['B']}.\nWinner: {winner}"] * int(body["n"]))


def group(*qualities: int) -> list[Sample]:
    return [
        Sample(id=f"s{i}", group="g", prompt="Explain tides.", response=f"answer {i} [q={q}]")
        for i, q in enumerate(qualities)
    ]


def test_pairs_in_both_orders_and_bradley_terry_scores(serve, client_kind, tmp_path):
    server = serve(biased_judge)
    src = JudgeSource(http_options(client_kind, server, tmp_path, mode="pairwise", samples=2))
    assert src.group_scoped is True
    samples = group(9, 5, 5, 1)
    scores = src.score(samples)
    assert len(server.requests) == 2 * 6  # every pair, both orders
    assert all(r["n"] == 2 for r in server.requests)
    assert all(s.ok and len(s.draws) == 4 for s in scores)  # 2 orders x 2 samples
    best, mid1, mid2, worst = (s.value for s in scores)
    assert best > mid1 and best > mid2 and mid1 > worst and mid2 > worst
    assert mid1 == pytest.approx(mid2)  # the bias cancels over the swapped orders
    assert scores[0].detail["wins"] == 12 and scores[0].detail["losses"] == 0
    bias = scores[0].detail["position_bias"]
    # the 5-vs-5 pair: the first-shown always wins, so it flips with the order
    assert bias["first_wins"] > 0.5 and bias["swap_consistent"] == pytest.approx(5 / 6, abs=1e-3)
    assert scores[3].detail["bt_strength"] < 0 < scores[0].detail["bt_strength"]


def test_unreadable_verdicts_and_a_group_of_one_abstain(serve, tmp_path):
    def mute(body, server):
        return Reply(texts=["They are both fine, I think."] * int(body["n"]))

    server = serve(mute)
    src = JudgeSource(
        http_options("openai", server, tmp_path, mode="pairwise", samples=2, parse_retries=1)
    )
    scores = src.score(group(3, 4))
    assert all(s.status == "abstain" for s in scores)
    assert "Winner: A|B|tie" in scores[0].reason
    assert len(server.requests) == 4  # two orders, each re-asked once
    assert scores[0].detail["position_bias"]["unreadable"] == 4  # verdicts still unread
    [alone] = src.score(group(5)[:1])
    assert alone.status == "abstain" and "at least two responses" in alone.reason


def test_pairwise_config_errors():
    with pytest.raises(ValueError, match="judging"):
        JudgeSource(backend="openai", model="m", mode="pairwise", judging="groupwise")
    with pytest.raises(ValueError, match="pairwise_prior"):
        JudgeSource(backend="openai", model="m", mode="pairwise", pairwise_prior=0)
    assert JudgeSource(backend="openai", model="m").group_scoped is False


def test_parse_winner():
    assert parse_winner("long talk\nWinner: B") == 0.0
    assert parse_winner("**Winner:** A") == 1.0
    assert parse_winner("Winner: tie") == 0.5
    assert parse_winner("Winner: A\n... on reflection\nWinner: B") == 0.0  # the last line counts
    assert parse_winner("I pick:\n[[A]]") == 1.0  # a [[X]] verdict starts its line (issue 26)
    assert parse_winner("A is better") is None
    assert parse_winner(None) is None


# -- Bradley–Terry -------------------------------------------------------------------------


def reference_fit(wins: np.ndarray, prior: float) -> np.ndarray:
    """The same objective, maximized by a general-purpose optimizer (scipy's BFGS)."""
    from scipy.optimize import minimize

    w = np.array(wins, dtype=float)
    np.fill_diagonal(w, 0)
    res = minimize(lambda t: -log_likelihood(t, w, prior), np.zeros(len(w)), method="BFGS",
                   options={"gtol": 1e-10})  # fmt: skip
    return res.x


win_matrices = st.integers(2, 6).flatmap(
    lambda n: st.lists(
        st.lists(st.integers(0, 4), min_size=n, max_size=n), min_size=n, max_size=n
    ).map(np.array)
)


@settings(max_examples=60, deadline=None)
@given(win_matrices, st.sampled_from([0.01, 0.1, 1.0]))
def test_fit_matches_a_plain_optimizer(wins, prior):
    theta = fit(wins, prior)
    assert np.all(np.isfinite(theta))
    assert theta.sum() == pytest.approx(0, abs=1e-6)
    np.testing.assert_allclose(theta, reference_fit(wins, prior), atol=1e-4)


@settings(max_examples=40, deadline=None)
@given(win_matrices, st.randoms())
def test_fit_is_permutation_equivariant(wins, rnd):
    order = list(range(len(wins)))
    rnd.shuffle(order)
    permuted = wins[np.ix_(order, order)]
    np.testing.assert_allclose(fit(permuted), fit(wins)[order], atol=1e-8)


def test_fit_orders_by_wins_and_is_finite_under_separation():
    # 0 beats everyone, 1 beats 2 and 3, 2 beats 3: perfect separation, one game per pair
    wins = np.triu(np.ones((4, 4)), 1)
    theta = fit(wins, prior=0.01)
    assert np.all(np.isfinite(theta)) and list(np.argsort(-theta)) == [0, 1, 2, 3]
    scores = win_scores(theta)
    assert np.all((scores > 0) & (scores < 1)) and scores[0] > 0.5 > scores[3]
    even = fit(np.ones((3, 3)))  # everyone beat everyone once: all equal
    np.testing.assert_allclose(even, 0, atol=1e-12)
    ties = fit(np.full((2, 2), 0.5))
    np.testing.assert_allclose(ties, 0, atol=1e-12)
    with pytest.raises(ValueError, match="square"):
        fit(np.ones((2, 3)))
    with pytest.raises(ValueError, match="prior"):
        fit(np.ones((2, 2)), prior=0)


def test_nothing_listening_is_fatal_not_a_silent_abstention(tmp_path):
    from rewardplug_judge.backends import FatalBackendError

    src = JudgeSource(backend="openai", model="m", base_url=f"http://127.0.0.1:{closed_port()}/v1",
                      mode="pairwise", samples=1, cache_dir=str(tmp_path), max_retries=0)  # fmt: skip
    with pytest.raises(FatalBackendError, match="cannot reach the judge"):
        src.score(group(1, 2))
