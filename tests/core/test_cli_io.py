"""`rewardplug score / eval / validate` and JSONL handling: bad input, resume, output rows."""

from __future__ import annotations

import json
import math

import pytest
from click.testing import CliRunner

from rewardplug.cli import cli
from rewardplug.io import InputError, load_jsonl, prepare_resume
from rewardplug.runner import score_file

STACK = """\
sources:
  - name: em
    use: python
    with: {function: "tests.core.rewards_fixture:exact_match"}
  - name: q
    use: python
    with: {function: "tests.core.rewards_fixture:noisy"}
"""


@pytest.fixture
def stack_file(tmp_path):
    path = tmp_path / "stack.yaml"
    path.write_text(STACK)
    return path


def write_jsonl(path, rows, extra_lines=()):
    lines = [json.dumps(r) for r in rows] + list(extra_lines)
    path.write_text("\n".join(lines) + "\n")
    return path


def rows_for(n_groups=5, per_group=4):
    return [
        {
            "id": f"{g}-{i}",
            "prompt": f"question {g}",
            "response": str(i % 2),
            "gold": "1",
            "quality": round(0.1 * i, 2),
            "source_dataset": "toy",
        }
        for g in range(n_groups)
        for i in range(per_group)
    ]


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def test_score_writes_input_fields_plus_reward_fields(tmp_path, stack_file):
    inp = write_jsonl(tmp_path / "in.jsonl", rows_for(2, 3))
    out = tmp_path / "out.jsonl"
    result = run("score", stack_file, inp, "-o", out)
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == [r["id"] for r in rows_for(2, 3)]
    first = rows[0]
    assert first["source_dataset"] == "toy" and first["gold"] == "1"
    for key in ("reward", "raw", "std", "tier", "n_tiers", "status", "sources"):
        assert key in first
    assert set(first["sources"]) == {"em", "q"}


def test_malformed_line_names_file_and_line(tmp_path, stack_file):
    inp = write_jsonl(tmp_path / "in.jsonl", rows_for(1, 2), ['{"prompt": "p", "response": '])
    result = run("score", stack_file, inp, "-o", tmp_path / "o.jsonl")
    assert result.exit_code == 1
    assert f"{inp}:3: invalid JSON" in result.output and "--skip-bad" in result.output


def test_missing_response_names_the_field(tmp_path):
    inp = write_jsonl(tmp_path / "in.jsonl", [{"prompt": "p"}])
    with pytest.raises(InputError, match=r"in.jsonl:1: response: Field required"):
        load_jsonl(inp)


def test_skip_bad_skips_and_counts(tmp_path, stack_file):
    inp = write_jsonl(tmp_path / "in.jsonl", rows_for(1, 2), ["not json", "[1, 2]"])
    out = tmp_path / "o.jsonl"
    result = run("score", stack_file, inp, "-o", out, "--skip-bad")
    assert result.exit_code == 0
    assert "skipped 2 bad lines" in result.output
    assert len(out.read_text().splitlines()) == 2


def test_duplicate_ids_are_rejected(tmp_path):
    inp = write_jsonl(
        tmp_path / "in.jsonl", [{"id": 1, "response": "a"}, {"id": "1", "response": "b"}]
    )
    with pytest.raises(InputError, match="duplicate id '1' \\(first on line 1\\)"):
        load_jsonl(inp)


def test_empty_input_gives_empty_output(tmp_path, stack_file):
    inp = tmp_path / "empty.jsonl"
    inp.write_text("")
    out = tmp_path / "o.jsonl"
    result = run("score", stack_file, inp, "-o", out)
    assert result.exit_code == 0 and out.read_text() == ""
    assert "holds no samples" in result.stderr


def test_an_existing_output_is_neither_replaced_nor_appended_silently(tmp_path, stack_file):
    inp = write_jsonl(tmp_path / "in.jsonl", rows_for(2))
    out = tmp_path / "o.jsonl"
    assert run("score", stack_file, inp, "-o", out).exit_code == 0
    before = out.read_text()
    again = run("score", stack_file, inp, "-o", out)
    assert again.exit_code == 1
    assert "already holds 8 rows" in again.stderr and "--resume" in again.stderr
    assert "--overwrite" in again.stderr
    assert out.read_text() == before
    assert run("score", stack_file, inp, "-o", out, "--overwrite").exit_code == 0
    assert out.read_text() == before  # replaced by the same rows, not doubled
    both = run("score", stack_file, inp, "-o", out, "--overwrite", "--resume")
    assert both.exit_code == 2


def test_an_interrupted_run_says_what_was_saved_and_how_to_resume(tmp_path):
    stack = tmp_path / "stack.yaml"
    stack.write_text(
        "sources:\n  - name: s\n    use: python\n"
        '    with: {function: "tests.core.rewards_fixture:interrupt_on_stop"}\n'
    )
    rows = rows_for(4)
    rows[-1]["response"] = "STOP"  # in the last group, so the second batch
    inp = write_jsonl(tmp_path / "in.jsonl", rows)
    out = tmp_path / "o.jsonl"
    result = run("score", stack, inp, "-o", out, "--batch-size", "8")
    assert result.exit_code == 130
    assert "interrupted: 8 scored rows are saved" in result.stderr
    assert "--resume" in result.stderr
    assert len(out.read_text().splitlines()) == 8


