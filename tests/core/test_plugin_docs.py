"""What docs/plugin-hooks.md tells plugin authors holds (names, defaults, behaviours)."""

from __future__ import annotations

import asyncio
import pickle
import re
import threading
from pathlib import Path

import numpy as np
import pytest

import rewardplug
from rewardplug.combine import sample_seed
from rewardplug.hookspecs import RegisterCriterion, RegisterSource  # the documented import path
from rewardplug.types import Sample, Score

DOC = (Path(__file__).resolve().parents[2] / "docs" / "plugin-hooks.md").read_text()


class _Counting(rewardplug.RewardSource):
    class Config(rewardplug.SourceConfig):
        threshold: float = 0.5

    transient = ("_model",)

    def __init__(self, config=None, **options):
        super().__init__(config, **options)
        self._model = None
        self.threads: list[str] = []

    def score(self, samples):
        self.threads.append(threading.current_thread().name)
        if self._model is None:
            self._model = object()  # stands in for a loaded model
        out = []
        for s in samples:
            rng = np.random.default_rng(sample_seed(s, 17))
            out.append(Score.of(draws=list(self.config.threshold + rng.normal(0, 0.1, 4))))
        return out


def test_documented_names_exist():
    assert "sample_seed(sample, salt)" in DOC and "self.config" in DOC
    assert RegisterSource.__name__ in DOC and RegisterCriterion.__name__ in DOC
    for field in re.findall(r"^- \*\*`Sample`\*\*.*?(?=^- \*\*)", DOC, re.S | re.M)[0].split("`"):
        if field.isidentifier() and field not in ("Sample", "rewardplug", "gold", "quality"):
            assert field in Sample.model_fields, field


def test_config_is_validated_into_self_config():
    assert _Counting(threshold=0.7).config.threshold == 0.7
    assert _Counting({"threshold": 0.2}).config.threshold == 0.2


def test_value_and_draws_as_documented():
    assert Score.of(value=0.3).draws == [0.3]
    assert Score.of(draws=[0.2, 0.4]).value == pytest.approx(0.3)
    assert Score.of(value=1.0, draws=[0.2, 0.4]).value == 1.0


def test_transient_attributes_are_dropped_by_pickling_and_rebuilt():
    src = _Counting()
    src.score([Sample(prompt="p", response="r")])
    copy = pickle.loads(pickle.dumps(src))
    assert copy._model is None and copy.config.threshold == 0.5


def test_default_ascore_runs_score_in_a_worker_thread_and_seeds_by_sample():
    src = _Counting()
    a, b = Sample(prompt="p", response="a"), Sample(prompt="p", response="b")
    together = asyncio.run(src.ascore([a, b]))
    assert src.threads[-1] != threading.main_thread().name
    alone = src.score([b])
    assert together[1].draws == alone[0].draws  # the batch does not change a sample's draws
