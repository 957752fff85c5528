"""benchmarks/rl_hacking.py's machinery, end to end on a tiny configuration (not the headline).

The policy, the proxy through a real stack, the draw-free controls (random and gap merge), the
informative spread and the summary contract: a policy trained on gold ends above one trained on a
heavily biased proxy, the biased arm learns the planted feature, the stack path gives exactly the
discretizer's rewards, and ``--quick``'s last line carries every arm's endpoints.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def rl():
    return _load("rl_hacking")


@pytest.fixture(scope="module")
def controls():
    return _load("rl_controls")


@pytest.fixture(scope="module")
def pool(rl, shared_data):
    return rl.load_pool(shared_data / "arena_bench_v1" / "graded_responses.jsonl")


TINY = dict(seeds=4, steps=40, prompts=8, group=8, draws=8, eval_every=10)


def test_gold_arm_beats_a_heavily_biased_raw_arm_and_raw_learns_the_bias(rl, pool):
    hp = replace(rl.Hyper(), **TINY)
    world = rl.make_world(pool, hp)
    samples = rl.batch_samples(hp)
    cell = rl.Cell(beta=2.0, sigma=0.25, regime="fixed")
    gold = rl.train(pool, world, cell, rl.Arm("gold", "gold"), hp, samples)
    raw = rl.train(pool, world, cell, rl.Arm("raw", "raw"), hp, samples)
    start = gold.gold[0]
    assert np.allclose(start, raw.gold[0])  # the same worlds: both start from the uniform policy
    assert (gold.gold[-1] > raw.gold[-1]).all()  # on every seed
    assert (gold.gold[-1] > start + 1.0).all()  # the gold arm really learns (grade points)
    assert raw.bias_weight[-1].min() > 1.0  # the planted feature is picked up...
    assert abs(gold.bias_weight[-1]).max() < 0.5 * raw.bias_weight[-1].min()  # ...only by raw
    assert (raw.gap[-1] > gold.gap[-1] + 0.5).all()  # raw's proxy runs ahead of its gold
    assert (np.diff(np.stack(raw.kl), axis=0)[:2] > 0).all()  # moving away from pi_0


def test_the_proxy_stack_gives_exactly_the_discretizers_rewards(rl, pool):
    from rewardplug import discretize

    hp = replace(rl.Hyper(), seeds=2, prompts=4, group=6, draws=8)
    samples = rl.batch_samples(hp)
    rng = np.random.default_rng(0)
    value = rng.normal(size=(2, 4, 6))
    value[0, 0, 1] = value[0, 0, 0]  # a copy of the same answer: equal estimates share a tier
    draws = value[..., None] + 0.5 * rng.normal(size=(2, 4, 6, 8))
    arm = rl.Arm("d", "discretized", "different", 0.9)
    stack = rl.make_stack(arm, hp, pool)
    reward, n_tiers = rl.stack_rewards(stack, samples, value, draws)
    groups = np.repeat(np.arange(8), 6).astype(str).astype(object)
    ref = discretize(draws.reshape(48, 8), groups, 0.9, values=value.reshape(-1))
    assert np.array_equal(reward.reshape(-1), ref.reward)
    assert reward[0, 0, 0] == reward[0, 0, 1]
    assert n_tiers.tolist() == [
        [ref.n_tiers[str(g)] for g in range(4 * i, 4 * i + 4)] for i in (0, 1)
    ]
    assert (n_tiers < 6).any()  # some ties at this spread, so the check is not vacuous
    raw = rl.make_stack(rl.Arm("r", "raw"), hp, pool)
    raw_reward, _ = rl.stack_rewards(raw, samples, value, draws)
    assert np.array_equal(raw_reward, value)  # raw = the proxy's point score, untouched


@pytest.mark.parametrize("kind", ["random_merge", "gap_merge"])
def test_the_controls_keep_the_tier_count_the_order_and_equal_values_together(controls, kind):
    rng = np.random.default_rng(1)
    value = rng.normal(size=(50, 8))
    value[:, 3] = value[:, 2]
    n_tiers = rng.integers(1, 8, size=50)
    merge = getattr(controls, kind)
    out = merge(value, n_tiers, rng) if kind == "random_merge" else merge(value, n_tiers)
    for v, k, r in zip(value, n_tiers, out, strict=True):
        assert len(np.unique(r)) == k
        assert r[2] == r[3]
        order = np.argsort(-v, kind="stable")
        assert (np.diff(r[order]) <= 1e-12).all()  # a better answer never gets less
        for level in np.unique(r):
            assert np.isclose(v[r == level].mean(), level)  # a tier gets its mean value


def test_random_merge_cuts_at_random_and_gap_merge_at_the_largest_value_gaps(controls):
    rng = np.random.default_rng(1)
    value, n_tiers = rng.normal(size=(50, 8)), rng.integers(2, 8, size=50)
    a = controls.random_merge(value, n_tiers, np.random.default_rng(5))
    b = controls.random_merge(value, n_tiers, np.random.default_rng(6))
    assert not np.array_equal(a, b)  # the cuts really are random
    assert np.array_equal(controls.gap_merge(value, n_tiers), controls.gap_merge(value, n_tiers))
    v = np.array([[5.0, 4.9, 4.8, 2.0, 1.9, 0.0]])
    # gaps best first: 0.1, 0.1, 2.8, 0.1, 1.9 -> 3 tiers cut after 4.8 and after 1.9
    out = controls.gap_merge(v, np.array([3]))
    assert np.allclose(out, [[4.9, 4.9, 4.9, 1.95, 1.95, 0.0]])
    assert np.allclose(controls.gap_merge(v, np.array([1])), v.mean())
    assert np.allclose(controls.gap_merge(v, np.array([6])), v)  # every value its own tier


def test_the_informative_spread_grows_with_the_bias_and_keeps_the_calibrated_mean_square(rl):
    b = np.random.default_rng(2).normal(size=200_000)
    calibrated = rl.Cell(beta=0.5, sigma=0.5)
    informative = rl.Cell(beta=0.5, sigma=0.5, spread="informative")
    tau = informative.tau_of(b)
    assert np.isclose(np.sqrt(np.mean(tau**2)), calibrated.tau, rtol=0.01)
    assert calibrated.tau_of(b) == calibrated.tau  # uninformative: one spread for all
    big, small = np.abs(b) > 1.5, np.abs(b) < 0.3
    assert tau[big].min() > tau[small].max()  # the draws say which answers are unreliable
    assert np.allclose(informative.tau_of(-b), tau)  # their size, never their sign


def test_the_report_reads_results_from_before_dr_grpo_had_its_name(rl):
    rl._on_path()
    report = importlib.import_module("rl_hacking_report")
    old = [{"arms": {"raw": {}, "raw_no_std": {"x": 1}}, "curve_stats": {"raw_no_std": {}}}]
    new = report.upgrade(old)
    assert list(new[0]["arms"]) == ["raw", "dr_grpo"] and new[0]["arms"]["dr_grpo"] == {"x": 1}
    assert list(new[0]["curve_stats"]) == ["dr_grpo"]


def test_the_proxy_function_abstains_outside_its_table_and_refuses_an_empty_one(rl):
    rl._on_path()
    proxy = importlib.import_module("rl_proxy")  # the module the stacks' source imports
    proxy.TABLE.clear()
    with pytest.raises(RuntimeError, match="TABLE is empty"):
        proxy.proxy_reward([0])
    proxy.TABLE.update(value=np.array([0.5]), draws=np.array([[0.4, 0.6]]))
    first, missing = proxy.proxy_reward([0, 3])
    assert first.value == 0.5 and first.draws == [0.4, 0.6]
    assert missing is None


def test_quick_prints_every_arms_endpoints_as_json_on_its_last_line(rl, pool, capsys):
    rl.main(["--quick", "--seeds", "3", "--steps", "4", "--quiet"])
    last = capsys.readouterr().out.strip().splitlines()[-1]
    summary = json.loads(last)
    arms = summary["arms"]
    names = {"raw", "discretized", "random_merge", "gap_merge", "gold", "equivalent", "dr_grpo"}
    assert names <= set(arms)
    spreads = [c["cell"]["spread"] for c in summary["cells"]]
    assert spreads == ["calibrated", "informative"]  # the informative cell beside the primary
    assert summary["cells"][0]["arms"] == arms
    for row in arms.values():
        lo, hi = row["heldout_gold_ci"]
        assert lo <= row["heldout_gold_final"] <= hi
        assert 1.0 <= row["heldout_gold_final"] <= 10.0
        for key in ("proxy_final", "bias_weight_final", "peak_minus_final", "kl_final"):
            assert np.isfinite(row[key])
    assert arms["raw"]["minus_raw"] == 0.0
    assert 1.0 <= arms["discretized"]["tiers_per_group"] <= 8.0
    for control in ("gap_merge", "dr_grpo", "random_merge"):  # paired against each control
        lo, hi = arms["discretized"][f"minus_{control}_ci"]
        assert lo <= arms["discretized"][f"minus_{control}"] <= hi
    assert 1.0 <= arms["gap_merge"]["tiers_per_group"] <= 8.0


def test_the_worlds_table_puts_each_worlds_paired_difference_in_its_column(rl):
    rl._on_path()
    report = importlib.import_module("rl_hacking_report")

    def world(seed: int, d: float) -> dict:
        arm = {"minus_gap_merge": d, "minus_gap_merge_ci": [d - 0.01, d + 0.02]}
        cell = {"beta": 0.5, "sigma": 0.5, "regime": "fixed", "spread": "informative"}
        return {"hyper": {"seed": seed}, "cells": [{"cell": cell, "arms": {"discretized": arm}}]}

    table = report.worlds_table([world(16, 0.008), world(17, -0.013)], "minus_gap_merge")
    header, _, row = table.splitlines()
    assert header == "| cell | world 16 | world 17 |"
    assert row == (
        "| β 0.5, σ 0.5, fixed, spread = informative | +0.01 [-0.00, +0.03] "
        "| -0.01 [-0.02, +0.01] |"
    )
