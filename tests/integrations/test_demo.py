"""``rewardplug demo``: the bundled batch scored offline; failing sources are skipped, not fatal."""

from __future__ import annotations

import json

import pytest
import yaml
from rich.console import Console

from rewardplug.config import StackError
from rewardplug.demo import DEMO_DATA, DEMO_STACK, run_demo


def console(width: int = 200) -> Console:
    return Console(record=True, width=width, force_terminal=False)


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


def test_default_demo_is_fast_explains_itself_and_fits_80_columns(tmp_path):
    """The default demo leaves out the slow judge, says how to add it, states the reward scale
    and why tied answers share a reward, and prints nothing wider than 80 columns."""
    out = console(width=80)
    run_demo(tmp_path, console=out)
    text = out.export_text()
    assert "--full" in text
    assert "could not be loaded" not in text and "scored nothing" not in text
    assert max(len(line) for line in text.splitlines()) <= 80
    flat = " ".join(text.split())
    assert "Rewards lie in [0, 1.5]" in flat  # tests 1.0 + hygiene 0.3 + similarity 0.2
    assert "not confidently different" in flat
    # a subtly wrong answer that passes every test shares the correct answers' tier, and the
    # demo says so by name
    assert "share a reward although they are not equally good" in flat
    assert "In 4 of 4 problems every reward hack" in flat
    rows = [json.loads(x) for x in (tmp_path / "demo-scored.jsonl").read_text().splitlines()]
    assert all(set(r["sources"]) == {"tests", "hygiene", "similarity"} for r in rows)
    assert all(len(r["sources"]["similarity"]["draws"]) > 1 for r in rows)
    assert (tmp_path / "demo-tiers.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_stack_level_error_names_the_stack_not_every_source(tmp_path):
    stack = yaml.safe_load(DEMO_STACK.read_text())
    stack["combine"] = "wighted_sum"
    path = tmp_path / "stack.yaml"
    path.write_text(yaml.safe_dump(stack))
    out = console()
    with pytest.raises(StackError) as caught:
        run_demo(tmp_path / "out", str(path), console=out)
    assert str(path) in str(caught.value) and "combine" in str(caught.value)
    assert "could not be loaded" not in out.export_text()


@pytest.mark.slow
def test_full_demo_with_the_default_stack(tmp_path):
    out = console()
    run_demo(tmp_path, full=True, console=out)
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


def test_the_png_shares_one_x_axis_draws_each_tiers_reward_and_keeps_labels_off_the_bars():
    import matplotlib.pyplot as plt
    from matplotlib.collections import LineCollection

    from rewardplug.demo_plot import tier_figure
    from rewardplug.io import load_jsonl
    from rewardplug.stack import load_stack

    stack = yaml.safe_load(DEMO_STACK.read_text())
    stack["sources"] = [s for s in stack["sources"] if s["use"] in ("test_cases", "rubric")]
    batch = load_jsonl(DEMO_DATA).samples
    with load_stack(stack) as loaded:
        rewards = loaded.score(batch)
    fig = tier_figure(batch, rewards)
    try:
        axes = fig.axes
        assert len(axes) == len({s.group for s in batch})
        shared = axes[0].get_shared_x_axes()
        assert all(shared.joined(axes[0], ax) for ax in axes[1:])
        for ax in axes:
            group = ax.get_title(loc="left")
            members = [r for r in rewards if r.group == group]
            tiers = {r.tier: r.reward for r in members}
            strokes = [
                c
                for c in ax.collections
                if isinstance(c, LineCollection) and c.get_linewidth()[0] > 2
            ]
            assert len(strokes) == len(tiers)  # one stroke at each tier's reward
            xs = sorted(seg[0][0] for c in strokes for seg in c.get_segments())
            assert xs == pytest.approx(sorted(tiers.values()))
            # answer names are tick labels, tier labels sit right of the plot area
            assert len(ax.get_yticklabels()) == len(members)
            for text in ax.texts:
                assert text.get_position()[0] > 1.0 and text.get_transform() != ax.transData
    finally:
        plt.close(fig)