def test_sample_without_group_is_grouped_by_prompt(tmp_path):
    inp = write_jsonl(
        tmp_path / "in.jsonl",
        [
            {"prompt": "a", "response": "x"},
            {"prompt": "a", "response": "y"},
            {"prompt": "b", "response": "z"},
        ],
    )
    samples = load_jsonl(inp).samples
    assert samples[0].group == samples[1].group != samples[2].group
    assert [s.id for s in samples] == ["1", "2", "3"]


def test_resume_after_a_crash_loses_and_duplicates_nothing(tmp_path, stack_file):
    from tests.core import rewards_fixture

    inp = write_jsonl(tmp_path / "in.jsonl", rows_for(6, 4))
    full = tmp_path / "full.jsonl"
    score_file(str(stack_file), inp, full, batch_size=4)
    expected = full.read_text().splitlines()

    crashed = tmp_path / "crashed.jsonl"
    crashed.write_text("\n".join(expected[:10]) + "\n" + expected[10][:25])
    rewards_fixture.CALLS.clear()
    result = run("score", stack_file, inp, "-o", crashed, "--resume", "--batch-size", 4)
    assert result.exit_code == 0, result.output
    assert "8 already there" in result.output
    assert crashed.read_text().splitlines() == expected
    # groups 0-1 were not scored again; the partial group 2 was rescored whole
    assert sum(rewards_fixture.CALLS) == 16


def test_prepare_resume_is_a_no_op_on_a_complete_file(tmp_path, stack_file):
    inp = write_jsonl(tmp_path / "in.jsonl", rows_for(2, 2))
    out = tmp_path / "o.jsonl"
    score_file(str(stack_file), inp, out)
    before = out.read_text()
    assert prepare_resume(out, load_jsonl(inp).samples) == {r["id"] for r in rows_for(2, 2)}
    assert out.read_text() == before


def test_validate_exit_codes(tmp_path, stack_file):
    assert run("validate", stack_file).exit_code == 0
    bad = tmp_path / "bad.yaml"
    bad.write_text(STACK.replace("use: python", "use: pyhton", 1))
    result = run("validate", bad)
    assert result.exit_code == 1
    assert "sources[0].use (line 3): unknown source 'pyhton'; known:" in result.output


def test_eval_writes_json_and_plot(tmp_path, stack_file):
    rows = []
    for g in range(12):
        for i in range(4):
            good = i < 2
            rows.append(
                {
                    "prompt": f"q{g}",
                    "response": "1" if good else "0",
                    "gold": "1",
                    "quality": 0.5 + (0.01 * i if good else 0.0),
                    "label": int(good),
                }
            )
    inp = write_jsonl(tmp_path / "d.jsonl", rows)
    report_path, plot = tmp_path / "r.json", tmp_path / "p.png"
    result = run(
        "eval",
        stack_file,
        inp,
        "--gold",
        "label",
        "--json",
        report_path,
        "--plot",
        plot,
        "--bootstrap",
        200,
    )
    assert result.exit_code == 0, result.output
    report = json.loads(report_path.read_text())
    for part in ("raw", "discretized"):
        assert set(report[part]) >= {"discriminative_ability", "specificity", "accuracy"}
    # the raw reward separates the two good answers by noise (0.01), the discretized one ties them
    assert report["raw"]["specificity"] < report["discretized"]["specificity"] == 1.0
    assert report["discretized"]["discriminative_ability"] == 1.0
    assert len(report["sweep"]) >= 5
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # tiers per group: every group is {two tied good answers} + {two tied bad ones}
    assert report["n_tiers_mean"] == 2.0 and report["n_tiers_distribution"] == {"2": 12}
    assert all(p["n_tiers_mean"] is not None for p in report["sweep"])
    assert "tiers per group (discretized): mean 2.00" in result.output


def test_eval_without_gold_field_fails_clearly(tmp_path, stack_file):
    inp = write_jsonl(tmp_path / "d.jsonl", rows_for(1, 2))
    result = run("eval", stack_file, inp, "--gold", "nope")
    assert (
        result.exit_code == 1
        and "no sample has a numeric or boolean gold field 'nope'" in result.output
    )


def test_plot_labels_coinciding_points_once():
    from rewardplug.evaluation import _point_labels

    sweep = [
        {"confidence": c, "discriminative_ability": 1.0, "specificity": 0.5} for c in (0.5, 0.8)
    ] + [{"confidence": 0.9, "discriminative_ability": 0.9, "specificity": 0.7}]
    assert _point_labels(sweep) == {(1.0, 0.5): "0.5-0.8", (0.9, 0.7): "0.9"}


