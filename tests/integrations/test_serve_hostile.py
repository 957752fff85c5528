"""Hostile clients against ``rewardplug serve`` (issue 25): bodies, connections, authentication.

* Every hostile body gets a 4xx JSON error that names the problem -- never a 500 or a plain-text
  error: deep nesting (in the body or in a label string that holds JSON), integers past Python's
  int-to-str limit, non-finite numbers, invalid UTF-8, huge arrays of tiny items, wrong types.
  The limits are enforced when the JSON is parsed, and a 60 MB body costs linear time.
* Clients that never finish their headers or their body, or hold an idle connection, are closed
  after ``--header-timeout`` / ``--body-timeout`` / ``--keep-alive``, while normal requests go
  on being answered.
* ``--auth-token-env VAR``: without ``Authorization: Bearer <token>`` a request gets 401.

Where connection behaviour matters, a real server process listens on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import selectors
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from serving import free_port, server_process

from rewardplug import load_stack
from rewardplug.server import create_app

HERE = Path(__file__).resolve().parent
STACK = "sources:\n  - name: len\n    use: python\n    with: {function: 'rp_test_rewards:length'}\n"


def env() -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
    }


@contextlib.contextmanager
def serve(tmp_path: Path, *flags: str, extra_env: dict[str, str] | None = None) -> Iterator[str]:
    stack = tmp_path / "stack.yaml"
    stack.write_text(STACK)
    port = free_port()
    cmd = [sys.executable, "-m", "rewardplug", "serve", str(stack), "--port", str(port), *flags]
    with server_process(cmd, port, {**env(), **(extra_env or {})}) as url:
        yield url


@pytest.fixture(scope="module")
def batched(tmp_path_factory) -> Iterator[str]:
    with serve(tmp_path_factory.mktemp("batched")) as url:
        yield url


@pytest.fixture(scope="module")
def grouped(tmp_path_factory) -> Iterator[str]:
    with serve(
        tmp_path_factory.mktemp("grouped"), "--group-size", "2", "--group-timeout", "1"
    ) as url:
        yield url


def one(label=None, *, query="Q: a", prompt="Q: ") -> dict:
    out = {"query": [query], "prompts": [prompt]}
    if label is not None:
        out["labels"] = [label]
    return out


def raw(body: dict) -> bytes:
    return json.dumps(body).encode()


DEEP = "[" * 100_000 + "]" * 100_000
BIG_INT = "9" * 5_000

#: (what, body bytes, status, words the error must contain)
HOSTILE: list[tuple[str, bytes, int, tuple[str, ...]]] = [
    ("array nested 100,000 deep", DEEP.encode(), 400, ("nested", "deep")),
    ("object nested 50,000 deep", b'{"a":' * 50_000 + b"1" + b"}" * 50_000, 400, ("nested",)),
    (
        "body nested 100,000 deep inside a label",
        b'{"query": ["Q: a"], "prompts": ["Q: "], "labels": [' + DEEP.encode() + b"]}",
        400,
        ("nested",),
    ),
    (
        "label string holding JSON nested 100,000 deep",
        raw(one('{"reference": ' + DEEP + "}")),
        422,
        ("labels[0]", "nested"),
    ),
    (
        "label string holding a deep list of tests",
        raw(one('{"tests": ' + "[" * 5_000 + "]" * 5_000 + "}")),
        422,
        ("labels[0]", "nested"),
    ),
    (
        "5,000-digit integer as a label",
        b'{"query": ["Q: a"], "prompts": ["Q: "], "labels": [' + BIG_INT.encode() + b"]}",
        400,
        ("digits",),
    ),
    (
        "5,000-digit integer inside a label object",
        b'{"query": ["Q: a"], "prompts": ["Q: "], "labels": [{"reference": -'
        + BIG_INT.encode()
        + b"}]}",
        400,
        ("digits",),
    ),
    (
        "5,000-digit integer inside a label string",
        raw(one('{"reference": ' + BIG_INT + "}")),
        422,
        ("labels[0]", "digits"),
    ),
    (
        "5,000-digit group_size inside a label string",
        raw(one('{"group_size": ' + BIG_INT + "}")),
        422,
        ("labels[0]", "digits"),
    ),
    (
        "1e400 as a label",
        b'{"query": ["Q: a"], "prompts": ["Q: "], "labels": [1e400]}',
        400,
        ("finite",),
    ),
    (
        "-1e400 in a label object",
        b'{"query": ["Q: a"], "prompts": ["Q: "], "labels": [{"reference": "x", "w": -1e400}]}',
        400,
        ("finite",),
    ),
    ("NaN literal", b'{"query": ["Q: a"], "prompts": ["Q: "], "labels": [NaN]}', 400, ("NaN",)),
    (
        "Infinity literal",
        b'{"query": ["Q: a"], "prompts": ["Q: "], "labels": [-Infinity]}',
        400,
        ("Infinity",),
    ),
    (
        "1e400 inside a label string",
        raw(one('{"reference": "x", "weight": 1e400}')),
        422,
        ("labels[0]", "finite"),
    ),
    (
        "NaN inside a label string",
        raw(one('{"reference": NaN}')),
        422,
        ("labels[0]", "NaN"),
    ),
    ("invalid UTF-8", b'{"query": ["Q: \xff\xfe"], "prompts": ["Q: "]}', 400, ("UTF-8",)),
    ("UTF-8 cut in the middle", b'{"query": ["Q: \xe2\x82"], "prompts": ["Q: "]}', 400, ("UTF-8",)),
    ("empty body", b"", 400, ("JSON",)),
    ("truncated JSON", b'{"query": ["Q: a"], "prompts": ', 400, ("JSON",)),
    ("two JSON documents", b'{"query": [], "prompts": []} {}', 400, ("JSON",)),
    (
        "100,000 one-character samples",
        raw({"query": ["a"] * 100_000, "prompts": ["a"] * 100_000}),
        413,
        ("100000 samples",),
    ),
    (
        "labels: 3,000,000 empty lists",
        b'{"query": ["Q: a"], "prompts": ["Q: "], "labels": [' + b"[]," * 3_000_000 + b"[]]}",
        413,
        ("values",),
    ),
    ("body is a string", b'"hello"', 422, ("JSON object",)),
    ("body is null", b"null", 422, ("JSON object",)),
    ("query is an object", raw({"query": {"a": 1}, "prompts": ["a"]}), 422, ("'query'",)),
    ("query holds null", raw({"query": [None], "prompts": ["a"]}), 422, ("query[0]",)),
    ("prompts hold a number", raw({"query": ["a"], "prompts": [1.5]}), 422, ("prompts[0]",)),
    (
        "labels is a string",
        raw({"query": ["a"], "prompts": ["a"], "labels": "x"}),
        422,
        ("'labels'",),
    ),
    ("label is true", raw(one(True)), 422, ("labels[0]",)),
    ("label is a list", raw(one([1, 2])), 422, ("labels[0]",)),
    ("label tests is a number", raw(one({"tests": 5})), 422, ("labels[0]",)),
    ("label metadata is a string", raw(one({"metadata": "x"})), 422, ("labels[0]",)),
    ("label reference is an object", raw(one({"reference": {"a": 1}})), 422, ("labels[0]",)),
    ("label rubric is a list of lists", raw(one({"rubric": [[1]]})), 422, ("labels[0]",)),
    ("label split is a number", raw(one({"split": 3})), 422, ("labels[0].split",)),
    ("label group_size is a string", raw(one({"group_size": "many"})), 422, ("group_size",)),
    ("label group_size is 0", raw(one({"group_size": 0})), 422, ("group_size",)),
    # str.isdigit() is true for both, and int() raised ValueError on them: a 500
    ("label group_size is '²'", raw(one({"group_size": "²"})), 422, ("group_size",)),
    (
        "label group_size is a 5,000-digit string",
        raw(one({"group_size": BIG_INT})),
        422,
        ("labels[0].group_size",),
    ),
    ("extra key", raw({"query": [], "prompts": [], "labels": [], "x": 1}), 422, ("unknown keys",)),
]

#: wrong types that only the grouped mode reads (the group key, the group size)
HOSTILE_GROUPED: list[tuple[str, bytes, int, tuple[str, ...]]] = [
    ("label group is a list", raw(one({"group": [1]})), 422, ("labels[0].group",)),
    ("label uid is an empty string", raw(one({"uid": ""})), 422, ("labels[0].uid",)),
    ("label group is true", raw(one({"group": True})), 422, ("labels[0].group",)),
    ("label group_size is huge", raw(one({"group_size": 10**900})), 422, ("group_size",)),
    (
        "label string group_size of 900 digits",
        raw(one(json.dumps({"group_size": "9" * 900}))),
        422,
        ("group_size",),
    ),
]


def check_error(r: httpx.Response, status: int, words: tuple[str, ...]) -> None:
    assert r.status_code == status, (r.status_code, r.text[:300])
    assert r.headers["content-type"].startswith("application/json"), r.headers
    error = r.json()["error"]
    for word in words:
        assert word in error, (word, error)


@pytest.mark.parametrize(("what", "body", "status", "words"), HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_bodies_get_a_4xx_json_error_naming_the_problem(batched, what, body, status, words):
    r = httpx.post(f"{batched}/get_reward", content=body, timeout=60)
    check_error(r, status, words)


@pytest.mark.parametrize(
    ("what", "body", "status", "words"),
    HOSTILE + HOSTILE_GROUPED,
    ids=[h[0] for h in HOSTILE + HOSTILE_GROUPED],
)
def test_hostile_bodies_in_grouped_mode(grouped, what, body, status, words):
    if what == "100,000 one-character samples":
        words = ("100000 samples", "--max-held")
    r = httpx.post(f"{grouped}/", content=body, timeout=60)
    check_error(r, status, words)


def test_the_server_still_answers_after_the_hostile_bodies(batched, grouped):
    r = httpx.post(f"{batched}/get_reward", json=one(), timeout=10)
    assert r.status_code == 200 and r.json()["rewards"] == [1.0]
    eval_label = json.dumps({"split": "test"})  # an eval sample: answered on arrival
    r = httpx.post(f"{grouped}/get_reward", json=one(eval_label), timeout=10)
    assert r.status_code == 200 and r.json()["rewards"] == [1.0]


def test_limits_leave_ordinary_deep_and_big_values_alone(batched):
    # 40 levels of nesting, a 900-digit integer, ordinary floats: all within the limits
    nested = {"metadata": {"x": json.loads("[" * 40 + "1" + "]" * 40), "n": 10**900, "f": 1e300}}
    r = httpx.post(f"{batched}/get_reward", json=one(nested), timeout=10)
    assert r.status_code == 200, r.text
    r = httpx.post(f"{batched}/get_reward", json=one(json.dumps(nested)), timeout=10)
    assert r.status_code == 200, r.text


def samples(
    query: bytes, prompt: bytes, label: bytes | None = None, size: int = 60 * 2**20
) -> bytes:
    """A body of about ``size`` bytes: as many samples of this query, prompt and label as fit."""
    per = len(query) + len(prompt) + 2 + (0 if label is None else len(label) + 1)
    n = size // per
    body = b'{"query": [' + b",".join([query] * n) + b'], "prompts": [' + b",".join([prompt] * n)
    if label is not None:
        body += b'], "labels": [' + b",".join([label] * n)
    return body + b"]}"


#: 60 MB bodies (built when the test runs): what, builder, the statuses that are right
SIXTY_MB = [
    # a huge array of tiny items (the issue measured 11 s for a 60 MB request)
    ("7.8 million one-character samples", lambda: samples(b'"a"', b'"a"'), (413,)),
    ("5.7 million samples labelled {}", lambda: samples(b'"a"', b'"a"', b"{}"), (413,)),
    ("6.2 million samples labelled 0", lambda: samples(b'"a"', b'"a"', b"0"), (413,)),
    ("900,000 samples of 64 characters", lambda: samples(b'"' + b"q" * 62 + b'"', b'"q"'), (413,)),
    ("60 MB of nesting", lambda: b"[" * (30 * 2**20) + b"]" * (30 * 2**20), (400,)),
    # legitimate: one big response, full of brackets / escapes (the depth scan reads all of it)
    ("one 60 MB response", lambda: raw(one(query="Q: " + "x" * (60 * 2**20))), (200,)),
    ("one 60 MB response of brackets", lambda: raw(one(query="Q: " + "[{" * (30 * 2**20))), (200,)),
    (
        "one 60 MB response of escapes",
        lambda: b'{"query": ["Q: ' + b'\\"' * (30 * 2**20) + b'"], "prompts": ["Q: "]}',
        (200,),
    ),
]


def server_cpu_seconds(url: str) -> float:
    """CPU time used so far by the ``rewardplug serve`` process listening at ``url``: unlike wall
    time it does not grow when other tests load the machine (the suite runs on every core)."""
    port = url.rsplit(":", 1)[1]
    for proc in Path("/proc").iterdir():
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
            if b"serve" in argv and port.encode() in argv:
                fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
                return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, ValueError):
            continue
    raise AssertionError(f"no serve process for {url}")


@pytest.mark.parametrize(("what", "build", "statuses"), SIXTY_MB, ids=[c[0] for c in SIXTY_MB])
def test_a_60_mb_body_is_refused_or_answered_quickly(batched, what, build, statuses):
    body = build()
    assert 59 * 2**20 < len(body) <= 64 * 2**20
    with httpx.Client(timeout=120) as c:
        cpu, start = server_cpu_seconds(batched), time.perf_counter()
        r = c.post(f"{batched}/get_reward", content=body)
        elapsed = time.perf_counter() - start
        cpu = server_cpu_seconds(batched) - cpu
    assert r.status_code in statuses, (r.status_code, r.text[:300])
    assert r.headers["content-type"].startswith("application/json")
    # linear work, refused before the samples are built: the old parser took 4 s to 60 s here.
    # The server's CPU time is the measure (wall time also counts other tests' load).
    assert cpu < 3.0, f"{what}: {cpu:.2f} s of server CPU ({elapsed:.2f} s wall)"
    assert elapsed < 30, f"{what}: {elapsed:.2f} s"


def test_the_64_mb_cap_stays(batched):
    start = time.perf_counter()
    r = httpx.post(f"{batched}/get_reward", content=b"[" + b" " * (64 * 2**20) + b"]", timeout=60)
    assert r.status_code == 413 and "67108864 bytes" in r.json()["error"], r.text
    assert time.perf_counter() - start < 5


# --- the parser boundary, in process, fuzzed -------------------------------------------------


#: a leaf that :func:`dumps` writes as a 5,000-digit integer (Python cannot: int-to-str limit)
HUGE = "<a 5,000-digit integer>"


def json_values():
    leaves = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(10**30), 10**30),
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(max_size=8),
        st.sampled_from([10**1200, -(10**999), HUGE, 1e308, 5e-324]),
    )
    return st.recursive(
        leaves,
        lambda inner: (
            st.lists(inner, max_size=4)
            | st.dictionaries(
                st.sampled_from(
                    [
                        "reference",
                        "tests",
                        "rubric",
                        "metadata",
                        "group",
                        "uid",
                        "group_size",
                        "split",
                        "x",
                    ]
                ),
                inner,
                max_size=4,
            )
        ),
        max_leaves=12,
    )


def dumps(value) -> str:
    """JSON as a hostile client may write it: NaN / Infinity literals, 5,000-digit integers."""
    return json.dumps(value).replace(json.dumps(HUGE), BIG_INT)


@st.composite
def hostile_bodies(draw) -> bytes:
    kind = draw(st.sampled_from(["bytes", "value", "protocol", "deep", "mutated"]))
    if kind == "bytes":
        return draw(st.binary(max_size=200))
    if kind == "value":
        return dumps(draw(json_values())).encode()
    if kind == "deep":
        depth = draw(st.integers(1, 3_000))
        opener, closer = draw(st.sampled_from([("[", "]"), ('{"a":', "}")]))
        inner = opener * depth + "1" + closer * depth
        if draw(st.booleans()):
            return inner.encode()
        return raw(one(draw(st.sampled_from([inner, '{"reference": ' + inner + "}"]))))
    n = draw(st.integers(0, 3))
    labels = draw(
        st.lists(
            st.one_of(json_values(), json_values().map(dumps), st.text(max_size=10)),
            min_size=n,
            max_size=n,
        )
    )
    body = {
        "query": draw(st.one_of(st.just(["Q: a"] * n), json_values())),
        "prompts": draw(st.one_of(st.just(["Q: "] * n), json_values())),
        "labels": draw(st.one_of(st.just(labels), json_values())),
    }
    text = dumps(body).encode()
    if kind == "mutated" and text:
        at = draw(st.integers(0, len(text)))
        text = text[:at] + draw(st.binary(max_size=6)) + text[at + draw(st.integers(0, 4)) :]
    return text


async def call(app, body: bytes, path: str = "/get_reward") -> tuple[int, dict]:
    sent = []
    messages = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive():
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": path, "headers": [], "root_path": ""}
    await app(scope, receive, send)  # an exception escaping here fails the test
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
    headers = dict(sent[0]["headers"])
    assert headers[b"content-type"] == b"application/json"
    return sent[0]["status"], json.loads(sent[1]["body"])


@pytest.fixture(scope="module")
def stack():
    return load_stack(
        {
            "sources": [
                {"name": "len", "use": "python", "with": {"function": "rp_test_rewards:length"}}
            ]
        }
    )


async def answers(stack, body: bytes) -> list[tuple[int, dict]]:
    """The answer of a batched and of a grouped app (fresh ones: each example runs its own loop)."""
    out = []
    for app in (create_app(stack), create_app(stack, group_size=1, group_timeout_s=0.01)):
        try:
            out.append(await call(app, body))
        finally:
            await app.state.batcher.stop()
            if app.state.assembler is not None:
                await app.state.assembler.close()
    return out


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(body=hostile_bodies())
def test_fuzzed_bodies_always_get_2xx_or_4xx_json(stack, body):
    for status, payload in asyncio.run(answers(stack, body)):
        assert 200 <= status < 300 or 400 <= status < 500, (status, payload, body[:200])
        if status >= 400:
            assert isinstance(payload["error"], str) and payload["error"]
        else:
            assert len(payload["rewards"]) == len(json.loads(body)["query"])


# --- connections that never finish -----------------------------------------------------------

HEADER_S, BODY_S, KEEP_ALIVE_S = 2.0, 3.0, 1.0
GOOD_REQUEST = (
    b"POST /get_reward HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
    b"Content-Length: %d\r\n\r\n%s"
)


def good_request() -> bytes:
    body = raw(one())
    return GOOD_REQUEST % (len(body), body)


#: what each kind of stalled client sends at once (the trickle then sends a byte every 0.5 s)
STALLS = {
    "sends nothing": b"",
    "half a request line": b"POST /get_rew",
    "half the headers": b"POST /get_reward HTTP/1.1\r\nHost: t\r\nContent-Le",
    "headers, no body": b"POST /get_reward HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n",
    "part of the body": b'POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n{"query": [',
    "body a byte at a time": b"POST /get_reward HTTP/1.1\r\nHost: t\r\nContent-Length: 400\r\n\r\n",
    "unread body to another route": b"POST /health HTTP/1.1\r\nHost: t\r\nContent-Length: 400\r\n\r\n",
    "idle after an answer": b"",  # sends a whole request, reads the answer, then holds on
}
#: kinds that send one more byte every 0.5 s (each byte would restart a keep-alive timer)
TRICKLE = ("body a byte at a time", "unread body to another route")
#: by when (seconds after the stall began) each kind must be closed, with scheduling slack
CLOSED_BY = {
    "sends nothing": HEADER_S,
    "half a request line": HEADER_S,
    "half the headers": HEADER_S,
    "headers, no body": BODY_S,
    "part of the body": BODY_S,
    "body a byte at a time": BODY_S,
    "unread body to another route": BODY_S,
    "idle after an answer": KEEP_ALIVE_S,
}
SLACK_S = 3.0


def hold_stalled_clients(url: str, per_kind: int) -> dict[str, list[tuple[float, bytes]]]:
    """Open ``per_kind`` sockets of every kind in STALLS at once; return, per kind, when each
    was closed by the server (seconds after it started stalling) and what it was sent."""
    port = int(url.rsplit(":", 1)[1])
    sel = selectors.DefaultSelector()
    state = {}
    for kind, first in STALLS.items():
        for _ in range(per_kind):
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            if kind == "idle after an answer":
                s.sendall(good_request())
                got = b""
                while b'"rewards"' not in got:
                    got += s.recv(65536)
            elif first:
                s.sendall(first)
            s.setblocking(False)
            state[s] = [kind, time.monotonic(), None, b""]
            sel.register(s, selectors.EVENT_READ)
    # a normal client is answered while all of them are held
    r = httpx.post(f"{url}/get_reward", json=one(), timeout=10)
    assert r.status_code == 200 and r.json()["rewards"] == [1.0]
    deadline = time.monotonic() + max(CLOSED_BY.values()) + 2 * SLACK_S
    next_trickle = time.monotonic()
    while any(v[2] is None for v in state.values()) and time.monotonic() < deadline:
        for key, _ in sel.select(timeout=0.1):
            s = key.fileobj
            try:
                data = s.recv(65536)
            except ConnectionError:
                data = b""
            if data:
                state[s][3] += data
            else:
                state[s][2] = time.monotonic() - state[s][1]
                sel.unregister(s)
        if time.monotonic() >= next_trickle:
            next_trickle += 0.5
            for s, (kind, _, closed, _) in state.items():
                if closed is None and kind in TRICKLE:
                    with contextlib.suppress(OSError):
                        s.send(b" ")
    out: dict[str, list[tuple[float, bytes]]] = {k: [] for k in STALLS}
    for s, (kind, _, closed, data) in state.items():
        out[kind].append((float("inf") if closed is None else closed, data))
        s.close()
    return out


def check_closed(out: dict[str, list[tuple[float, bytes]]]) -> None:
    for kind, results in out.items():
        latest = max(t for t, _ in results)
        assert latest <= CLOSED_BY[kind] + SLACK_S, f"{kind}: held {latest:.1f} s"
        if kind != "unread body to another route":
            # (that one was answered: closing it sooner is fine, and a trickle byte that comes
            # late on a loaded machine lets the 1 s keep-alive close it first)
            earliest = min(t for t, _ in results)
            assert earliest >= CLOSED_BY[kind] - 0.5, f"{kind}: closed too early"
        for _, data in results:
            if kind in ("sends nothing", "idle after an answer"):
                assert data == b"", (kind, data)  # nothing was asked: closed without a word
            elif kind == "unread body to another route":
                assert data.startswith(b"HTTP/1.1 405"), data  # its answer, then closed
            else:
                assert data.startswith(b"HTTP/1.1 408"), (kind, data)
                assert b"application/json" in data and b'"error"' in data, data


def test_600_stalled_connections_are_closed_and_normal_requests_go_on(tmp_path):
    flags = ("--header-timeout", str(HEADER_S), "--body-timeout", str(BODY_S))
    with serve(tmp_path, *flags, "--keep-alive", str(KEEP_ALIVE_S)) as url:
        out = hold_stalled_clients(url, per_kind=75)  # 8 kinds x 75 = 600 sockets
        check_closed(out)
        r = httpx.post(f"{url}/get_reward", json=one(), timeout=10)
        assert r.status_code == 200
        health = httpx.get(f"{url}/health", timeout=10).json()
        assert health["status"] == "ok"


def test_timeouts_also_hold_with_uvicorn_h11(tmp_path):
    """The same guard on uvicorn's pure-Python HTTP parser (used when httptools is missing)."""
    import uvicorn

    from rewardplug.server import guarded_http_protocol

    stack = load_stack(
        {
            "sources": [
                {"name": "len", "use": "python", "with": {"function": "rp_test_rewards:length"}}
            ]
        }
    )
    port = free_port()
    protocol = guarded_http_protocol(header_timeout_s=HEADER_S, body_timeout_s=BODY_S, base="h11")
    config = uvicorn.Config(
        create_app(stack),
        host="127.0.0.1",
        port=port,
        log_level="error",
        http=protocol,
        timeout_keep_alive=KEEP_ALIVE_S,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.05)
        check_closed(hold_stalled_clients(f"http://127.0.0.1:{port}", per_kind=5))
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_answers_that_take_long_are_not_cut_by_the_read_limits(tmp_path):
    # a group waits 4 s for its second member, longer than both read limits: still answered
    flags = ("--header-timeout", "1", "--body-timeout", "1", "--group-size", "2")
    with serve(tmp_path, *flags, "--group-timeout", "4") as url:
        start = time.monotonic()
        r = httpx.post(f"{url}/get_reward", json=one(), timeout=30)
        assert r.status_code == 200, r.text
        assert r.json()["extra_logs"]["partial_group"] == [1.0]
        assert time.monotonic() - start >= 3.5


