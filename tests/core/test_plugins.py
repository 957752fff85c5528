"""The pluggy host: entry points, broken and disabled plugins, duplicates, docs, import cost."""

from __future__ import annotations

import inspect
import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from rewardplug import hookspecs, load_stack
from rewardplug.cli import cli

ROOT = Path(__file__).resolve().parents[2]


def make_distribution(
    site: Path, name: str, module_source: str, entry_name: str | None = None
) -> None:
    """Install a tiny distribution by hand: a module plus a dist-info with a rewardplug entry point."""
    (site / f"{name}.py").write_text(textwrap.dedent(module_source))
    info = site / f"{name}-0.3.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.3.0\n")
    (info / "entry_points.txt").write_text(f"[rewardplug]\n{entry_name or name} = {name}\n")


@pytest.fixture
def site(tmp_path, monkeypatch, fresh_plugins):
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def report():
    result = CliRunner().invoke(cli, ["plugins"])
    assert result.exit_code == 0, result.output
    return {p["name"]: p for p in json.loads(result.output)}


def test_python_source_is_listed():
    info = report()["python"]
    assert info["sources"] == ["python"] and info["error"] is None and info["version"]


def test_broken_plugin_is_reported_and_others_still_load(site):
    make_distribution(site, "rp_broken", "raise ImportError('needs a missing library')\n")
    make_distribution(
        site,
        "rp_good",
        """
        import rewardplug
        from rewardplug.sources.python import PythonSource

        class Good(PythonSource):
            pass

        @rewardplug.hookimpl
        def register_sources(register):
            register("good", Good)
    """,
    )
    plugins = report()
    assert "needs a missing library" in plugins["rp_broken"]["error"]
    assert plugins["rp_good"]["sources"] == ["good"] and plugins["rp_good"]["version"] == "0.3.0"
    stack = load_stack(
        {
            "sources": [
                {
                    "name": "g",
                    "use": "good",
                    "with": {"function": "tests.core.rewards_fixture:exact_match"},
                }
            ]
        }
    )
    assert stack.score([{"prompt": "p", "response": "1", "gold": "1"}])[0].reward == 1.0


def test_duplicate_source_names_are_rejected_and_attributed(site):
    make_distribution(
        site,
        "rp_dupe",
        """
        import rewardplug
        from rewardplug.sources.python import PythonSource

        @rewardplug.hookimpl
        def register_sources(register):
            register("python", PythonSource)
    """,
    )
    plugins = report()
    assert "already registered by plugin 'python'" in plugins["rp_dupe"]["error"]
    assert plugins["python"]["sources"] == ["python"]


def test_misspelt_hook_fails_loudly(site):
    make_distribution(
        site,
        "rp_typo",
        """
        import rewardplug

        @rewardplug.hookimpl
        def register_source(register):
            pass
    """,
    )
    assert "register_source" in report()["rp_typo"]["error"]


def test_disable_env_blocks_plugins(site, monkeypatch):
    make_distribution(site, "rp_off", "raise RuntimeError('must not be imported')\n")
    monkeypatch.setenv("REWARDPLUG_DISABLE_PLUGINS", "rp_off, other")
    assert "rp_off" not in report()


def test_third_party_hello_plugin_through_its_entry_point(site):
    # Register examples/rewardplug-hello exactly as pip would: its package plus a dist-info
    # carrying the entry point from its pyproject.toml.
    hello = ROOT / "examples" / "rewardplug-hello"
    entry = re.search(
        r"\[project\.entry-points\.rewardplug\]\s*\n(.+)", (hello / "pyproject.toml").read_text()
    )
    assert entry, "the example must declare a rewardplug entry point"
    sys.path.insert(0, str(hello))
    try:
        info = site / "rewardplug_hello-0.1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(
            "Metadata-Version: 2.1\nName: rewardplug-hello\nVersion: 0.1.0\n"
        )
        name, _, module = entry.group(1).partition("=")  # TOML: hello = "rewardplug_hello"
        (info / "entry_points.txt").write_text(
            f"[rewardplug]\n{name.strip()} = {module.strip().strip(chr(34))}\n"
        )
        assert report()["hello"]["sources"] == ["hello"]
        stack_file = site / "hello.yaml"
        stack_file.write_text(
            "sources:\n  - name: greets\n    use: hello\n    with: {greetings: [hello, hi]}\n"
        )
        rewards = load_stack(stack_file).score(
            [{"prompt": "p", "response": r} for r in ("Hello there", "Goodbye", "")]
        )
        assert [r.raw for r in rewards] == [1.0, 0.0, None]
        assert rewards[2].status == "abstain" and "empty response" in rewards[2].reason
    finally:
        sys.path.remove(str(hello))


def test_every_hook_is_documented_with_its_signature():
    doc = (ROOT / "docs" / "plugin-hooks.md").read_text()
    hooks = [
        name
        for name, obj in vars(hookspecs).items()
        if callable(obj) and hasattr(obj, "rewardplug_spec")
    ]
    assert {"register_sources", "register_commands", "register_criteria"} <= set(hooks)
    for name in hooks:
        assert f"## {name}" in doc, f"docs/plugin-hooks.md has no section for hook {name!r}"
        params = ", ".join(inspect.signature(getattr(hookspecs, name)).parameters)
        assert f"def {name}({params}" in doc, f"the documented signature of {name} is out of date"
        assert getattr(hookspecs, name).__doc__.count(":param") >= 1


def test_importing_rewardplug_is_light():
    code = (
        "import sys, rewardplug\n"
        "rewardplug.Sample, rewardplug.discretize, rewardplug.load_stack\n"
        "heavy = [m for m in ('torch', 'transformers', 'openai', 'litellm', 'ray', 'fastapi') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "from importlib.metadata import entry_points\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_import_does_not_scan_entry_points():
    code = "import rewardplug.plugins as p, rewardplug; print(p._STATE is None)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "True", out.stderr


def test_a_broken_source_module_shows_in_the_plugin_report(site):
    # a plugin registering its source by an import path that does not import
    make_distribution(
        site,
        "rp_lazy_broken",
        "import rewardplug\n\n"
        "@rewardplug.hookimpl\n"
        "def register_sources(register):\n"
        "    register('lazy_broken', 'rp_lazy_broken_missing_module:Source')\n",
    )
    info = report()["rp_lazy_broken"]
    assert info["sources"] == ["lazy_broken"]
    assert "'lazy_broken' of plugin 'rp_lazy_broken' cannot be loaded" in info["error"]
    assert "rp_lazy_broken_missing_module" in info["error"]
