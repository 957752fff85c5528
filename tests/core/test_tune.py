"""``rewardplug tune``: scores once, sweeps settings without rescoring, and prints a stack block
that loads -- on synthetic data whose right answer is known, and on the real GSM8K solutions."""

from __future__ import annotations

import json
import random

import pytest
import yaml
from click.testing import CliRunner

import rewardplug
from rewardplug.cli import build_cli
from rewardplug.tuning import tune

CALLS: list[int] = []


def quality(prompts, completions, quality, **_):
    CALLS.append(len(completions))
    return [float(q) for q in quality]


STACK = {
    "sources": [
        {"name": "q", "use": "python", "with": {"function": "tests.core.test_tune:quality"}}
    ]
}


def dataset(seed: int = 0) -> list[dict]:
    """Two good and two bad answers per prompt; the score is gold plus a little noise."""
    rng = random.Random(seed)
    rows = []
    for g in range(30):
        for i in range(4):
            good = i < 2
            q = (1.0 if good else 0.0) + rng.gauss(0, 0.05)
            rows.append({"prompt": f"q{g}", "response": f"r{i}", "quality": q, "label": int(good)})
    return rows


def test_tune_finds_the_noise_that_ties_equal_answers_and_scores_once():
    import tests.core.test_tune as me  # the module the stack imports the function from

    me.CALLS.clear()
    stack = rewardplug.load_stack(STACK)
    samples = [rewardplug.Sample.model_validate(r) for r in dataset()]
    report = tune(stack, samples, "label", n_boot=0)
    assert sum(me.CALLS) == len(samples)  # the source ran once, whatever the sweep
    assert report["raw"]["specificity"] == 0.0  # continuous scores never tie
    chosen = report["chosen"]
    assert chosen["accuracy"] == max(r["accuracy"] for r in report["rows"]) == 1.0
    assert chosen["noise_std"] is not None  # one draw per answer: only noise can tie them
    assert {r["rule"] for r in report["rows"]} == {"different", "equivalent"}
    block = yaml.safe_load(report["yaml"])["discretize"]
    assert block["confidence"] == chosen["confidence"] and block["rule"] == chosen["rule"]
    noise = {"std": chosen["noise_std"]}
    tuned = rewardplug.load_stack(
        {"sources": [{**STACK["sources"][0], "noise": noise}], "discretize": block}
    )
    assert tuned.config.discretize.confidence == chosen["confidence"]


def test_tune_adds_candidate_noise_before_the_sources_transforms():
    """A stack adds declared noise before a source's transforms, so tune does too: its noise
    levels are on the source's own scale, and behind a scaling transform the sweep is the same
    (discretizing is scale-free) -- not ten times larger, as noise added after it would be."""
    samples = [rewardplug.Sample.model_validate(r) for r in dataset()]
    plain = tune(rewardplug.load_stack(STACK), samples, "label", n_boot=0)
    scaled_stack = {
        "sources": [{**STACK["sources"][0], "transform": [{"scale": {"a": 10.0, "b": 0.0}}]}]
    }
    scaled = tune(rewardplug.load_stack(scaled_stack), samples, "label", n_boot=0)
    levels = sorted({r["noise_std"] for r in plain["rows"] if r["noise_std"] is not None})
    assert levels and levels == sorted(
        {r["noise_std"] for r in scaled["rows"] if r["noise_std"] is not None}
    )
    for a, b in zip(plain["rows"], scaled["rows"], strict=True):
        if a["rule"] == "different":  # (equivalent's margins follow the combined scale)
            assert (a["confidence"], a["noise_std"]) == (b["confidence"], b["noise_std"])
            assert a["accuracy"] == b["accuracy"] and a["specificity"] == b["specificity"]
    assert scaled["chosen"]["noise_std"] == plain["chosen"]["noise_std"]


def test_sp_at_max_da_loss_keeps_discriminative_ability():
    stack = rewardplug.load_stack(STACK)
    samples = [rewardplug.Sample.model_validate(r) for r in dataset(1)]
    report = tune(stack, samples, "label", objective="sp_at_max_da_loss", max_da_loss=0.0, n_boot=0)
    assert report["chosen"]["discriminative_ability"] >= report["raw"]["discriminative_ability"]
    with pytest.raises(ValueError, match="objective"):
        tune(stack, samples, "label", objective="best")