# --- authentication ------------------------------------------------------------------------

TOKEN = "s3cr3t-t0ken_with.chars~"


def test_auth_token_env_enforces_a_bearer_token(tmp_path):
    with serve(
        tmp_path, "--auth-token-env", "RP_TEST_TOKEN", extra_env={"RP_TEST_TOKEN": TOKEN}
    ) as url:
        good = {"Authorization": f"Bearer {TOKEN}"}
        for path in ("/get_reward", "/"):
            for headers in (
                {},
                {"Authorization": "Bearer wrong"},
                {"Authorization": f"Bearer {TOKEN}x"},
                {"Authorization": f"Bearer {TOKEN[:-1]}"},
                {"Authorization": TOKEN},
                {"Authorization": f"Basic {TOKEN}"},
                {"Authorization": "Bearer"},
            ):
                r = httpx.post(f"{url}{path}", json=one(), headers=headers, timeout=10)
                assert r.status_code == 401, (path, headers, r.text)
                assert r.headers["www-authenticate"].startswith("Bearer")
                assert "Authorization: Bearer" in r.json()["error"]
            r = httpx.post(f"{url}{path}", json=one(), headers=good, timeout=10)
            assert r.status_code == 200 and r.json()["rewards"] == [1.0]
            r = httpx.post(
                f"{url}{path}", json=one(), headers={"authorization": f"bearer {TOKEN}"}, timeout=10
            )
            assert r.status_code == 200  # the scheme is case-insensitive
        # a hostile body without the token is refused before it is parsed
        r = httpx.post(f"{url}/get_reward", content=DEEP.encode(), timeout=10)
        assert r.status_code == 401
        # /health without the token: liveness only; with it, the counters
        assert httpx.get(f"{url}/health", timeout=10).json() == {"status": "ok"}
        full = httpx.get(f"{url}/health", headers=good, timeout=10).json()
        assert full["sources"] == ["len"] and full["requests"] == 4
        for path in ("/docs", "/openapi.json", "/nothing"):
            assert httpx.get(f"{url}{path}", timeout=10).status_code == 401


