"""`rewardplug init` writes a starter stack that validates and scores as written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from rewardplug.cli import cli


def _console_script() -> list[str]:
    """The installed `rewardplug` script: unlike `python -c`, it does not put the current
    folder on sys.path, which is what a user's `my_rewards:brevity` needs."""
    script = Path(sys.executable).parent / "rewardplug"
    if not script.exists():
        pytest.skip(f"no console script next to {sys.executable} (is rewardplug installed?)")
    return [str(script)]


def test_init_writes_a_stack_that_validates_and_scores(tmp_path):
    folder = tmp_path / "project"
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    run = lambda *args: subprocess.run(  # noqa: E731
        [*_console_script(), *args], cwd=folder, capture_output=True, text=True, env=env
    )
    folder.mkdir()
    made = run("init")
    assert made.returncode == 0, made.stderr
    assert {p.name for p in folder.iterdir()} == {"stack.yaml", "my_rewards.py", "samples.jsonl"}
    checked = run("validate", "stack.yaml")
    assert checked.returncode == 0, checked.stderr
    assert "brevity (python), tests (test_cases), format (rubric)" in checked.stdout
    scored = run("score", "stack.yaml", "samples.jsonl", "-o", "scored.jsonl")
    assert scored.returncode == 0, scored.stderr
    rows = {r["id"]: r for r in map(json.loads, (folder / "scored.jsonl").open())}
    assert all(r["status"] == "ok" for r in rows.values())
    # the correct add beats the wrong one, which only scores for its brevity and format
    assert rows["add-1"]["reward"] > rows["add-3"]["reward"] > rows["add-2"]["reward"]
    assert (
        rows["add-1"]["sources"]["tests"]["value"]
        > 0.5
        > rows["add-2"]["sources"]["tests"]["value"]
    )


def test_init_refuses_to_replace_files(tmp_path):
    (tmp_path / "stack.yaml").write_text("mine\n")
    result = CliRunner().invoke(cli, ["init", str(tmp_path)])
    assert result.exit_code == 1
    assert "already exist" in result.stderr and "--overwrite" in result.stderr
    assert (tmp_path / "stack.yaml").read_text() == "mine\n"
    assert CliRunner().invoke(cli, ["init", str(tmp_path), "--overwrite"]).exit_code == 0
    assert "sources:" in (tmp_path / "stack.yaml").read_text()
