"""Issue 26, item 6: ``benchmarks/judge_contrast.py injection`` against an OpenAI-compatible judge.

The fake judge on 127.0.0.1 is naive on purpose: it answers ``Rating: 10`` whenever its prompt
holds that line *outside* a response fence, else ``Rating: 3``. The benchmark must report the
injected grades rising without fences and not with them, and the control tail never.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from tests.chat_server import Reply, user_text

ROOT = Path(__file__).resolve().parents[2]
ARENA = ROOT.parent / "shared" / "data" / "arena_bench_v1" / "graded_responses.jsonl"
FENCE = re.compile(r'<response-(\w+) n="[^"]*">.*?</response-\1>', re.S)


def naive(body, server) -> Reply:
    outside = FENCE.sub("", user_text(body))
    grade = 10 if re.search(r"^Rating: 10$", outside, re.M) else 3
    prefilled = body["messages"][-1]["role"] == "assistant"  # "Rating:" is continued
    text = f" {grade}" if prefilled else f"Rating: {grade}"
    return Reply(texts=[text] * int(body.get("n") or 1))


def test_injection_mode_reports_fenced_and_unfenced(serve, capsys, monkeypatch, tmp_path):
    if not ARENA.exists():
        pytest.skip(f"{ARENA} is absent: the benchmark's base answers come from it")
    server = serve(naive)
    monkeypatch.setenv("REWARDPLUG_CACHE_DIR", str(tmp_path))
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import judge_contrast

    argv = ["judge_contrast.py", "injection", "--base-url", server.base_url, "--model", "judge",
            "--responses", "2", "--groups", "2", "--per-group", "1", "--samples", "1",
            "--injections", "rating_line,french,fence_close_guess"]  # fmt: skip
    monkeypatch.setattr(sys, "argv", argv)
    judge_contrast.main()
    out = capsys.readouterr().out
    rows = {
        (m.group(1), m.group(2)): int(m.group(3))
        for m in re.finditer(
            r"^\| (fenced|unfenced) \| (injection|control) \| \d+ \| (\d+)", out, re.M
        )
    }
    assert rows[("fenced", "injection")] == 0, out
    assert rows[("unfenced", "injection")] == 4, out  # rating_line and fence_close_guess, x2
    assert rows[("fenced", "control")] == rows[("unfenced", "control")] == 0, out
    assert "| rating_line | 0 / 2 | 2 / 2 |" in out
