"""``rewardplug tune``: scores once, sweeps settings without rescoring, and prints a stack block
that loads -- on synthetic data whose right answer is known, and on the real GSM8K solutions."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

import rewardplug
from rewardplug.cli import build_cli
from rewardplug.tuning import WIDE_CI, split_groups, tune

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
    assert "chosen (best specificity within 0.05 of the raw DA):" in result.output
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


def _samples(rows: list[dict]) -> list[rewardplug.Sample]:
    return [rewardplug.Sample.model_validate(r) for r in rows]


def test_the_split_is_by_group_deterministic_for_a_seed_and_blind_to_row_order():
    groups = np.array([f"q{g}" for g in range(40) for _ in range(3)], dtype=object)
    held = split_groups(groups, 0.5, seed=3)
    assert held.sum() == 60  # 20 of the 40 groups, whole
    for g in set(groups):
        assert len(set(held[groups == g])) == 1  # a group is on one side, never split
    assert np.array_equal(held, split_groups(groups, 0.5, seed=3))
    assert not np.array_equal(held, split_groups(groups, 0.5, seed=4))
    order = np.random.default_rng(0).permutation(len(groups))
    assert np.array_equal(split_groups(groups[order], 0.5, seed=3), held[order])
    assert split_groups(groups, 0.25, seed=3).sum() == 30  # 10 groups
    assert not split_groups(groups, 0.0).any()  # in-sample: nothing held out
    with pytest.raises(ValueError, match="--holdout 0"):
        split_groups(np.array(["only"] * 4, dtype=object), 0.5)
    with pytest.raises(ValueError, match="held-out share"):
        split_groups(groups, 1.0)


def overfit_dataset(seed: int = 0) -> list[dict]:
    """Each group: scores 1.0, 0.98, 0.5, 0.48. On the groups tune chooses on, the close pairs
    have equal gold (tying them is right); on half the held-out groups they have different gold
    (tying them loses the order) -- a setting that ties close pairs looks perfect in sample only."""
    groups = np.array([f"q{g}" for g in range(20)], dtype=object)
    held = sorted(groups[split_groups(groups, 0.5, seed)].tolist())
    rows = []
    for g in groups:
        gold = (1, 0, 1, 0) if g in held[::2] else (1, 1, 0, 0)
        for i, (q, label) in enumerate(zip((1.0, 0.98, 0.5, 0.48), gold, strict=True)):
            row = {"group": g, "prompt": g, "response": f"r{i}", "quality": q, "label": label}
            rows.append(row)
    return rows


def test_held_out_numbers_show_a_setting_that_only_fits_the_tuning_groups():
    stack = rewardplug.load_stack(STACK)
    report = tune(stack, _samples(overfit_dataset()), "label", n_boot=0)
    chosen, held = report["chosen"], report["held_out"]
    assert report["split"]["tuning_groups"] == report["split"]["held_out_groups"] == 10
    assert held["groups"] == 10 and held["samples"] == 40
    assert held["tuning_groups"] == 10 and held["tuning_samples"] == 40
    # in sample: both close pairs tied, nothing lost
    assert chosen["discriminative_ability"] == 1.0 and chosen["specificity"] == 1.0
    # held out, raw orders 3 of 4 gold-different pairs in half the groups and 4 of 4 in the
    # rest; the chosen setting ties the close pairs, whose order mattered in the first half
    assert held["raw"]["discriminative_ability"] == 0.875
    assert held["chosen"]["discriminative_ability"] == 0.625
    assert held["chosen"]["discriminative_ability"] < held["raw"]["discriminative_ability"]
    in_sample = tune(stack, _samples(overfit_dataset()), "label", n_boot=0, holdout=0.0)
    assert in_sample["held_out"] is None  # --holdout 0: the old in-sample report
    assert in_sample["split"]["tuning_groups"] == 20
    assert in_sample["split"]["held_out_groups"] == 0


def test_tune_command_labels_held_out_numbers_and_warns_when_their_cis_are_wide(tmp_path):
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in overfit_dataset()))
    stack = tmp_path / "s.yaml"
    stack.write_text(yaml.safe_dump(STACK))
    out = tmp_path / "r.json"
    args = ["tune", str(stack), str(data), "--gold", "label", "--bootstrap", "200"]
    result = CliRunner().invoke(build_cli(), [*args, "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert max(len(line) for line in result.output.splitlines()) <= 100
    lines = result.output.splitlines()
    held_line = next(line for line in lines if line.startswith("chosen (held-out)"))
    report = json.loads(out.read_text())
    held = report["held_out"]
    assert held_line.split()[2] == f"{held['chosen']['discriminative_ability']:.3f}"
    assert "held-out: the chosen setting on 10 groups (40 samples)" in result.output
    assert "tuned on 10 groups" in result.output
    # 10 groups whose DA is 1/4 or 1: the held-out DA's CI is wider than 0.2
    lo, hi = held["chosen"]["ci"]["discriminative_ability"]
    assert hi - lo > WIDE_CI and "discriminative_ability" in held["wide_ci"]
    assert "warning: wide held-out CIs (DA" in result.output
    data.write_text("".join(json.dumps(r) + "\n" for r in dataset()))
    tight = CliRunner().invoke(build_cli(), [*args, "--json", str(out)])
    assert tight.exit_code == 0, tight.output
    assert json.loads(out.read_text())["held_out"]["wide_ci"] == []
    assert "warning" not in tight.output
    sample = CliRunner().invoke(build_cli(), [*args, "--holdout", "0"])
    assert sample.exit_code == 0, sample.output
    assert "in-sample on all 30 groups" in sample.output and "held-out" not in sample.output
    assert "numbers are optimistic" in sample.output


def test_tune_reuses_given_scores_without_scoring_again():
    import tests.core.test_tune as me
    from rewardplug.evaluation import score_all

    stack = rewardplug.load_stack(STACK)
    samples = _samples(dataset(2))
    me.CALLS.clear()
    scores = score_all(stack, samples, transform=False)
    assert sum(me.CALLS) == len(samples)
    reused = tune(stack, samples, "label", n_boot=0, scores=scores, objective="accuracy")
    assert sum(me.CALLS) == len(samples)  # the source did not run again
    fresh = tune(stack, samples, "label", n_boot=0, objective="accuracy")
    assert reused["chosen"] == fresh["chosen"] and reused["held_out"] == fresh["held_out"]
