"""benchmarks/rl_trl_gpu.py (the GPU-sized TRL experiment): its config, arguments and gold.

The GRPO runs themselves need a GPU; here the parts that decide what they measure are checked:
the shipped config validates, bad configs fail naming the key, the gold function grades GSM8K
answers as the references do, and the data split has the configured sizes.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture(scope="module")
def gpu():
    spec = importlib.util.spec_from_file_location("rl_trl_gpu", BENCH / "rl_trl_gpu.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["rl_trl_gpu"] = module
    spec.loader.exec_module(module)
    return module


def test_the_shipped_config_validates_and_its_stack_loads(gpu):
    import rewardplug

    args = gpu.parse_args([])
    assert args.config == BENCH / "rl_trl_gpu.yaml" and not args.tiny
    settings = gpu.load_settings(args.config)
    assert set(settings.arms) == {"raw", "discretized", "gold"}
    assert settings.grpo["beta"] > 0  # TRL logs KL only then
    stack = rewardplug.load_stack(settings.proxy)  # validated, not loaded: no model is read here
    assert stack.config.discretize.confidence == 0.9
    assert gpu.parse_args(["--tiny", "--arms", "raw"]).arms == ["raw"]


def test_bad_configs_fail_naming_the_key(gpu, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("proxy: {sources: []}\nsteps: 3\n")
    with pytest.raises(SystemExit, match="steps: Extra inputs"):
        gpu.load_settings(bad)
    bad.write_text("proxy: {sources: []}\narms: [raw, hacked]\n")
    with pytest.raises(SystemExit, match=r"unknown arm\(s\) \['hacked'\]"):
        gpu.load_settings(bad)
    with pytest.raises(SystemExit, match="cannot read"):
        gpu.load_settings(tmp_path / "missing.yaml")


def test_gold_is_the_final_number_against_the_reference(gpu):
    ref = "She makes 9 * 2 = $<<9*2=18>>18 every day.\n#### 18"
    big = "Total: 1000 + 250.\n#### 1,250"
    completions = [
        "9 * 2 = 18, so she makes 18 dollars.",
        "She makes 9 * 2 = $<<9*2=18>>18 every day.\n#### 17",  # looks right, is wrong
        "no idea",
        [{"role": "assistant", "content": "The answer is 1,250."}],
        "#### 18.",
    ]
    refs = [ref, ref, ref, big, ref]
    assert gpu.gold_correct(completions, refs) == [1.0, 0.0, 0.0, 1.0, 1.0]
    assert gpu.final_number(big) == "1250"


def test_problems_split_train_from_heldout(gpu, shared_data):
    settings = gpu.load_settings(BENCH / "rl_trl_gpu.yaml")
    train, held = gpu.problems(settings, tiny=False)
    assert (len(train), len(held)) == (settings.train_problems, settings.heldout_problems)
    assert not {r["answer"] for r in train} & {r["answer"] for r in held}
    assert train[0]["prompt"][0]["role"] == "user" and "####" in train[0]["reference"]
    tiny_train, _ = gpu.problems(settings, tiny=True)
    assert isinstance(tiny_train[0]["prompt"], str)  # the tiny tokenizer has no chat template
