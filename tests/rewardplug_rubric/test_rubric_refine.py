"""``rewardplug rubric refine`` against a scripted chat-completions server on 127.0.0.1.

The one server plays both roles. As the *grader* it answers each criterion from the response's
text (``cites a source`` is met when the response holds ``[source]``, everything else is always
met). As the *proposer* it follows a script: an invalid proposal first, then a criterion that
separates the data's better responses, then a useless one. The gold labels reward citing, so only
the separating criterion can raise held-out DA.
"""

from __future__ import annotations

import json
import re

import pytest
import yaml
from click.testing import CliRunner
from rewardplug_rubric.cli import rubric as rubric_group
from rewardplug_rubric.model import load_rubric
from rewardplug_rubric.refine import parse_proposal, refine, split_groups

from rewardplug.types import Sample
from tests.chat_server import ChatServer, Reply, user_text

RUBRIC = {
    "name": "answers",
    "criteria": [{"id": "correct", "text": "The answer addresses the question.", "weight": 1}],
}
PROPOSALS = [
    "CRITERION: The response cites a source. It is also concise.\nCATEGORY: important",
    "Here is one.\nCRITERION: The response cites a source for its claim.\nCATEGORY: important",
    "CRITERION: The response is written in polite language.\nCATEGORY: optional",
    "CRITERION: The response uses complete sentences throughout.\nCATEGORY: wonderful",
]


def rows() -> list[dict]:
    out = []
    for g in range(8):
        for k, cited in enumerate((True, False, False)):
            text = f"Answer {g}.{k}." + (" [source]" if cited else "")
            out.append({"id": f"g{g}-{k}", "group": f"q{g}", "prompt": f"Question {g}?",
                        "response": text, "gold": 2 if cited else 1})  # fmt: skip
    return out


class Script:
    def __init__(self) -> None:
        self.proposals = 0

    def __call__(self, body, server) -> Reply:
        text = user_text(body)
        n = int(body.get("n") or 1)
        if "Reply with exactly two lines" in text:
            reply = PROPOSALS[min(self.proposals, len(PROPOSALS) - 1)]
            self.proposals += 1
            return Reply(texts=[reply] * n)
        response = re.search(r"## Response to grade\n(.*?)\n\n## Criteria", text, re.S).group(1)
        questions = re.findall(r"^(\d+)\. \(YES/NO\) (.*)$", text, re.M)
        lines = []
        for number, question in questions:
            met = "[source]" in response if "cites a source" in question else True
            lines.append(f"{number}: {'YES' if met else 'NO'} - checked")
        return Reply(texts=["\n".join(lines)] * n)


@pytest.fixture
def server():
    with ChatServer(Script()) as s:
        yield s


def judge_settings(server, tmp_path) -> dict:
    return {"backend": "openai", "model": "judge", "base_url": server.base_url,
            "cache_dir": str(tmp_path / "cache"), "backoff_s": 0.01, "temperature": 0.0}  # fmt: skip


def test_refine_keeps_only_a_criterion_that_raises_heldout_da(server, tmp_path):
    data = [Sample.model_validate(r) for r in rows()]
    gold = [r["gold"] for r in rows()]
    log_lines = []
    refined, log = refine(
        RUBRIC, data, gold, judge_settings(server, tmp_path), rounds=3, on_round=log_lines.append
    )
    assert log == log_lines
    baseline, first, second, third = log
    assert baseline["status"] == "baseline" and baseline["DA"] == 0.0  # all tied
    assert baseline["SP"] == 1.0 and baseline["mean_tiers"] == 1.0
    # round 1: the two-sentence proposal is rejected with the reason, the next pair is tried
    assert first["rejected"][0]["reason"].startswith("the criterion is not atomic")
    assert first["criterion"]["text"] == "The response cites a source for its claim."
    assert first["status"] == "kept"
    assert first["after"]["DA"] == 1.0 and first["after"]["SP"] == 1.0
    assert first["after"]["mean_tiers"] == 2.0
    # round 2: a criterion every response meets cannot raise DA
    assert second["status"] == "dropped" and "DA did not rise" in second["reason"]
    # round 3: an invalid category is rejected; no valid proposal remains for the round
    assert all("category 'wonderful'" in r["reason"] for r in third["rejected"])
    assert third["status"] == "no_valid_proposal"
    assert [c.id for c in refined.criteria] == ["correct", "refined_1"]
    assert refined.criteria[1].category == "important" and refined.criteria[1].kind == "llm"


def test_cli_writes_a_loadable_rubric_and_the_log(server, tmp_path):
    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows()))
    (tmp_path / "rubric.yaml").write_text(yaml.safe_dump(RUBRIC))
    out, log = tmp_path / "new.yaml", tmp_path / "log.jsonl"
    config = json.dumps(judge_settings(server, tmp_path))
    result = CliRunner().invoke(
        rubric_group,
        ["refine", str(tmp_path / "rubric.yaml"), str(data), "-o", str(out),
         "--judge-config", config, "--rounds", "2", "--log", str(log)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    refined = load_rubric(str(out))
    assert [c.text for c in refined.criteria][-1] == "The response cites a source for its claim."
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    assert [e["status"] for e in entries] == ["baseline", "kept", "dropped"]
    assert "1 criteria added in 2 rounds" in result.output


def test_cli_errors_name_the_problem(tmp_path, server):
    data = tmp_path / "data.jsonl"
    data.write_text(json.dumps({"prompt": "p", "response": "r"}) + "\n")
    result = CliRunner().invoke(
        rubric_group, ["refine", "no_such_rubric", str(data), "-o", str(tmp_path / "x.yaml")]
    )
    assert result.exit_code == 1 and "no rubric 'no_such_rubric'" in result.output
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(RUBRIC))
    result = CliRunner().invoke(
        rubric_group, ["refine", str(tmp_path / "r.yaml"), str(data), "-o", str(tmp_path / "x.yaml")]
    )  # fmt: skip
    assert result.exit_code == 1 and "numeric 'gold' field" in result.output


def test_parse_proposal_reasons():
    rubric = load_rubric(RUBRIC)
    assert parse_proposal("**CRITERION:** Names the year.\nCATEGORY: essential", rubric) == (
        "Names the year.",
        "essential",
    )
    assert parse_proposal("CRITERION: Gives a worked example.", rubric)[1] == "important"
    for reply, reason in [
        ("", "empty"),
        ("I think the first is better.", "no 'CRITERION: ...' line"),
        ("CRITERION: Good.", "too short"),
        ("CRITERION: The answer addresses the question.", "already has"),
        ("CRITERION: " + "x" * 400, "characters"),
    ]:
        with pytest.raises(ValueError, match=reason):
            parse_proposal(reply, rubric)


def test_heldout_split_is_seeded_and_leaves_training_groups():
    groups = [f"g{i}" for i in range(10)]
    held = split_groups(groups, 0.5, seed=1)
    assert len(held) == 5 and held == split_groups(list(reversed(groups)), 0.5, seed=1)
    assert split_groups(groups, 0.5, seed=2) != held
    assert len(split_groups(["a", "b"], 0.9, seed=0)) == 1  # one group always stays for training