@pytest.mark.parametrize("value", [None, "", "two words", "tab\there"])
def test_auth_token_env_must_name_a_usable_token(tmp_path, monkeypatch, value):
    from rewardplug.cli_run import serve as serve_command

    stack = tmp_path / "stack.yaml"
    stack.write_text(STACK)
    monkeypatch.delenv("RP_TEST_TOKEN", raising=False)
    if value is not None:
        monkeypatch.setenv("RP_TEST_TOKEN", value)
    result = CliRunner().invoke(serve_command, [str(stack), "--auth-token-env", "RP_TEST_TOKEN"])
    assert result.exit_code != 0
    assert "RP_TEST_TOKEN" in result.output
    assert (
        "not set" if value is None else "empty" if value == "" else "whitespace"
    ) in result.output


@pytest.mark.anyio
async def test_create_app_auth_token_in_process():
    stack = load_stack(
        {
            "sources": [
                {"name": "len", "use": "python", "with": {"function": "rp_test_rewards:length"}}
            ]
        }
    )
    app = create_app(stack, auth_token=TOKEN)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        assert (await c.post("/get_reward", json=one())).status_code == 401
        r = await c.post("/get_reward", json=one(), headers={"Authorization": f"Bearer {TOKEN}"})
        assert r.status_code == 200
        assert (await c.get("/health")).json() == {"status": "ok"}


