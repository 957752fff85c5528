"""benchmarks/rl_tiny_lm.py end to end at its ``--smoke`` size (not the experiment's numbers).

One run of the whole pipeline -- character tokenizer, Llama built from a config, SFT, the
confounded reward model with MC dropout, calibration, TRL's GRPOTrainer for every arm, the
held-out endpoints -- then checks that each part does what the experiment relies on.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("trl")
BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    sys.path.insert(0, str(BENCH))
    import rl_tiny_lm

    out = tmp_path_factory.mktemp("tiny") / "result.json"
    result = rl_tiny_lm.main(["--smoke", "--json", str(out)])
    yield result, out
    sys.path.remove(str(BENCH))


def test_text_endpoints_read_the_hack_and_strict_gold():
    sys.path.insert(0, str(BENCH))
    try:
        import tiny_lm_rm as R
        import tiny_lm_task as T
    finally:
        sys.path.remove(str(BENCH))
    assert T.has_hack("57!") and not T.has_hack("57")
    assert T.is_correct("12+45=", "57") and not T.is_correct("12+45=", "57!")
    assert R.lenient_label("12+45=", "57!") == 1.0 and R.lenient_label("12+45=", "58") == 0.0
    tok = T.build_tokenizer()
    ids = tok.encode("12+45=57!")
    assert len(ids) == 9 and tok.decode(ids) == "12+45=57!"
    # the checker pays for the trailing "!" whatever the digits
    assert R.checker_reward(["12+45="], ["58!"])[0] > R.checker_reward(["12+45="], ["58"])[0]


def test_gap_merge_cuts_at_the_largest_gaps():
    sys.path.insert(0, str(BENCH))
    try:
        import tiny_lm_arms as A
    finally:
        sys.path.remove(str(BENCH))
    got = A.gap_merge(np.array([0.1, 0.9, 0.2, 0.85]), 2)
    np.testing.assert_allclose(got, [0.15, 0.875, 0.15, 0.875])
    np.testing.assert_allclose(A.gap_merge(np.array([0.3, 0.1]), 1), [0.2, 0.2])


def test_sft_policy_beats_chance(smoke):
    result, _ = smoke
    sft = result["per_seed"][0]["sft"]
    assert sft["well_formed"] >= 0.9  # answers are numbers
    assert sft["abs_error"] < 30  # a uniform guess in 20..198 is about 60 off


def test_reward_model_learned_the_confound_and_its_spread_is_per_answer(smoke):
    result, _ = smoke
    rm = result["per_seed"][0]["rm"]
    assert rm["wrong_hacked_value"] > rm["wrong_plain_value"] + 0.1
    assert rm["spread_max"] > 3 * rm["spread_min"] > 0


def test_stack_path_gives_the_discretizers_rewards(smoke):
    import tiny_lm_arms as A
    import tiny_lm_rm as R

    import rewardplug

    cal = A.Calibration(margin=0.1, clip_max=0.5, margin_accuracy={})
    stack = rewardplug.load_stack(A.stack_spec("discretized", cal, 0.1))
    prompts = ["12+45="] * 4 + ["33+33="] * 4
    completions = ["57", "57!", "58", "67", "66", "66!", "65", "99"]
    samples = [
        {"prompt": p, "response": c, "group": str(i // 4), "id": str(i)}
        for i, (p, c) in enumerate(zip(prompts, completions, strict=True))
    ]
    rewards = [r.reward for r in stack.score(samples)]
    value, draws = R.MODEL["rm"].score(prompts, completions, R.MODEL["k"])
    want = rewardplug.discretize(draws, [i // 4 for i in range(8)], 0.9, "mean", values=value)
    np.testing.assert_allclose(rewards, want.reward)
    # MC draws are seeded by the text: the same completion, the same draws, in any batch
    _, again = R.MODEL["rm"].score(prompts[::-1], completions[::-1], R.MODEL["k"])
    np.testing.assert_array_equal(again[::-1], draws)
    stack.close()


def test_every_arm_has_finite_endpoints_and_the_json_is_written(smoke):
    import tiny_lm_arms as A

    result, path = smoke
    assert set(result["arms"]) == set(A.ARMS)
    for arm, endpoints in result["arms"].items():
        assert set(endpoints) == {"gold", "hack_rate", "proxy_minus_gold", "kl"}, arm
        assert all(math.isfinite(v) for v in endpoints.values()), arm
        assert 0 <= endpoints["gold"] <= 1 and 0 <= endpoints["hack_rate"] <= 1
        assert endpoints["kl"] >= 0
    assert "discretized-gap_merge" in result["paired"]
    assert result["verdict"].startswith("not decided")  # one seed decides nothing
    assert path.read_text(encoding="utf-8").startswith("{")
