"""Shared fixtures: the real evaluation data folder and a clean plugin host per test."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

# Property tests draw the same examples on every run and machine ("ci", the default), so a CI
# result can be reproduced; HYPOTHESIS_PROFILE=explore searches with fresh random examples.
# Timing is never a failure: on a loaded machine (the suite runs on every core) one draw can
# take a second, which Hypothesis's too_slow health check and per-example deadline would fail.
_UNTIMED = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True)
settings.register_profile("ci", derandomize=True, **_UNTIMED)
settings.register_profile("explore", derandomize=False, **_UNTIMED)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# No network in tests: never reach for a model hub, and keep litellm on its bundled price table.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


# Modules that start a Ray cluster run on one xdist worker, one after another (two clusters
# starting at once on a 2-core machine fight over ports and CPUs).
_RAY_MODULES = ("test_ray_engine.py", "test_verl_production.py", "test_verl_reward_loop.py")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.name in _RAY_MODULES:
            item.add_marker(pytest.mark.xdist_group("ray"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` (real evaluation data); the test is skipped when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(
            f"real evaluation data not found at {SHARED_DATA}: these tests read ../shared/data next to the checkout"
        )
    return SHARED_DATA


@pytest.fixture
def fresh_plugins():
    """A new plugin host, current for the test: plugins a test registers never reach the
    process's default host (no reset needed). Yields the ``rewardplug.plugins`` module, whose
    functions act on the current host."""
    from rewardplug import plugins

    with plugins.use_host(plugins.Host()):
        yield plugins
