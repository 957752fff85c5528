"""What docs/plugin-hooks.md tells plugin authors holds (names, defaults, behaviours)."""

from __future__ import annotations

import asyncio
import inspect
import pickle
import re
import threading
import types
from pathlib import Path

import numpy as np
import pytest

import rewardplug
from rewardplug import combine_rules, transform_kinds
from rewardplug.combine import sample_seed
from rewardplug.hookspecs import (  # the documented import path
    RegisterCombiner,
    RegisterCriterion,
    RegisterSource,
    RegisterTransform,
)
from rewardplug.rules import CombineFn, TransformFn
from rewardplug.types import Sample, Score

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "plugin-hooks.md").read_text()
HELLO_RULES = (ROOT / "examples" / "rewardplug-hello" / "rewardplug_hello" / "rules.py").read_text()


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


# -- register_transforms / register_combiners ------------------------------------------------


def test_rule_hooks_document_their_types_and_function_signatures():
    assert RegisterTransform.__name__ in DOC and RegisterCombiner.__name__ in DOC
    assert TransformFn is not None and CombineFn is not None  # the documented aliases exist
    for name in ("rewardplug.plugin_api.TransformFn", "rewardplug.plugin_api.CombineFn"):
        assert name in DOC, name
    assert "`function(values, config, context) -> values`" in DOC
    assert "`function(values, weights, present, config) -> combined`" in DOC
    # the built-ins are written to the documented signatures
    for fn in (transform_kinds.apply_par, transform_kinds.apply_overlong):
        assert list(inspect.signature(fn).parameters) == ["values", "config", "context"]
    for fn in (combine_rules.weighted_sum, combine_rules.minimum, combine_rules.mean_minus_var):
        assert list(inspect.signature(fn).parameters) == ["values", "weights", "present", "config"]


def _python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, re.S)


def test_the_documented_example_is_the_example_package_code():
    """The doc's transform and combine rule are the ones examples/rewardplug-hello ships (and
    tests/core/test_plugins.py runs), so the doc cannot drift from working code."""
    section = DOC[DOC.index("## register_transforms") :]
    shown = [b for b in _python_blocks(section) if "def threshold" in b or "def softmin" in b]
    assert len(shown) == 2
    for block in shown:
        code = block.split("\n\n@rewardplug.hookimpl")[0].strip()
        code = code.split("\n\n\n", 1)[-1] if code.startswith("import") else code
        assert code in HELLO_RULES, code[:80]


class _Centred(rewardplug.TransformConfig):
    needs_reference = True


def _record(values, config, context):
    context.detail["text"] = context.text
    return values + 1.0


def _centred(values, config, context):
    return values - context.reference


def _boom(values, config, context):
    raise RuntimeError("no luck")


def _short(values, config, context):
    return values[:1]


@pytest.fixture
def toy_rules(fresh_plugins):
    """A plugin object with the transforms the doc's guarantees are checked with."""

    def register_transforms(register):
        register("record", _record, rewardplug.TransformConfig)
        register("centred", _centred, _Centred)
        register("boom", _boom, rewardplug.TransformConfig)
        register("short", _short, rewardplug.TransformConfig)

    plugin = types.SimpleNamespace(register_transforms=rewardplug.hookimpl(register_transforms))
    fresh_plugins.get_plugin_manager().register(plugin, name="toy")
    return fresh_plugins


def _score(transform, response="abcd", reference="ab"):
    stack = rewardplug.load_stack(
        {
            "sources": [
                {
                    "name": "s",
                    "use": "python",
                    "with": {"function": "tests.core.transform_rewards:length_draws"},
                    "transform": transform,
                }
            ],
            "discretize": {"enabled": False},
        }
    )
    row = {"prompt": "p", "response": response, "reference": reference}
    return stack.score([row])[0].sources["s"]


def test_transform_context_detail_and_reference_as_documented(toy_rules):
    got = _score(["record"])
    assert got.draws == [4.5, 5.0, 5.5] and got.value == 5.0
    assert got.detail["transform"] == [{"kind": "record", "text": "abcd"}]
    # centred on the reference's score at that point of the chain: the reference went through
    # `record` too (2 + 1), and the response's values are 4 + 1
    got = _score(["record", "centred"])
    assert got.value == 2.0 and got.detail["transform"][1]["reference_value"] == 3.0
    assert _score(["centred"], reference=None).status == "abstain"


def test_a_transform_that_raises_or_changes_the_shape_errs_that_sample(toy_rules):
    raised = _score(["boom"])
    assert (
        raised.status == "error" and "transform boom raised RuntimeError: no luck" in raised.reason
    )
    short = _score(["short"])
    assert short.status == "error" and "returned shape (1,)" in short.reason


def test_a_rule_registered_with_a_config_that_is_not_a_rule_config_is_a_load_error(fresh_plugins):
    def register_combiners(register):
        register("bad", combine_rules.weighted_sum, dict)

    plugin = types.SimpleNamespace(register_combiners=rewardplug.hookimpl(register_combiners))
    fresh_plugins.get_plugin_manager().register(plugin, name="bad_rules")
    assert "bad" not in fresh_plugins.combiners().names()
    error = fresh_plugins._state().infos["bad_rules"].error
    assert "must subclass rewardplug.rules.CombineConfig" in error
