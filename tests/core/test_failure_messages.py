"""One clean message per failure: a source that is down is one warning line naming the reason, the
URL and what to check; its traceback only with ``rewardplug -v`` (or the rewardplug logger at
DEBUG); and a warning points at the user's call, never at rewardplug's internals."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
import warnings
from pathlib import Path

import rewardplug
from rewardplug.runner import score_file
from rewardplug.source import RewardSource
from tests.chat_server import closed_port

ROOT = Path(__file__).resolve().parents[2]
TESTS = {"kind": "call", "entry_point": "add", "cases": [{"args": [1, 2], "expected": 3}]}


def _dead_judge_run(tmp_path: Path, *flags: str) -> tuple[subprocess.CompletedProcess, str]:
    url = f"http://127.0.0.1:{closed_port()}/v1"
    (tmp_path / "stack.yaml").write_text(
        "sources:\n"
        "  - {name: tests, use: test_cases, floor: 0.0}\n"
        "  - name: judge\n"
        "    use: llm_judge\n"
        "    floor: 0.0\n"
        f"    with: {{backend: openai, model: my-model, base_url: '{url}', max_retries: 0}}\n"
        "on_abstain: floor\n"
    )
    rows = [
        {"prompt": "add", "response": f"def add(a, b): return a {op} b", "tests": TESTS}
        for op in "+-"
    ]
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"}
    out = subprocess.run(
        [sys.executable, "-m", "rewardplug", *flags, "score", "stack.yaml", "in.jsonl", "-o", "o"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=120,
    )
    return out, url


def test_a_dead_judge_is_one_warning_line_and_no_traceback(tmp_path):
    out, url = _dead_judge_run(tmp_path)
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr
    about_judge = [line for line in out.stderr.splitlines() if "judge" in line]
    assert len(about_judge) == 1, out.stderr
    (line,) = about_judge
    assert line.startswith("warning: source 'judge' could not score 2 of 2 samples in a batch")
    assert url in line and "Is the server running? Check `base_url`" in line
    # no location inside rewardplug, no echoed source line, no warning class
    assert "rewardplug/" not in out.stderr and "UserWarning" not in out.stderr
    assert "stack.score(" not in out.stderr


def test_verbose_adds_the_traceback_and_still_warns_once(tmp_path):
    out, _ = _dead_judge_run(tmp_path, "-v")
    assert out.returncode == 0, out.stderr
    assert "Traceback (most recent call last)" in out.stderr
    assert "FatalBackendError" in out.stderr
    warned = [line for line in out.stderr.splitlines() if line.startswith("warning: source")]
    assert len(warned) == 1, out.stderr


BROKEN = {
    "name": "flaky",
    "use": "python",
    "with": {"function": "tests.core.rewards_fixture:always_down"},
}


def _caught(call) -> list[warnings.WarningMessage]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        call()
    return [w for w in caught if "could not score" in str(w.message)]


def test_the_warning_points_at_the_users_call():
    stack = rewardplug.load_stack({"sources": [BROKEN]})
    caught = _caught(lambda: stack.score([{"prompt": "p", "response": "r"}]))
    assert len(caught) == 1
    assert caught[0].filename == __file__
    assert issubclass(caught[0].category, UserWarning)


def test_the_warning_points_at_the_users_call_of_score_file_and_ascore(tmp_path):
    (tmp_path / "in.jsonl").write_text('{"prompt": "p", "response": "r"}\n')
    stack = rewardplug.load_stack({"sources": [BROKEN]})
    caught = _caught(lambda: score_file(stack, tmp_path / "in.jsonl", tmp_path / "out.jsonl"))
    assert [w.filename for w in caught] == [__file__]

    async def main():
        return await rewardplug.load_stack({"sources": [BROKEN]}).ascore([{"response": "r"}])

    caught = _caught(lambda: asyncio.run(main()))
    assert [w.filename for w in caught] == [__file__]


class Raises(RewardSource):
    def score(self, samples):
        raise OSError("disk on fire")


def test_a_raising_source_logs_no_traceback_above_debug(caplog):
    stack = rewardplug.load_stack({"sources": [{"name": "flaky", "use": f"{__name__}:Raises"}]})
    with caplog.at_level(logging.DEBUG, logger="rewardplug"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(3):
            stack.score([{"prompt": "p", "response": "r"}])
    with_traceback = [r for r in caplog.records if r.exc_info]
    assert [r.levelno for r in with_traceback] == [logging.DEBUG]  # once, at DEBUG
    assert "'flaky'" in with_traceback[0].getMessage()
    assert all(r.levelno < logging.WARNING or not r.exc_info for r in caplog.records)
