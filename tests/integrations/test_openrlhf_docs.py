"""The OpenRLHF command lines in the docs, checked with OpenRLHF 0.11's own argument parser.

``openrlhf/cli/train_ppo_ray.py`` builds its parser inside ``if __name__ == "__main__":`` next to
its imports of ray and vLLM, so the module cannot be imported here. The test takes that block's
statements from the module's source, unchanged: those before ``args = parser.parse_args()`` build
the parser, and those after it, up to ``train(args)``, are OpenRLHF's own checks of the parsed
arguments (e.g. ``group_norm requires n_samples_per_prompt > 1``). Both run as OpenRLHF wrote
them; only the command line comes from the docs.
"""

from __future__ import annotations

import argparse
import ast
import re
import shlex
from datetime import datetime
from pathlib import Path

import click
import pytest

from rewardplug.cli_run import serve
from tests.frameworks import require

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "openrlhf.md"
INTEGRATIONS = ROOT / "docs" / "integrations.md"
MARK = "<!-- openrlhf-command:"
FLAG = re.compile(r"(?<![\w-])--[a-z][\w.-]*[\w]")


def train_ppo_ray_source() -> str:
    require("openrlhf.utils.config")  # puts .frameworks/openrlhf on sys.path (or skips)
    import importlib.util

    spec = importlib.util.find_spec("openrlhf.cli")
    assert spec is not None and spec.submodule_search_locations
    return (Path(next(iter(spec.submodule_search_locations))) / "train_ppo_ray.py").read_text()


def main_block(source: str) -> list[ast.stmt]:
    tree = ast.parse(source)
    for node in tree.body:
        if (
            isinstance(node, ast.If)
            and isinstance(node.test, ast.Compare)
            and isinstance(node.test.left, ast.Name)
            and node.test.left.id == "__name__"
        ):
            return node.body
    raise AssertionError("train_ppo_ray.py has no `if __name__ == '__main__':` block")


def _is_parse_args(stmt: ast.stmt) -> bool:
    return (
        isinstance(stmt, ast.Assign)
        and isinstance(stmt.value, ast.Call)
        and isinstance(stmt.value.func, ast.Attribute)
        and stmt.value.func.attr == "parse_args"
    )


def _is_train_call(stmt: ast.stmt) -> bool:
    return (
        isinstance(stmt, ast.Expr)
        and isinstance(stmt.value, ast.Call)
        and isinstance(stmt.value.func, ast.Name)
        and stmt.value.func.id == "train"
    )


class OpenRLHFParser:
    """OpenRLHF 0.11's ``train_ppo_ray`` parser and argument checks, from its own source."""

    def __init__(self) -> None:
        body = main_block(train_ppo_ray_source())
        cut = next(i for i, s in enumerate(body) if _is_parse_args(s))
        end = next(i for i, s in enumerate(body) if _is_train_call(s))
        self.namespace: dict = {"argparse": argparse, "datetime": datetime, "__name__": "docs"}
        exec(compile(ast.Module(body[:cut], []), "train_ppo_ray.py", "exec"), self.namespace)
        self.parser: argparse.ArgumentParser = self.namespace["parser"]
        self.checks = compile(ast.Module(body[cut + 1 : end], []), "train_ppo_ray.py", "exec")
        self.options = set(self.parser._option_string_actions)

    def parse(self, argv: list[str]):
        """Parse and check ``argv`` as ``python -m openrlhf.cli.train_ppo_ray`` would."""
        # exact names only: argparse would also take an unambiguous prefix of a renamed flag
        unknown = [a.split("=")[0] for a in argv if a.startswith("--")]
        unknown = [a for a in unknown if a not in self.options]
        assert not unknown, f"not OpenRLHF 0.11 flags: {unknown}"
        namespace = {**self.namespace, "args": self.parser.parse_args(argv)}
        exec(self.checks, namespace)
        return namespace["args"]


@pytest.fixture(scope="module")
def openrlhf() -> OpenRLHFParser:
    return OpenRLHFParser()


def fenced_block_after(text: str, mark: str) -> str:
    at = text.index(mark)
    start = text.index("```", at)
    start = text.index("\n", start) + 1
    return text[start : text.index("```", start)]


def command_lines(block: str) -> list[list[str]]:
    """Each shell command of a fenced block, split as bash would (comments and ``\\`` joins)."""
    joined = re.sub(r"\\\n", " ", block)
    commands = []
    for line in joined.splitlines():
        words = shlex.split(line, comments=True)
        if words:
            commands.append(words)
    return commands


def documented_training_command() -> list[str]:
    (words,) = command_lines(fenced_block_after(EXAMPLE.read_text(), MARK))
    assert words[:3] == ["python", "-m", "openrlhf.cli.train_ppo_ray"], words
    return words[3:]


def documented_serve_command() -> list[str]:
    text = EXAMPLE.read_text()
    block = fenced_block_after(text, "## Command lines")
    (words,) = command_lines(block)
    assert words[:2] == ["rewardplug", "serve"], words
    return words[2:]


def test_the_documented_training_command_parses_with_openrlhf(openrlhf):
    args = openrlhf.parse(documented_training_command())
    assert args.reward.remote_url == ["http://127.0.0.1:5000/get_reward"]
    assert args.data.label_key == "label" and args.data.input_key == "prompt"
    assert args.algo.advantage.estimator == "group_norm"
    # the documented server matches the documented trainer
    serve_args = serve.make_context("serve", documented_serve_command()).params
    assert serve_args["group_size"] == args.rollout.n_samples_per_prompt
    assert serve_args["eval_group_size"] == args.eval.n_samples_per_prompt
    assert args.reward.remote_url[0].startswith(f"http://127.0.0.1:{serve_args['port']}/")


@pytest.mark.parametrize(
    "old",
    ["--prompt_data", "--n_samples_per_prompt", "--remote_rm_url", "--rollout.n_samples"],
)
def test_a_wrong_flag_name_fails(openrlhf, old):
    argv = [*documented_training_command(), old, "8"]
    with pytest.raises((AssertionError, SystemExit)):
        openrlhf.parse(argv)


def test_openrlhf_own_checks_run(openrlhf):
    """The checks after ``parse_args`` are OpenRLHF's: group_norm needs n > 1."""
    argv = documented_training_command()
    at = argv.index("--rollout.n_samples_per_prompt")
    argv[at + 1] = "1"
    with pytest.raises(AssertionError, match="requires n_samples_per_prompt > 1"):
        openrlhf.parse(argv)


def openrlhf_doc_text() -> str:
    """examples/openrlhf.md, plus the OpenRLHF section and table rows of docs/integrations.md."""
    text = INTEGRATIONS.read_text()
    section = text[text.index("## OpenRLHF") :]
    section = section[: section.index("\n## ", 1)]
    rows = [line for line in text.splitlines() if line.startswith("| OpenRLHF")]
    assert rows, "docs/integrations.md has no OpenRLHF table row"
    return "\n".join([EXAMPLE.read_text(), section, *rows])


def test_every_flag_in_the_openrlhf_docs_exists(openrlhf):
    """Each ``--flag`` is OpenRLHF 0.11's or ``rewardplug serve``'s: no pre-0.11 names."""
    ours = {o for p in serve.params if isinstance(p, click.Option) for o in p.opts}
    flags = set(FLAG.findall(openrlhf_doc_text()))
    unknown = sorted(f for f in flags if f not in openrlhf.options and f not in ours)
    assert not unknown, f"flags that neither OpenRLHF 0.11 nor rewardplug serve has: {unknown}"
    assert {"--reward.remote_url", "--rollout.n_samples_per_prompt"} <= flags
