"""`rewardplug --help` and core commands answer without importing plugin command modules."""

from __future__ import annotations

import json
import subprocess
import sys

from click.testing import CliRunner

from rewardplug.cli import cli

# modules a plugin's commands or sources pull in; none belongs to starting the CLI
HEAVY = (
    "rewardplug_rubric.model",
    "rewardplug_neural.common",
    "rewardplug_judge.source",
    "rewardplug_code.source",
    "torch",
    "numpy",
    "rich",
    "pydantic",  # the plugin modules hold hooks only; sources (pydantic models) load on use
)


def _run_cli(args: list[str]) -> tuple[subprocess.CompletedProcess, int, set[str]]:
    """The CLI run in a fresh interpreter: its output, exit code and every module it imported."""
    code = (
        "import sys, json\n"
        "from rewardplug.cli import main\n"
        "code = 0\n"
        "try:\n"
        f"    main({args!r})\n"
        "except SystemExit as exc:\n"
        "    code = exc.code or 0\n"
        "print(json.dumps({'exit': code, 'modules': sorted(sys.modules)}), file=sys.stderr)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    report = json.loads(out.stderr.strip().splitlines()[-1])
    return out, report["exit"], set(report["modules"])


def _modules_after(args: list[str]) -> set[str]:
    out, _, modules = _run_cli(args)
    assert "Usage" in out.stdout
    return modules


def test_help_lists_plugin_commands_without_importing_them():
    loaded = _modules_after(["--help"])
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))
    assert "rewardplug_rubric.cli" in loaded  # listed, so its (cheap) command module is read


def test_help_names_the_plugin_command_group():
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    assert "rubric" in result.output and "score" in result.output


def test_a_core_command_does_not_load_plugin_commands():
    loaded = _modules_after(["validate", "--help"])
    assert "rewardplug_rubric.cli" not in loaded
    assert not loaded & set(HEAVY)


def test_a_plugin_command_is_found_on_demand():
    result = CliRunner().invoke(cli, ["rubric", "list"])
    assert result.exit_code == 0, result.output
    assert result.output.strip()


def test_model_loading_progress_is_quiet_unless_verbose(tmp_path):
    """transformers' weight-loading bar reaches stderr only with `rewardplug -v`."""
    import os

    import pytest

    pytest.importorskip("torch")
    (tmp_path / "stack.yaml").write_text(
        "sources:\n  - name: sim\n    use: embedding_similarity\n    with: {mc_samples: 2}\n"
    )
    rows = [{"prompt": "q", "response": r, "reference": "a cat"} for r in ("a cat", "a dog")]
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("TQDM_DISABLE", "TRANSFORMERS_VERBOSITY", "HF_HUB_DISABLE_PROGRESS_BARS")
    }
    env["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"

    def run(*flags: str) -> str:
        code = "import sys; from rewardplug.cli import main; main(sys.argv[1:])"
        out = subprocess.run(
            [
                sys.executable,
                "-c",
                code,
                *flags,
                "score",
                "stack.yaml",
                "in.jsonl",
                "-o",
                "out.jsonl",
                "--overwrite",
            ],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
            env=env,
        )
        assert out.returncode == 0, out.stderr[-2000:]
        return out.stderr

    assert "Loading weights" in run("-v")
    assert "Loading weights" not in run()


def test_loading_a_stack_imports_only_the_sources_it_uses(tmp_path):
    (tmp_path / "stack.yaml").write_text(
        "sources:\n  - name: s\n    use: python\n"
        '    with: {function: "tests.core.rewards_fixture:exact_match"}\n'
    )
    code = (
        "import json, sys\n"
        "import rewardplug\n"
        f"rewardplug.load_stack({str(tmp_path / 'stack.yaml')!r})\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    loaded = set(json.loads(out.stdout.strip().splitlines()[-1]))
    assert "rewardplug.sources.python" in loaded
    others = {
        "rewardplug_code.source",
        "rewardplug_judge.source",
        "rewardplug_rubric.source",
        "rewardplug_neural.rm_source",
        "rewardplug_neural.embedding_source",
        "scipy",
    }
    assert not loaded & others, sorted(loaded & others)


def test_scoring_an_empty_input_loads_no_numpy_asyncio_or_rich(tmp_path):
    """Start-up (issue 14): a stack loads and an empty input is scored without the libraries that
    only scoring needs -- and a non-empty input through the same command still scores."""
    (tmp_path / "stack.yaml").write_text(
        "sources:\n  - name: s\n    use: python\n"
        '    with: {function: "tests.core.rewards_fixture:exact_match"}\n'
    )
    (tmp_path / "empty.jsonl").write_text("")
    out, exit_code, loaded = _run_cli(
        ["score", str(tmp_path / "stack.yaml"), str(tmp_path / "empty.jsonl"), "-o",
         str(tmp_path / "out.jsonl")]
    )  # fmt: skip
    assert exit_code == 0, out.stderr
    assert "rewardplug.sources.python" in loaded  # the stack was really built
    scoring_only = {"numpy", "asyncio", "rich", "scipy"}
    assert not loaded & scoring_only, sorted(loaded & scoring_only)
    assert "holds no samples" in out.stderr
    (tmp_path / "one.jsonl").write_text('{"prompt": "q", "response": "a", "gold": "a"}\n')
    result = CliRunner().invoke(
        cli,
        [
            "score",
            str(tmp_path / "stack.yaml"),
            str(tmp_path / "one.jsonl"),
            "-o",
            str(tmp_path / "one-out.jsonl"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "one-out.jsonl").read_text())["reward"] == 1.0


def test_a_source_whose_module_fails_to_import_is_named_with_its_plugin(monkeypatch):
    from rewardplug import plugins

    registry = plugins.sources()
    monkeypatch.setitem(registry.entries, "broken", "no_such_module_here:Source")
    monkeypatch.setitem(registry.owner, "broken", "someplugin")
    import pytest

    with pytest.raises(LookupError, match="'broken' of plugin 'someplugin' cannot be loaded"):
        registry.get("broken")
