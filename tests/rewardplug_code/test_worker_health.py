"""A submission's outcome is its own: fresh writable places for each (nothing one leaves behind
reaches the next), and "abstain" only when the sandbox machinery itself is broken (a fresh
worker's health probe says so)."""

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
        if i % 2 and bubblewrap(src):
            # in bubblewrap each submission has a fresh /tmp: room, and nothing left
            assert score.value == 1.0, score.detail
        elif i % 2:
            # at the fallback level no file can be written at all, so the LITTER left nothing
            # and the LOOK's own temporary files are refused (a permission error, not a full disk)
            assert score.value == 0.0, score.detail
            assert "Errno 1]" in score.detail["failures"][0]["reason"], score.detail


def bubblewrap(src) -> bool:
    """Whether ``src`` runs at the bubblewrap level (``source`` falls back where bwrap is
    hidden or broken)."""
    return src.pool.level == sandbox.LEVEL_BWRAP


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


# ------------------------------------------------------------ issue 25: nothing a submission
# leaves behind reaches the next one (each ran on the code before its defence, where it failed
# with bubblewrap: /dev, /dev/shm and the root were writable and never emptied)

PLACES = ("/tmp/count", "/dev/shm/count", "/count", "/dev/count")
COUNT = f"""
import os
def f(x):
    seen = 0
    for path in {PLACES!r}:
        try:
            with open(path) as fh:
                seen = max(seen, int(fh.read()))
        except (OSError, ValueError):
            pass
    written = []
    for path in {PLACES!r}:
        try:
            with open(path, 'w') as fh:
                fh.write(str(seen + 1))
            written.append(path)
        except OSError:
            pass
    return [seen, written]
"""
REPLACE_STDIN = """
import os
def f(x):
    try:
        os.unlink('/dev/stdin')
        with open('/dev/stdin', 'w') as fh:
            fh.write('not your input')
        return 'replaced'
    except OSError as exc:
        return type(exc).__name__
"""
READ_DEV_STDIN = "print(open('/dev/stdin').read().strip()[::-1])"
MANY_FILES = """
import os
def f(x):
    made = 0
    for folder in ('/tmp', '/dev/shm', '/dev', '/'):
        for i in range(30_000):
            try:
                open('%s/f%d' % (folder.rstrip('/'), i), 'w').close()
            except OSError:
                break
            made += 1
    return made <= 10_000
"""


def one_worker(request, level: str):
    """A private single-worker pool with the fixture's config: submissions run one after another
    on the same sandbox."""
    from rewardplug_code.source import TestCasesSource

    cfg = request.getfixturevalue(level).config.model_copy(update={"workers": 1})
    src = TestCasesSource(cfg)
    request.addfinalizer(src.close)
    return src


@pytest.mark.parametrize("level", LEVELS)
def test_no_submission_learns_from_an_earlier_one(level, request):
    """A counter kept in any writable place reads 0 in every submission: with bubblewrap /tmp and
    /dev/shm are writable but fresh for each submission, the root and /dev are read-only; at the
    fallback level nothing is writable."""
    src = one_worker(request, level)
    writable = ["/tmp/count", "/dev/shm/count"] if bubblewrap(src) else []
    tests = call_tests(([1], [0, writable]))
    scores = [src.score([sample(COUNT, tests)])[0] for _ in range(3)]
    assert [s.value for s in scores] == [1.0] * 3, [s.detail for s in scores]


@pytest.mark.parametrize("level", LEVELS)
def test_replacing_dev_stdin_harms_no_later_program(level, request):
    src = one_worker(request, level)
    (attack,) = src.score([sample(REPLACE_STDIN, call_tests(([1], "replaced")))])
    assert attack.value == 0.0, attack.detail  # /dev is read-only: the symlink stays
    stdio = {"kind": "stdio", "cases": [{"stdin": "abc\n", "stdout": "cba\n"}]}
    (honest,) = src.score([sample(READ_DEV_STDIN, stdio)])
    assert honest.status == "ok" and honest.value == 1.0, honest.detail


@pytest.mark.parametrize("level", LEVELS)
def test_files_and_inodes_are_bounded(level, request):
    """Each writable place holds a bounded number of files (inodes), so a submission can neither
    fill the machine nor make the clean-up after it slow."""
    src = one_worker(request, level)
    (score,) = src.score([sample(MANY_FILES, call_tests(([1], True)))])
    assert score.value == 1.0, score.detail


# ------------------------------------------------------------ issue 25: honest failures cost
# exactly their cases (each raising case ended its child, killed but not reaped until the job
# ended: beyond ~64 of them fork() failed, and the health rule gave every case a 0)

MOSTLY_RAISES = "def f(x):\n    if x < 10:\n        return x\n    raise ValueError(x)"


@pytest.mark.parametrize("level", LEVELS)
def test_raising_on_70_of_80_cases_scores_the_other_10(level, request):
    src = request.getfixturevalue(level)
    tests = call_tests(*[([i], i) for i in range(80)])
    (score,) = src.score([sample(MOSTLY_RAISES, tests)])
    assert score.status == "ok" and score.value == 0.125, score.detail
    assert score.detail["failures"][0]["reason"] == "ValueError: 10", score.detail
