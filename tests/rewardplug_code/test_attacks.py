"""Every known trick against the test_cases source earns nothing, and nothing leaks.

Each attack runs in the real sandbox. The expected values are random tokens the candidate could
only obtain by reading them from somewhere it must not reach; honest code for the same tests is
checked to pass, so a test failing here means the defence (not the harness) broke.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
import threading
import time
from pathlib import Path

import pytest
from codehelpers import call_tests, sample

TOKEN = "tok_" + secrets.token_hex(8)
TESTS = call_tests(([1], TOKEN + "1"), ([2], TOKEN + "2"))
HONEST = f"def f(x):\n    return {TOKEN!r} + str(x)"
HOST_MARK = Path("/tmp") / f"rewardplug-pwned-{secrets.token_hex(6)}"


def _frame(payload: bytes, marker: bytes = b"P") -> str:
    return f"struct.pack('>I', {len(payload) + 1}) + {marker!r} + {payload!r}"


FAKE_FRAMES = " + ".join(
    _frame(p) for p in (b'{"value": true}', b'{"passed": true}', b'{"value": "PASSED"}')
)

ATTACKS = {
    "sys_exit": "import sys\nsys.exit(0)",
    "os_exit": "import os\nos._exit(0)",
    "atexit": "import atexit, sys\natexit.register(lambda: print('ALL PASSED'))\n"
    "def f(x):\n    sys.exit(0)",
    "skiptest": "import unittest\ndef f(x):\n    raise unittest.SkipTest('skip me')",
    "systemexit_in_call": "def f(x):\n    raise SystemExit(0)",
    "keyboardinterrupt": "def f(x):\n    raise KeyboardInterrupt",
    "always_equal_object": "class A:\n    def __eq__(self, o): return True\n"
    "    def __ne__(self, o): return False\n    __hash__ = object.__hash__\n"
    "def f(x):\n    return A()",
    "always_equal_str_subclass": "class S(str):\n    def __eq__(self, o): return True\n"
    "    __hash__ = str.__hash__\ndef f(x):\n    return S('nope')",
    "always_equal_int_subclass": "class I(int):\n    def __eq__(self, o): return True\n"
    "    __hash__ = int.__hash__\ndef f(x):\n    return I(0)",
    "always_equal_float_subclass": "class F(float):\n    def __eq__(self, o): return True\n"
    "    __hash__ = float.__hash__\ndef f(x):\n    return F(0.0)",
    "always_equal_list_subclass": "class L(list):\n    def __eq__(self, o): return True\n"
    "def f(x):\n    return L()",
    "stack_frames": "import sys\ndef f(x):\n    fr, seen = sys._getframe(), []\n"
    "    while fr is not None:\n        seen.append(repr(fr.f_locals)); fr = fr.f_back\n"
    "    import re\n    m = re.search(r'tok_[0-9a-f]{16}', ''.join(seen))\n"
    "    return m.group(0) + str(x) if m else 'nothing found'",
    "gc_objects": "import gc, re\ndef f(x):\n    for o in gc.get_objects():\n"
    "        m = re.search(r'tok_[0-9a-f]{16}', repr(o)[:10000])\n"
    "        if m: return m.group(0) + str(x)\n    return 'nothing found'",
    "read_expected_from_files": "import os, re\ndef f(x):\n"
    "    for root in ('/tmp', '/work', '/root', os.path.expanduser('~'), '/proc/1'):\n"
    "        for d, _, files in os.walk(root):\n            for n in files:\n"
    "                try: text = open(os.path.join(d, n), errors='ignore').read(1 << 20)\n"
    "                except Exception: continue\n"
    "                m = re.search(r'tok_[0-9a-f]{16}', text)\n"
    "                if m: return m.group(0) + str(x)\n    return 'nothing found'",
    "patch_json_pickle_builtins": "import json, pickle, builtins\n"
    'json.dumps = lambda *a, **k: \'{"value": true, "passed": true}\'\n'
    "json.loads = lambda *a, **k: {'passed': True}\npickle.loads = lambda *a, **k: ((), {})\n"
    "builtins.isinstance = lambda *a: True\nbuiltins.type = lambda *a: str\n"
    "def f(x=0):\n    return None",
    "patch_the_harness_globals": "import sys\nmain = sys.modules.get('__main__')\n"
    "for name in ('plain', 'ok_payload', 'err_payload', 'frame', 'write_all'):\n"
    "    setattr(main, name, lambda *a, **k: b'{\"value\": true}')\n"
    "def f(x):\n    return 0",
    "patch_the_clock": "import time\ntime.monotonic = lambda: 0.0\ntime.time = lambda: 0.0\n"
    "time.perf_counter = lambda: 0.0\ndef f(x):\n    while True: pass",
    "fake_passed_on_every_fd": "import os, struct\n"
    f"blob = b'PASSED\\nOK\\n' + {FAKE_FRAMES}\n"
    "for fd in range(0, 256):\n    try: os.write(fd, blob)\n    except OSError: pass\n"
    "def f(x):\n    return 'wrong'",
    "fake_frames_then_exit": "import os, struct\n"
    f"blob = {FAKE_FRAMES}\n"
    "for fd in range(3, 64):\n    try: os.write(fd, blob)\n    except OSError: pass\n"
    "os._exit(0)",
    "close_stdout": "import os, sys\nsys.stdout.close()\nos.close(1)\n"
    "def f(x):\n    return 'wrong'",
    "close_every_fd": "import os\nos.closerange(0, 4096)\ndef f(x):\n    return 'wrong'",
    "kill_the_parent": "import os, signal\n"
    "for target in (lambda: os.kill(os.getppid(), 9), lambda: os.kill(-1, 9),\n"
    "               lambda: os.killpg(0, 9), lambda: os.kill(1, 9)):\n"
    "    try: target()\n    except OSError: pass\ndef f(x):\n    return 'wrong'",
    "infinite_loop_signals_ignored": "import signal\n"
    "for s in (signal.SIGTERM, signal.SIGINT, signal.SIGALRM, signal.SIGXCPU, signal.SIGHUP):\n"
    "    signal.signal(s, signal.SIG_IGN)\ndef f(x):\n    while True: pass",
    "fork_bomb": "import os\ndef f(x):\n    while True:\n        os.fork()",
    "memory_bomb": "def f(x):\n    hog = []\n    while True:\n        hog.append(bytearray(10**8))",
    "huge_allocation": "def f(x):\n    return len(bytearray(10**11))",
    "output_flood": "import sys\ndef f(x):\n    while True:\n        sys.stdout.write('A' * 65536)",
    "result_flood": "def f(x):\n    return 'A' * (50 * 10**6)",
    "deep_recursion_crash": "import sys\nsys.setrecursionlimit(10**8)\n"
    "def f(x):\n    return f(x) + 1",
    "write_files_outside": f"def f(x):\n    open({str(HOST_MARK)!r}, 'w').write('pwned')\n"
    "    return 'written'",
    "subprocess": f"import subprocess\ndef f(x):\n    subprocess.run(['touch', {str(HOST_MARK)!r}])\n"
    "    return subprocess.check_output(['echo', 'hi']).decode()",
    "posix_system": f"import posix\nposix.system('touch {HOST_MARK}')\n"
    "def f(x):\n    return 'wrong'",
    "ctypes_libc": "import ctypes\nlibc = ctypes.CDLL(None)\n"
    f"libc.system(b'touch {HOST_MARK}')\npid = libc.fork()\n"
    "if pid == 0:\n    libc._exit(0)\nlibc.kill(-1, 9)\ndef f(x):\n    return 'wrong'",
    "double_fork_daemon": "import os, time\ntry:\n    if os.fork() == 0:\n        os.setsid()\n"
    f"        if os.fork() == 0:\n            time.sleep(1)\n"
    f"            open({str(HOST_MARK)!r}, 'w').write('later')\n"
    "        os._exit(0)\nexcept OSError:\n    pass\ndef f(x):\n    return 'wrong'",
}


def _assert_nothing_earned(score):
    assert score.status == "ok", score.detail
    assert score.value == 0.0, score.detail
    assert score.detail["passed"] == 0
    # Beta(0.5, total + 0.5) draws sit near 0. Their mean, not their max: the max of 32 draws
    # exceeds 0.9 in a few percent of seeds, and the seed follows the (randomized) attack text.
    assert sum(score.draws) / len(score.draws) < 0.5
    text = json.dumps(score.model_dump(mode="json"))
    assert TOKEN not in text  # no expected value echoed anywhere


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_attack_earns_nothing(source, name):
    t0 = time.monotonic()
    honest, attack = source.score([sample(HONEST, TESTS), sample(ATTACKS[name], TESTS)])
    assert honest.value == 1.0, honest.detail  # the neighbour in the batch is undisturbed
    _assert_nothing_earned(attack)
    assert time.monotonic() - t0 < 30
    assert not HOST_MARK.exists()


def test_daemon_does_not_act_later(source):
    source.score([sample(ATTACKS["double_fork_daemon"], TESTS)])
    time.sleep(1.5)
    assert not HOST_MARK.exists()


def test_network_connections_fail(source):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.settimeout(4)
    port = server.getsockname()[1]
    accepted: list[object] = []

    def accept():
        with contextlib.suppress(OSError):
            accepted.append(server.accept())

    t = threading.Thread(target=accept)
    t.start()
    code = (
        f"import socket\ndef f(x):\n    s = socket.create_connection(('127.0.0.1', {port}), 2)\n"
        "    s.sendall(b'hello')\n    return 'connected'"
    )
    score = source.score([sample(code, TESTS)])[0]
    t.join()
    server.close()
    _assert_nothing_earned(score)
    assert not accepted
    assert "PermissionError" in json.dumps(score.detail) or "Errno" in json.dumps(score.detail)


@pytest.mark.parametrize("isolation", ["auto", "rlimits+seccomp"])
def test_environment_never_reaches_the_code(monkeypatch, isolation):
    from rewardplug_code.source import TestCasesSource

    monkeypatch.setenv("REWARDPLUG_TEST_SECRET", TOKEN)
    # Workers start on first use, with the secret in the scorer's environment.
    src = TestCasesSource(timeout_s=2, workers=1, isolation=isolation)
    try:
        leaks = [
            "import os\ndef f(x):\n    return repr(dict(os.environ))",
            "import os\ndef f(x):\n    raise RuntimeError(repr(dict(os.environ)))",
            "import os\ndef f(x):\n    out = []\n    for p in os.listdir('/proc'):\n"
            "        try: out.append(open(f'/proc/{p}/environ', 'rb').read().decode())\n"
            "        except Exception: pass\n    raise RuntimeError(' '.join(out)[:250])",
        ]
        scores = src.score([sample(code, TESTS) for code in leaks])
    finally:
        src.close()
    for score in scores:
        _assert_nothing_earned(score)


def test_bool_is_not_one(source):
    tests = call_tests(([0], 1), ([1], 0.0), ([2], [1]))
    score = source.score([sample("def f(x):\n    return [True, False, [True]][x]", tests)])[0]
    assert score.value == 0.0


def test_nan_is_never_equal(source):
    tests = call_tests(([0], float("nan")))
    score = source.score([sample("def f(x):\n    return float('nan')", tests)])[0]
    assert score.value == 0.0


def test_extra_results_are_a_protocol_violation(source):
    # Frames carrying the *right* answers, written at import, plus the harness's own: one too many.
    frames = " + ".join(_frame(json.dumps({"value": TOKEN + str(i)}).encode()) for i in (1, 2))
    code = (
        f"import os, struct\nfor fd in range(3, 64):\n    try: os.write(fd, {frames})\n"
        f"    except OSError: pass\n{HONEST}"
    )
    score = source.score([sample(code, TESTS)])[0]
    assert score.value == 0.0
    assert "protocol violation" in json.dumps(score.detail)


@pytest.mark.parametrize(
    "name",
    [
        "fork_bomb",
        "subprocess",
        "write_files_outside",
        "kill_the_parent",
        "memory_bomb",
        "ctypes_libc",
        "infinite_loop_signals_ignored",
        "read_expected_from_files",
        "fake_passed_on_every_fd",
        "double_fork_daemon",
    ],
)
def test_attack_earns_nothing_in_fallback(fallback_source, name):
    honest, attack = fallback_source.score([sample(HONEST, TESTS), sample(ATTACKS[name], TESTS)])
    assert honest.value == 1.0, honest.detail
    _assert_nothing_earned(attack)
    assert attack.detail["isolation"].startswith("rlimits")
    assert not HOST_MARK.exists()


def test_fallback_hides_the_file_system(fallback_source, tmp_path):
    from rewardplug_code import sandbox

    if sandbox.landlock_abi() < 1:
        pytest.skip("the kernel has no Landlock: the fallback cannot hide files")
    data = tmp_path / "tests.json"
    data.write_text(json.dumps(TESTS))
    code = f"def f(x):\n    return open({str(data)!r}).read()[:50]"
    score = fallback_source.score([sample(code, TESTS)])[0]
    _assert_nothing_earned(score)
    assert "Permission" in json.dumps(score.detail)
    assert score.detail["isolation"].startswith("rlimits+seccomp+landlock+")


def test_fallback_denies_network(fallback_source):
    code = "import socket\ndef f(x):\n    socket.socket()\n    return 'socket made'"
    score = fallback_source.score([sample(code, TESTS)])[0]
    _assert_nothing_earned(score)


def test_no_stray_processes_left(source):
    slow = HONEST.replace("def f(x):", "import time\ndef f(x):\n    time.sleep(0.2)")
    source.score([sample(slow, TESTS) for _ in range(4)])  # every worker is up
    before = _descendants()
    attacks = ("fork_bomb", "double_fork_daemon", "ctypes_libc", "subprocess")
    source.score([sample(ATTACKS[n], TESTS) for n in attacks])
    source.score([sample(slow, TESTS) for _ in range(4)])  # workers reap what they killed
    # Nothing left behind: no process that was not there before (a loaded box may take a moment
    # to reap a killed tree; and a job's last process may still have been exiting when `before`
    # was taken, so fewer is fine), and the same workers still serve.
    deadline = time.monotonic() + 5.0
    while not _descendants() <= before and time.monotonic() < deadline:
        time.sleep(0.1)
    after = _descendants()
    assert after <= before, sorted(after - before)
    workers = {w.proc.pid for w in source.pool.workers if w.proc is not None}
    assert workers and workers <= after


def _descendants() -> set[int]:
    """Pids of every live (non-zombie) process below this one."""
    parent: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            state, ppid = stat.rsplit(")", 1)[1].split()[:2]
            if state != "Z":
                parent[int(entry)] = int(ppid)
    found, frontier = set(), {os.getpid()}
    while frontier:
        frontier = {p for p, pp in parent.items() if pp in frontier} - found
        found |= frontier
    return found


MEMORY_SCAN = (
    "import ctypes, gc, re\n"
    "def f(x):\n"
    "    pat = re.compile(rb'tok_[0-9a-f]{16}')\n"
    "    for line in open('/proc/self/maps'):\n"
    "        addr, perms = line.split()[:2]\n"
    "        if not perms.startswith('r') or '[v' in line:\n"
    "            continue\n"
    "        lo, hi = (int(a, 16) for a in addr.split('-'))\n"
    "        m = pat.search(ctypes.string_at(lo, hi - lo))\n"
    "        if m:\n"
    "            return m.group(0).decode() + str(x)\n"
    "    for o in gc.get_objects():\n"
    "        m = pat.search(repr(o)[:10000].encode())\n"
    "        if m:\n"
    "            return m.group(0).decode() + str(x)\n"
    "    return 'nothing found'"
)


def test_no_submission_sees_an_earlier_ones_code_or_results():
    from rewardplug_code.source import TestCasesSource

    src = TestCasesSource(timeout_s=5, workers=1)  # one worker: both submissions share it
    try:
        # The scan works: a token planted in its own code is found (and earns the cases) --
        # with bubblewrap; at the fallback level Landlock hides /proc, so it cannot even run.
        planted = src.score([sample(MEMORY_SCAN + f"\n_ = {TOKEN!r}", TESTS)])[0]
        if src.pool.level == "bwrap":
            assert planted.value == 1.0, planted.detail
        assert src.score([sample(HONEST, TESTS)])[0].value == 1.0
        score = src.score([sample(MEMORY_SCAN, TESTS)])[0]
    finally:
        src.close()
    _assert_nothing_earned(score)
