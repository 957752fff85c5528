"""Stack errors say where: the line of an unknown source, and the file (not "<unicode string>")
of a YAML syntax error, in a stack and in a rubric file it names."""

from __future__ import annotations

import textwrap

import pytest
from click.testing import CliRunner

import rewardplug
from rewardplug.cli import cli
from rewardplug.config import StackError


def test_an_unknown_source_names_its_line(tmp_path):
    path = tmp_path / "stack.yaml"
    path.write_text(
        textwrap.dedent("""\
        sources:
          - name: ok
            use: test_cases
          - name: typo
            use: tset_cases
        """)
    )
    with pytest.raises(StackError) as info:
        rewardplug.load_stack(path)
    (problem,) = info.value.problems
    assert problem.startswith("sources[1].use (line 5): unknown source 'tset_cases'")
    assert "did you mean 'test_cases'?" in problem


def test_a_yaml_syntax_error_names_the_file_and_shows_the_line(tmp_path):
    path = tmp_path / "stack.yaml"
    path.write_text("sources:\n  - name: a\n    use: python\n   with: {x: 1}\n")
    result = CliRunner().invoke(cli, ["validate", str(path)])
    assert result.exit_code == 1
    assert "<unicode string>" not in result.output
    assert f'in "{path}", line 4, column 4' in result.output
    assert "with: {x: 1}" in result.output  # the bad line is still shown


def test_a_rubric_files_syntax_error_names_the_rubric_file(tmp_path):
    rubric = tmp_path / "checks.yaml"
    rubric.write_text("criteria:\n  - id: a\n   text: x\n")
    stack = {"sources": [{"name": "r", "use": "rubric", "with": {"rubric": str(rubric)}}]}
    with pytest.raises(StackError) as info:
        rewardplug.load_stack(stack)
    message = str(info.value)
    assert "<unicode string>" not in message
    assert f'in "{rubric}", line 3, column 4' in message