def test_off_loopback_warning_says_how_to_add_a_token(tmp_path, monkeypatch, capsys):
    import uvicorn

    from rewardplug import server

    stack = tmp_path / "stack.yaml"
    stack.write_text(STACK)
    runs = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: runs.append(kw))
    monkeypatch.syspath_prepend(str(HERE))
    server.serve(str(stack), host="0.0.0.0", port=1)
    err = capsys.readouterr().err
    assert "no authentication" in err and "--auth-token-env" in err
    server.serve(str(stack), host="0.0.0.0", port=1, auth_token=TOKEN)
    assert "no authentication" not in capsys.readouterr().err
    # the read limits reach uvicorn: its keep-alive and the guarded protocol
    assert runs[0]["timeout_keep_alive"] == 5
    assert runs[0]["http"].header_timeout_s == 10 and runs[0]["http"].body_timeout_s == 30


# --- the parser's scans, against the parsed value --------------------------------------------

TRICKY = st.text(alphabet='[]{}",:\\ab0\n', max_size=6)


def nested(value) -> tuple[int, int]:
    """Nesting depth, and commas plus containers, of a parsed JSON value."""
    if isinstance(value, list | dict):
        items = list(value.values()) if isinstance(value, dict) else value
        inner = [nested(v) for v in items]
        depth = 1 + max((d for d, _ in inner), default=0)
        return depth, 1 + max(len(items) - 1, 0) + sum(c for _, c in inner)
    return 0, 0


