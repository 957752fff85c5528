"""The pluggy host: entry points, broken and disabled plugins, duplicates, docs, import cost."""

from __future__ import annotations

import inspect
import json
import math
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from rewardplug import StackError, hookspecs, load_stack
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


@pytest.fixture
def hello(site):
    """examples/rewardplug-hello registered exactly as pip would: its package plus a dist-info
    carrying the entry point from its pyproject.toml."""
    package = ROOT / "examples" / "rewardplug-hello"
    entry = re.search(
        r"\[project\.entry-points\.rewardplug\]\s*\n(.+)", (package / "pyproject.toml").read_text()
    )
    assert entry, "the example must declare a rewardplug entry point"
    sys.path.insert(0, str(package))
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
        yield site
    finally:
        sys.path.remove(str(package))
        for name in [m for m in sys.modules if m.startswith("rewardplug_hello")]:
            del sys.modules[name]


def test_third_party_hello_plugin_through_its_entry_point(hello):
    assert report()["hello"]["sources"] == ["hello"]
    stack_file = hello / "hello.yaml"
    stack_file.write_text(
        "sources:\n  - name: greets\n    use: hello\n    with: {greetings: [hello, hi]}\n"
    )
    rewards = load_stack(stack_file).score(
        [{"prompt": "p", "response": r} for r in ("Hello there", "Goodbye", "")]
    )
    assert [r.raw for r in rewards] == [1.0, 0.0, None]
    assert rewards[2].status == "abstain" and "empty response" in rewards[2].reason


HELLO_RULES = f"""\
sources:
  - name: greets
    use: hello
    with: {{greetings: [hello, hi]}}
  - name: quality
    use: python
    with: {{function: "{__package__}.rewards_fixture:given_draws"}}
    transform: [{{threshold: {{at: 0.5}}}}]  # the example plugin's transform
combine: {{softmin: {{tau: 0.1}}}}            # and its combine rule
pairing: paired
discretize: {{enabled: false}}
"""


def test_the_hello_plugin_adds_a_transform_and_a_combine_rule(hello):
    """A third-party transform and combine rule, registered through the hooks and used from a
    YAML stack, exactly as the built-ins are."""
    info = report()
    assert info["hello"]["transforms"] == ["threshold"]
    assert info["hello"]["combiners"] == ["softmin"]
    assert info["rules"]["combiners"] == ["mean_minus_var", "min", "weighted_sum"]
    stack_file = hello / "rules.yaml"
    stack_file.write_text(HELLO_RULES)
    rows = [
        {"prompt": "p", "response": "Goodbye", "draws": [0.7, 0.8]},
        {"prompt": "p", "response": "hi hello", "draws": [0.2, 0.9]},
    ]
    rewards = load_stack(stack_file).score(rows)
    # threshold, draw by draw and on the point estimate (the draws' mean)
    assert [r.sources["quality"].draws for r in rewards] == [[1.0, 1.0], [0.0, 1.0]]
    assert [r.sources["quality"].value for r in rewards] == [1.0, 1.0]

    def softmin(a: float, b: float, tau: float = 0.1) -> float:
        return -tau * math.log(0.5 * math.exp(-a / tau) + 0.5 * math.exp(-b / tau))

    # Goodbye greets no one (0.0) and passes (1.0): between the min (0) and the mean (0.5)
    assert rewards[0].raw == pytest.approx(softmin(0.0, 1.0))
    assert 0.0 < rewards[0].raw < 0.1
    assert rewards[1].raw == pytest.approx(1.0)
    greets = rewards[1].sources["greets"].draws  # paired draw by draw with the thresholded ones
    expected = [softmin(g, q) for g, q in zip(greets, [0.0, 1.0], strict=True)]
    assert rewards[1].std == pytest.approx(float(np.std(expected, ddof=1)))


def test_third_party_rule_names_get_did_you_mean_and_their_keys_are_checked(hello):
    base = HELLO_RULES.replace("discretize: {enabled: false}\n", "")
    for typo, message in [
        ("threshold: {at: 0.5}", None),
        (
            "treshold: {at: 0.5}",
            "unknown transform 'treshold'; known: clip, log_sigmoid, "
            "overlong, par, scale, threshold; did you mean 'threshold'?",
        ),
        (
            "threshold: {att: 0.5}",
            "transform[0].att (line 8): Extra inputs are not permitted; "
            "did you mean 'at'?; allowed keys: kind, at, below, above",
        ),
    ]:
        text = base.replace("threshold: {at: 0.5}", typo)
        for combine, combine_message in [
            ("softmin: {tau: 0.1}", None),
            ("sotfmin: {tau: 0.1}", "did you mean 'softmin'?"),
            ("softmin: {tau: 0}", "combine.tau (line 9): Input should be greater than 0"),
        ]:
            path = hello / "typo.yaml"
            path.write_text(text.replace("softmin: {tau: 0.1}", combine))
            expected = [m for m in (message, combine_message) if m]
            if not expected:
                load_stack(path)
                continue
            with pytest.raises(StackError) as err:
                load_stack(path)
            for m in expected:
                assert m in str(err.value)


def test_every_hook_is_documented_with_its_signature():
    doc = (ROOT / "docs" / "plugin-hooks.md").read_text()
    hooks = [
        name
        for name, obj in vars(hookspecs).items()
        if callable(obj) and hasattr(obj, "rewardplug_spec")
    ]
    assert {
        "register_sources",
        "register_commands",
        "register_criteria",
        "register_transforms",
        "register_combiners",
    } <= set(hooks)
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
    code = "import rewardplug.plugins as p, rewardplug; print(p._default is None)"
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
