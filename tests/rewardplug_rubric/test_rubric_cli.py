"""``rewardplug rubric check|list|generate`` through the register_commands hook."""

from __future__ import annotations

import json

import click
from click.testing import CliRunner
from rewardplug_rubric import plugin
from rewardplug_rubric.generate import parse_checklist

from tests.chat_server import ChatServer, scripted, user_text


def group() -> click.Group:
    @click.group()
    def cli() -> None:
        pass

    plugin.register_commands(cli)
    return cli


def test_check_valid_and_invalid_files(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("criteria:\n  - {id: r, weight: 1, check: {kind: regex, pattern: '(x'}}\n")
    runner = CliRunner()
    ok = runner.invoke(group(), ["rubric", "check", "math_solution", "helpfulness"])
    assert ok.exit_code == 0, ok.output
    assert "ok: math_solution: rubric 'math_solution', 3 criteria" in ok.output
    assert "helpfulness" in ok.output and "needs a judge" in ok.output
    result = runner.invoke(group(), ["rubric", "check", "math_solution", str(bad)])
    assert result.exit_code == 1
    assert "criteria[0] (id 'r'): check.pattern: invalid regular expression" in result.output
    as_json = runner.invoke(group(), ["rubric", "check", "--json", "code_quality"])
    summary = json.loads(as_json.output)
    assert summary["aggregate"] == "essential_gate" and "python" in summary["kinds"]


def test_list_names_the_library():
    result = CliRunner().invoke(group(), ["rubric", "list"])
    names = [line.split(":")[0] for line in result.output.splitlines()]
    expected = {"code_quality", "helpfulness", "instruction_following", "math_solution"}
    assert expected | {"safety_refusal"} <= set(names)


def test_through_the_rewardplug_cli():
    from rewardplug.cli import build_cli

    result = CliRunner().invoke(build_cli(), ["rubric", "check", "safety_refusal"])
    assert result.exit_code == 0, result.output
    assert "ok: safety_refusal" in result.output


def test_parse_checklist_is_lenient_and_deduplicates():
    reply = (
        "Here you go:\n1. **Essential:** Names Paris as the capital.\n"
        "- important - Mentions the Seine.\n* pitfall: Claims Lyon is the capital.\n"
        "optional: ok\nessential: names paris as the capital\nrandom line\n"
    )
    items = parse_checklist(reply)
    assert [(c["category"], c["text"]) for c in items] == [
        ("essential", "Names Paris as the capital."),
        ("important", "Mentions the Seine."),
        ("pitfall", "Claims Lyon is the capital."),
    ]
    assert parse_checklist(reply, max_criteria=2)[-1]["id"] == "c2"


def test_generate_writes_per_prompt_rubrics(tmp_path):
    def replies(body: dict, n: int) -> list[str]:
        text = user_text(body)
        if "Capital of France" in text:
            assert "Reference response 1" in text and "Paris is the capital" in text
            return [
                "essential: Names Paris.\nimportant: Mentions it is on the Seine.\npitfall: Says Lyon."
            ]
        return ["I would rather not."]

    prompts = tmp_path / "prompts.jsonl"
    rows = [{"id": "a", "prompt": "Capital of France?", "ref": "Paris is the capital."},
            {"id": "b", "prompt": "Tell me a joke", "ref": ""}]  # fmt: skip
    prompts.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "rubrics.jsonl"
    with ChatServer(scripted(replies)) as stub:
        args = ["rubric", "generate", str(prompts), "-o", str(out), "--backend", "openai",
                "--model", "writer", "--base-url", stub.base_url, "--reference-field", "ref",
                "--judge-config", json.dumps({"cache": False, "max_retries": 0})]  # fmt: skip
        result = CliRunner().invoke(group(), args)
    assert result.exit_code == 0, result.output
    assert "wrote 1 rubrics" in result.output and "1 prompts without" in result.output
    first, second = (json.loads(line) for line in out.read_text().splitlines())
    assert first["id"] == "a" and first["ref"] == "Paris is the capital."
    assert [c["category"] for c in first["rubric"]["criteria"]] == [
        "essential",
        "important",
        "pitfall",
    ]
    assert "rubric" not in second and "no '<category>: <criterion>' lines" in second["rubric_error"]

    # the written rubrics score as per-sample rubrics
    from rewardplug_rubric.source import RubricSource

    from rewardplug.types import Sample

    sample = Sample(prompt=first["prompt"], response="Paris", rubric=first["rubric"])
    with ChatServer(scripted(lambda body, n: ["1: YES\n2: NO\n3: NO"] * n)) as stub:
        settings = {"backend": "openai", "model": "j", "base_url": stub.base_url, "cache": False}
        (score,) = RubricSource(judge=settings, samples=1).score([sample])
    assert score.value == (1.0 + 0.9) / (1.0 + 0.7 + 0.9)
