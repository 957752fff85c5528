"""The Ray engine writes exactly what the local engine writes (local Ray, 2 CPUs)."""

from __future__ import annotations

import json

import pytest

from rewardplug.io import InputError
from rewardplug.runner import score_file

ray = pytest.importorskip("ray")

from rewardplug.ray_engine import score_file_ray  # noqa: E402

STACK = """\
sources:
  - name: noisy
    use: python
    with: {function: 'rp_test_rewards:noisy_length'}
  - name: ref
    use: python
    weight: 2
    with: {function: 'rp_test_rewards:contains_reference'}
on_abstain: renormalize   # rows without a reference are scored by `noisy` alone, by design
discretize: {confidence: 0.8}
"""


@pytest.fixture(scope="module")
def local_ray():
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    if started:
        ray.shutdown()


def write_input(path, bad_line: bool = False):
    rows = []
    for i in range(23):
        group = "abc"[i % 3]  # groups interleaved: output is in group order, not input order
        row = {"prompt": f"question {group}", "response": "r" * (i % 7 + 1) + "42" * (i % 2)}
        if i % 4:
            row["id"] = f"s{i}"  # the others get their line number as id
        if i % 5:
            row["reference"] = "42"
        row["gold"] = i % 2
        rows.append(json.dumps(row))
    if bad_line:
        rows.insert(5, '{"prompt": "broken"')
    path.write_text("\n".join(rows) + "\n")


@pytest.mark.slow
@pytest.mark.parametrize("batch_size", [4, 256])
def test_ray_output_is_identical_to_local(tmp_path, local_ray, batch_size):
    stack = tmp_path / "stack.yaml"
    stack.write_text(STACK)
    data = tmp_path / "in.jsonl"
    write_input(data)
    local, remote = tmp_path / "local.jsonl", tmp_path / "ray.jsonl"
    summary = score_file(str(stack), data, local, batch_size=batch_size)
    seen = []
    n = score_file_ray(
        str(stack),
        str(data),
        str(remote),
        batch_size=batch_size,
        on_progress=lambda done, total: seen.append((done, total)),
    )
    assert n == summary.written == 23
    assert remote.read_bytes() == local.read_bytes()
    rows = [json.loads(line) for line in remote.read_text().splitlines()]
    # Groups in order of first appearance, each whole (the local engine's order).
    assert [r["prompt"][-1] for r in rows] == ["a"] * 8 + ["b"] * 8 + ["c"] * 7
    assert {r["status"] for r in rows} == {"ok"}
    assert seen[-1] == (23, 23)


@pytest.mark.slow
def test_ray_skip_bad_matches_local_and_bad_input_fails_before_ray(tmp_path, local_ray):
    stack = tmp_path / "stack.yaml"
    stack.write_text(STACK)
    data = tmp_path / "in.jsonl"
    write_input(data, bad_line=True)
    with pytest.raises(InputError, match=r"in\.jsonl:6: invalid JSON"):
        score_file_ray(str(stack), str(data), str(tmp_path / "x.jsonl"))
    local, remote = tmp_path / "local.jsonl", tmp_path / "ray.jsonl"
    score_file(str(stack), data, local, batch_size=5, skip_bad=True)
    assert score_file_ray(str(stack), str(data), str(remote), batch_size=5, skip_bad=True) == 23
    assert remote.read_bytes() == local.read_bytes()


@pytest.mark.slow
def test_cli_engine_ray_starts_its_own_ray(tmp_path):
    """`rewardplug score --engine ray` in a fresh process: Ray is started and shut down by it."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    stack = tmp_path / "stack.yaml"
    stack.write_text(STACK)
    data = tmp_path / "in.jsonl"
    write_input(data)
    local, remote = tmp_path / "local.jsonl", tmp_path / "ray.jsonl"
    score_file(str(stack), data, local, batch_size=7)
    here = str(Path(__file__).resolve().parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([here, os.environ.get("PYTHONPATH", "")])}
    launcher = "import sys; from rewardplug.cli import main; main(sys.argv[1:])"
    args = [
        "score",
        str(stack),
        str(data),
        "-o",
        str(remote),
        "--engine",
        "ray",
        "--batch-size",
        "7",
    ]
    proc = subprocess.run(
        [sys.executable, "-c", launcher, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "wrote 23 rows" in proc.stderr
    assert remote.read_bytes() == local.read_bytes()
