"""A submission's outcome is its own: an empty working folder for each, and "abstain" only when
the sandbox machinery itself is broken (a fresh worker's health probe says so)."""

from __future__ import annotations

import pytest
from codehelpers import call_tests, sample
from rewardplug_code import sandbox
from rewardplug_code.pool import Pool, Worker, WorkerError

LEVELS = ["source", "fallback_source"]
LIMITS = sandbox.Limits(memory_mb=512, cpu_seconds=10, output_bytes=2**20)

LITTER = """
import os
def f(x):
    made = 0
    try:
        os.mkdir('deep', 0o000)  # a folder its owner cannot even list
        for i in range(50):
            with open('junk%d' % i, 'wb') as fh:
                fh.write(b'x' * 300_000)  # about 15 MB: the private /tmp is 16 MB
            made += 1
    except OSError:
        pass
    return 'wrong'
"""
LOOK = """
import os, tempfile
def f(x):
    room = []  # about 4 MB of temporary files: needs room in the working folder
    for _ in range(20):
        fh = tempfile.TemporaryFile(dir='.')
        fh.write(b'y' * 200_000)
        room.append(fh)
    return len(os.listdir('.'))
"""


@pytest.mark.parametrize("level", LEVELS)
def test_every_submission_starts_in_an_empty_working_folder(level, request):
    src = request.getfixturevalue(level)
    tests = call_tests(([1], 0))
    # more submissions than workers, in order, so each worker runs a LOOK after a LITTER
    batch = [sample(LITTER if i % 2 == 0 else LOOK, tests) for i in range(8)]
    scores = src.score(batch)
    for i, score in enumerate(scores):
        assert score.status == "ok", score.detail
        if i % 2 and level == "source":
            # in bubblewrap the folder was emptied before each submission: room, and nothing left
            assert score.value == 1.0, score.detail
        elif i % 2:
            # at the fallback level no file can be written at all, so the LITTER left nothing
            # and the LOOK's own temporary files are refused (a permission error, not a full disk)
            assert score.value == 0.0, score.detail
            assert "Errno 1]" in score.detail["failures"][0]["reason"], score.detail


def _level() -> str:
    return sandbox.isolation_level("auto")


def test_a_job_that_breaks_two_fresh_workers_is_the_submissions_zero():
    pool = Pool(_level(), LIMITS, 1)
    try:
        # a job its supervisor cannot run (no case count): both workers answer "machinery"
        broken = {"id": 7, "mode": "call", "code": "def f(x):\n    return x\n"}
        (reply,) = pool.run([broken], [30.0])
        assert isinstance(reply, dict) and "broke its sandbox worker twice" in reply["violation"]
    finally:
        pool.close()


def test_broken_machinery_abstains(monkeypatch):
    level = _level()
    pool = Pool(level, LIMITS, 1)

    def cannot_start(self: Worker) -> None:
        raise WorkerError("the sandbox worker did not start: (injected)")

    monkeypatch.setattr(Worker, "start", cannot_start)
    try:
        (reply,) = pool.run([{"id": 1, "mode": "call", "n": 0, "cases": []}], [10.0])
        assert isinstance(reply, WorkerError)  # the probe could not run either: abstain
    finally:
        pool.close()
