"""The README's Quick start, run as a new user would: its stack and its Python snippet.

Its judge points at a server that is not running; the run must finish quickly, warn once naming
the judge and its URL, and score with the tests alone.
"""

from __future__ import annotations

import re
import time
import warnings
from pathlib import Path

import pytest

import rewardplug
from tests.chat_server import closed_port

README = Path(__file__).resolve().parents[2] / "README.md"


def _blocks(kind: str) -> list[str]:
    return re.findall(rf"```{kind}\n(.*?)```", README.read_text(), re.S)


def test_quick_start_without_a_judge_server_warns_naming_the_judge(tmp_path, monkeypatch):
    stack_yaml = next(b for b in _blocks("yaml") if b.startswith("# stack.yaml"))
    assert "127.0.0.1:8000" in stack_yaml
    url = f"http://127.0.0.1:{closed_port()}/v1"  # port 8000 might be taken on a CI machine
    (tmp_path / "stack.yaml").write_text(stack_yaml.replace("http://127.0.0.1:8000/v1", url))
    snippet = next(b for b in _blocks("python") if "load_stack" in b)
    # run the snippet up to its TRL part (GRPOTrainer needs a model)
    code = snippet.split("# no judge server")[0]
    monkeypatch.chdir(tmp_path)
    start = time.monotonic()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        namespace: dict = {"rewardplug": rewardplug}
        exec(compile(code, str(README), "exec"), namespace)
    assert time.monotonic() - start < 30
    messages = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
    judge = [m for m in messages if "'judge'" in m]
    assert len(judge) == 1, messages
    assert url in judge[0] and "cannot reach" in judge[0]
    right, wrong = namespace["rewards"]
    # the judge counts at its floor (0.0): the tests' part alone, 1.0 and 0.0 -- never the
    # renormalized 1.5 that a judge made to fail would give
    assert right.reward == pytest.approx(1.0) and wrong.reward == pytest.approx(0.0)
    assert "judge" in right.reason and "floor" in right.reason
    assert right.tier == 0 and wrong.tier == 1
    assert right.sources["judge"].status == "error"