def test_rows_are_synced_at_most_every_interval_and_always_at_the_end(tmp_path, monkeypatch):
    import os

    from rewardplug import io

    synced: list[int] = []
    monkeypatch.setattr(io.os, "fsync", lambda fd: synced.append(fd) or os.fstat(fd))
    with io.RowWriter(tmp_path / "a.jsonl", sync_interval_s=3600) as writer:
        for i in range(5):
            writer.append([{"i": i}])
        assert synced == []  # written and flushed (a killed process keeps them), not yet synced
        assert len((tmp_path / "a.jsonl").read_text().splitlines()) == 5
    assert len(synced) == 1  # on close
    synced.clear()
    with io.RowWriter(tmp_path / "b.jsonl", sync_interval_s=0) as writer:
        for i in range(3):
            writer.append([{"i": i}])
    assert len(synced) == 3  # every batch once the interval has passed; nothing left at close


def test_a_killed_score_process_resumes_without_loss_or_duplicates(tmp_path):
    """SIGKILL mid-run (no flush, no close), then --resume: the same rows as one clean run."""
    import os
    import signal
    import subprocess
    import sys
    import time

    stack = tmp_path / "stack.yaml"
    stack.write_text(
        "sources:\n  - name: s\n    use: python\n"
        '    with: {function: "tests.core.rewards_fixture:slow_length"}\n'
    )
    inp = write_jsonl(tmp_path / "in.jsonl", rows_for(60, 4))
    full, cut = tmp_path / "full.jsonl", tmp_path / "cut.jsonl"
    score_file(str(stack), inp, full, batch_size=8)
    code = "import sys; from rewardplug.cli import main; main(sys.argv[1:])"
    args = [sys.executable, "-c", code, "score", str(stack), str(inp), "-o", str(cut),
            "--batch-size", "8"]  # fmt: skip
    proc = subprocess.Popen(args, cwd=os.getcwd(), stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (not cut.exists() or cut.stat().st_size < 2000):
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert 0 < len(cut.read_text().splitlines()) < 240
    assert run("score", stack, inp, "-o", cut, "--resume", "--batch-size", 8).exit_code == 0
    assert sorted(cut.read_text().splitlines()) == sorted(full.read_text().splitlines())


def _reward_of(stack_dict, row):
    from rewardplug import load_stack
    from rewardplug.types import Sample

    return load_stack(stack_dict).score([Sample.model_validate(row)])[0]


def test_written_row_is_the_input_plus_the_rewards_json_fields():
    """The fast serializer writes exactly what the reward's own JSON dump says."""
    from rewardplug.io import dump_row, output_row

    stack = {
        "sources": [{"name": "len", "use": "python", "with": {"function": "builtins:len"}}],
        "discretize": {"enabled": False},
    }
    row = {"id": "a", "prompt": "p", "response": "héllo ✓", "extra": {"n": [1, 2.5, None]}}
    reward = _reward_of(stack, row)
    line = dump_row(output_row(row, reward))
    assert "\n" not in line
    assert json.loads(line) == {**row, **reward.row_fields()}
    assert "héllo ✓" in line  # UTF-8 as it is, like ensure_ascii=False


def test_rows_the_fast_serializer_cannot_encode_are_still_written(tmp_path):
    """A lone surrogate (legal as a JSON escape, not in UTF-8) and NaN from the input survive."""
    from rewardplug.io import RowWriter, dump_row, output_row

    stack = {"sources": [{"name": "len", "use": "python", "with": {"function": "builtins:len"}}]}
    row = json.loads('{"id": "s", "prompt": "p", "response": "x", "note": "\\ud800", "v": NaN}')
    reward = _reward_of(stack, row)
    out = tmp_path / "o.jsonl"
    with RowWriter(out) as writer:
        writer.append([output_row(row, reward)])
    back = json.loads(out.read_text(encoding="utf-8"))
    assert back["note"] == "\ud800" and math.isnan(back["v"])
    assert back == json.loads(json.dumps({**row, **reward.row_fields()}))
    assert dump_row({"a": 1}) == '{"a":1}'


def test_the_loaded_file_is_frozen_for_the_collector_from_the_first_progress_call(
    tmp_path, stack_file
):
    """The first progress call imports rich; a full collection during that import used to walk
    every loaded row (77 ms on 100k rows). From the first call on, the loaded rows are frozen
    out of the cyclic collector; afterwards they are given back."""
    import gc

    inp = write_jsonl(tmp_path / "in.jsonl", rows_for(3, 4))
    frozen_at_calls = []
    before = gc.get_freeze_count()
    score_file(
        stack_file,
        inp,
        tmp_path / "out.jsonl",
        on_progress=lambda done, total: frozen_at_calls.append(gc.get_freeze_count()),
    )
    assert frozen_at_calls and all(n > before for n in frozen_at_calls)
    assert gc.get_freeze_count() == before