@settings(max_examples=400, deadline=None)
@given(
    value=st.recursive(
        st.none() | st.integers() | TRICKY,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TRICKY, inner, max_size=3),
        max_leaves=30,
    ),
    limit=st.integers(0, 8),
    ascii_only=st.booleans(),
    block=st.integers(1, 64),
)
def test_depth_and_value_scans_agree_with_the_parsed_value(value, limit, ascii_only, block):
    from rewardplug.integrations.safe_json import (
        JSONLimitError,
        JSONLimits,
        JSONReader,
        _scan_large,
        _scan_small,
    )

    data = json.dumps(value, ensure_ascii=ascii_only).encode()
    depth, values = nested(value)
    assert _scan_small(data, limit) == (values, depth > limit)
    # numpy's blocks, this small, put block edges inside strings and escapes; past the depth
    # limit it stops counting values (the text is refused either way)
    counted, over = _scan_large(data, limit, block_size=block)
    assert over == (depth > limit)
    assert counted == values or over
    reader = JSONReader(JSONLimits(max_depth=limit, max_values=10**9))
    if depth > limit:
        with pytest.raises(JSONLimitError, match="nested more than"):
            reader.loads(data)
    else:
        assert reader.loads(data) == value


def test_parse_request_names_python_values_past_the_int_to_str_limit():
    """A Python caller's body (no JSON parsing): a group key or size too large to print."""
    from rewardplug.integrations.openrlhf import ProtocolError, parse_request

    huge = 10**5000
    for label in (
        {"group_size": huge},
        {"group": [huge]},
        {"split": huge},
        {"metadata": {"n": huge}},
        huge,
    ):
        with pytest.raises(ProtocolError, match="labels\\[0\\]"):
            parse_request(
                {"query": ["a"], "prompts": ["a"], "labels": [label]}, across_requests=True
            )