def test_tune_command_prints_the_table_and_the_block(tmp_path):
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in dataset()))
    stack = tmp_path / "s.yaml"
    stack.write_text(yaml.safe_dump(STACK))
    out = tmp_path / "r.json"
    result = CliRunner().invoke(
        build_cli(),
        ["tune", str(stack), str(data), "--gold", "label", "--bootstrap", "20", "--json", str(out)],
    )
    assert result.exit_code == 0, result.output
    assert "chosen (best accuracy):" in result.output
    assert "discretize:\n  enabled: true\n  confidence:" in result.output
    assert json.loads(out.read_text())["chosen"]["accuracy"] == 1.0


@pytest.mark.slow
def test_tune_on_real_gsm8k_solutions(shared_data):
    from rewardplug_rubric.evaluate import load_gsm8k

    from rewardplug.paths import examples_dir

    samples, gold = load_gsm8k(shared_data / "gsm8k" / "example_model_solutions.jsonl", limit=60)
    for s, g in zip(samples, gold, strict=True):
        s.metadata["is_correct"] = g
    stack = rewardplug.load_stack(examples_dir() / "stacks" / "math.yaml")
    report = tune(stack, samples, "is_correct", n_boot=50)
    assert report["chosen"]["accuracy"] >= report["raw"]["accuracy"] - 1e-9
    assert report["chosen"]["accuracy"] > 0.9
    assert "discretize:" in report["yaml"]


@pytest.mark.slow
def test_tune_on_real_arena_responses(shared_data):
    """Arena prompts with GPT-4-graded responses, scored by the bundled MiniLM encoder (MC
    dropout) against each prompt's reference answer."""
    pytest.importorskip("torch")
    samples = []
    with (shared_data / "arena_bench_v1" / "graded_responses.jsonl").open() as fh:
        for line, _ in zip(fh, range(12), strict=False):
            row = json.loads(line)
            for j, r in enumerate(row["responses"][:4]):
                samples.append(
                    rewardplug.Sample(
                        id=f"{row['question_id']}-{j}",
                        group=row["question_id"],
                        prompt=row["prompt"],
                        response=r["response"],
                        reference=row["reference"],
                        metadata={"grade": r["gpt4_grade"]},
                    )
                )
    stack = rewardplug.load_stack(
        {
            "sources": [
                {
                    "name": "similarity",
                    "use": "embedding_similarity",
                    "with": {"mc_samples": 8, "dropout_rate": 0.1, "max_length": 128},
                }
            ]
        }
    )
    report = tune(stack, samples, "grade", objective="sp_at_max_da_loss", n_boot=20)
    stack.close()
    assert report["one_draw_sources"] == []  # MC dropout gives draws: no noise sweep needed
    assert report["rows"] and all(r["noise_std"] is None for r in report["rows"])
    chosen = report["chosen"]
    assert chosen["discriminative_ability"] >= report["raw"]["discriminative_ability"] - 0.05
    assert chosen["specificity"] >= report["raw"]["specificity"]
    assert yaml.safe_load(report["yaml"])["discretize"]["confidence"] == chosen["confidence"]


def test_tune_prints_one_line_per_candidate_within_100_columns(tmp_path):
    """The best candidate per noise level and rule, the chosen one marked; --all lists the whole
    sweep, still one line each (once 92 candidates x 3 lines at 80 columns, headers cut)."""
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in dataset()))
    stack = tmp_path / "s.yaml"
    stack.write_text(yaml.safe_dump(STACK))
    out = tmp_path / "r.json"
    args = ["tune", str(stack), str(data), "--gold", "label", "--bootstrap", "20"]
    tables = {}
    for extra in ([], ["--all"]):
        result = CliRunner().invoke(build_cli(), [*args, "--json", str(out), *extra])
        assert result.exit_code == 0, result.output
        lines = result.output.splitlines()
        assert max(len(line) for line in lines) <= 100
        start = next(i for i, line in enumerate(lines) if line.split()[:2] == ["noise", "rule"])
        header = ["noise", "rule", "margin", "confidence", "DA", "SP", "accuracy", "tiers"]
        assert lines[start].split() == header  # every column named in full
        end = next(i for i, line in enumerate(lines) if line.startswith("> = chosen"))
        tables[bool(extra)] = lines[start + 1 : end]
    report = json.loads(out.read_text())
    chosen = report["chosen"]
    for rows in tables.values():
        marked = [row for row in rows if row.startswith(">")]
        assert len(marked) == 1
        cells = marked[0].split()
        assert cells[1:5] == [
            f"{chosen['noise_std']:g}",
            chosen["rule"],
            f"{chosen['margin']:g}",
            f"{chosen['confidence']:g}",
        ]
    families = {(r["noise_std"], r["rule"]) for r in report["rows"]}
    assert len(tables[False]) == len(families) == 8
    assert len(tables[True]) == len(report["rows"]) == 92
