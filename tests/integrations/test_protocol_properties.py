"""Properties of the request/sample mapping shared by the OpenRLHF service and the TRL adapter."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from rewardplug.integrations.openrlhf import parse_request, split_query
from rewardplug.integrations.trl import trl_samples

text = st.text(max_size=30)


@given(prompt=text, response=text)
def test_split_query_recovers_the_response(prompt, response):
    assert split_query(prompt + response, prompt) == (response, True)


@given(st.lists(st.tuples(st.sampled_from(["p", "q", "r s"]), text), min_size=1, max_size=12))
def test_openrlhf_groups_are_exactly_the_equal_prompts(pairs):
    body = {"query": [p + r for p, r in pairs], "prompts": [p for p, _ in pairs]}
    samples, found = parse_request(body, tag="t")
    assert all(found)
    assert [s.response for s in samples] == [r for _, r in pairs]
    for a, (pa, _) in zip(samples, pairs, strict=True):
        for b, (pb, _) in zip(samples, pairs, strict=True):
            assert (a.group == b.group) == (pa == pb)
    # Another request with the same prompts gets other groups: requests never mix.
    other, _ = parse_request(body, tag="u")
    assert not {s.group for s in samples} & {s.group for s in other}


@given(st.lists(st.sampled_from(["a", "b"]), min_size=1, max_size=12))
def test_trl_groups_are_runs_of_equal_prompts(prompts):
    samples = trl_samples(prompts, ["x"] * len(prompts))
    runs = sum(1 for i, p in enumerate(prompts) if i == 0 or p != prompts[i - 1])
    assert len({s.group for s in samples}) == runs
    for i in range(1, len(prompts)):
        assert (samples[i].group == samples[i - 1].group) == (prompts[i] == prompts[i - 1])
