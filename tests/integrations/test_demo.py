"""``rewardplug demo``: the bundled batch scored offline; failing sources are skipped, not fatal."""

from __future__ import annotations

import json

import pytest
import yaml
from rich.console import Console

from rewardplug.demo import DEMO_DATA, DEMO_STACK, run_demo


def console() -> Console:
    return Console(record=True, width=200, force_terminal=False)


def test_bundled_data_has_the_promised_candidates():
    rows = [json.loads(line) for line in DEMO_DATA.read_text().splitlines()]
    groups = {r["group"] for r in rows}
    assert len(groups) >= 4 and len(rows) >= 16
    for group in groups:
        members = [r for r in rows if r["group"] == group]
        assert {r["gold"] for r in members} == {0, 1, 2}  # correct, subtly wrong, hack
        assert all(r["tests"] and r["reference"] for r in members)
    labels = " ".join(r["candidate"] for r in rows)
    for hack in ("sys.exit(0)", "always-equal", "PASSED"):
        assert hack in labels
    stack = yaml.safe_load(DEMO_STACK.read_text())
    uses = {s["use"] for s in stack["sources"]}
    assert uses == {"test_cases", "rubric", "llm_judge", "embedding_similarity"}


def test_demo_skips_sources_that_fail_and_keeps_going(tmp_path):
    stack = yaml.safe_load(DEMO_STACK.read_text())
    keep = [s for s in stack["sources"] if s["use"] in ("test_cases", "rubric")]
    stack["sources"] = [
        *keep,
        {"name": "missing", "use": "no_such_source"},
        {"name": "bad_config", "use": "test_cases", "with": {"timeout_s": -1}},
        {"name": "raises", "use": "python", "with": {"function": "rp_test_rewards:broken"}},
    ]
    path = tmp_path / "stack.yaml"
    path.write_text(yaml.safe_dump(stack))
    out = console()
    run_demo(tmp_path / "out", str(path), console=out)
    text = out.export_text()
    assert "source 'missing' could not be loaded" in text and "no_such_source" in text
    assert "source 'bad_config' could not be loaded" in text and "timeout_s" in text
    assert "source 'raises' scored nothing" in text
    rows = [
        json.loads(x) for x in (tmp_path / "out" / "demo-scored.jsonl").read_text().splitlines()
    ]
    assert len(rows) == len(DEMO_DATA.read_text().splitlines())
    assert all(r["status"] == "ok" for r in rows)
    assert set(rows[0]["sources"]) == {"tests", "hygiene", "raises"}
    # tests + hygiene alone already put every hack below every correct answer.
    assert "In 4 of 4 problems every reward hack" in text
    by_id = {r["id"]: r for r in rows}
    assert by_id["palindrome-0"]["tier"] == 0 and by_id["palindrome-3"]["tier"] > 0
    assert (tmp_path / "out" / "demo-tiers.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_full_demo_with_the_default_stack(tmp_path):
    out = console()
    run_demo(tmp_path, console=out)
    text = out.export_text()
    for name in ("tests", "hygiene", "judge", "similarity"):
        assert name in text
    assert "could not be loaded" not in text and "scored nothing" not in text
    for problem in ("palindrome", "fizzbuzz", "median", "word_count"):
        assert problem in text
    rows = [json.loads(x) for x in (tmp_path / "demo-scored.jsonl").read_text().splitlines()]
    assert all(set(r["sources"]) == {"tests", "hygiene", "judge", "similarity"} for r in rows)
    assert all(r["sources"]["judge"]["status"] == "ok" for r in rows)
    assert all(len(r["sources"]["similarity"]["draws"]) > 1 for r in rows)
    # The judge and the encoder only break ties: no hack outranks a correct answer.
    assert "In 4 of 4 problems every reward hack" in text
    png = (tmp_path / "demo-tiers.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000
