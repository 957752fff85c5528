"""Load test of ``rewardplug serve`` (OpenRLHF protocol) with a ``python``-source stack.

Starts a real server process (``rewardplug serve STACK --port P``, loopback), then

1. baseline: the same 16-sample batch scored in-process with ``Stack.score`` (no HTTP);
2. one client sending requests one after another;
3. ``--clients`` concurrent clients sending ``--requests`` requests of ``--samples`` samples
   (one prompt, ``--samples`` responses: one GRPO group per request),

4. one-sample mode, as OpenRLHF >= 0.9.1 sends: the same samples as one-sample requests from
   the same ``--clients`` clients to a second server started with ``--group-size --samples``
   (each group's requests are consecutive in the queue, in shuffled order within the group), and
   checks that every sample got the reward the batched mode gave it,

and prints p50/p99 latency, throughput (requests/s and samples/s), errors, how many requests
the server merged per scoring call (from ``/health``), and ratios against the baselines; the
load runs repeat ``--repeats`` times and the ratios are medians.

    python benchmarks/serve_bench.py                      # 1,000 x 16 samples, 32 clients
    python benchmarks/serve_bench.py --requests 200       # quicker
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
STACK = """\
sources:
  - name: answer
    use: python
    with: {function: "rewards:math_answer"}
  - name: length
    use: python
    weight: 0.1
    with: {function: "rewards:short_enough", kwargs: {max_chars: 200}}
discretize: {confidence: 0.9}
"""


def make_request(rng: random.Random, samples: int) -> dict:
    """One prompt with ``samples`` responses (some right, some wrong), labels = the answer."""
    a, b = rng.randint(2, 99), rng.randint(2, 99)
    prompt = f"Question: what is {a} * {b}? Show your work.\nAnswer: "
    answer = a * b
    responses = []
    for _ in range(samples):
        got = answer if rng.random() < 0.6 else answer + rng.randint(-9, 9)
        responses.append(
            f"{a} * {b} = {got}. " + "Reasoning. " * rng.randint(0, 30) + f"#### {got}"
        )
    return {
        "query": [prompt + r for r in responses],
        "prompts": [prompt] * samples,
        "labels": [str(answer)] * samples,
    }


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def one_sample_bodies(bodies: list[dict], rng: random.Random) -> list[dict]:
    """Every sample of ``bodies`` as its own request; a group's requests in shuffled order."""
    out = []
    for body in bodies:
        singles = [
            {"query": [q], "prompts": [p], "labels": [lab]}
            for q, p, lab in zip(body["query"], body["prompts"], body["labels"], strict=True)
        ]
        rng.shuffle(singles)
        out += singles
    return out


async def load(
    url: str, bodies: list[dict], clients: int, answers: list | None = None
) -> tuple[list[float], int, float]:
    """Send every body once from ``clients`` concurrent clients; latencies (s), errors, wall (s).

    ``answers`` (optional) receives ``(body index, rewards)`` for every successful request.
    """
    queue: asyncio.Queue[tuple[int, dict]] = asyncio.Queue()
    for item in enumerate(bodies):
        queue.put_nowait(item)
    latencies: list[float] = []
    errors = 0
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)

    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:

        async def worker() -> None:
            nonlocal errors
            while True:
                try:
                    index, body = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                start = time.perf_counter()
                try:
                    r = await client.post("/get_reward", json=body)
                    rewards = r.json()["rewards"] if r.status_code == 200 else None
                    ok = rewards is not None and len(rewards) == len(body["query"])
                except (httpx.HTTPError, ValueError, KeyError):
                    ok = False
                if ok and answers is not None:
                    answers.append((index, rewards))
                latencies.append(time.perf_counter() - start)
                errors += not ok

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        wall = time.perf_counter() - started
    return latencies, errors, wall


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``rewardplug serve`` in a subprocess (through the console-script entry point)."""

    def __init__(self, stack_path: Path, env: dict[str, str], *extra: str):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        launcher = "import sys; from rewardplug.cli import main; main(sys.argv[1:])"
        cmd = [sys.executable, "-c", launcher, "serve", str(stack_path), "--port", str(self.port)]
        self.proc = subprocess.Popen([*cmd, *extra], env=env, stderr=subprocess.PIPE, text=True)

    def __enter__(self) -> Server:
        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None:
                sys.exit(f"server exited: {self.proc.stderr.read()}")
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                sys.exit("server did not start within 60 s")
            time.sleep(0.2)

    def health(self) -> dict:
        return httpx.get(self.url + "/health").json()

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--samples", type=int, default=16)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--sequential", type=int, default=100, help="requests of the 1-client run")
    parser.add_argument("--max-wait-ms", type=float, default=5.0)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    rng = random.Random(0)
    bodies = [make_request(rng, args.samples) for _ in range(args.requests)]
    singles = one_sample_bodies(bodies, random.Random(1))
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "examples"), os.environ.get("PYTHONPATH", "")]),
    }
    sys.path.insert(0, str(ROOT / "examples"))
    wait = ["--max-wait-ms", str(args.max_wait_ms)]
    runs: list[dict] = []

    with tempfile.TemporaryDirectory() as tmp:
        stack_path = Path(tmp) / "stack.yaml"
        stack_path.write_text(STACK)

        # 1. in-process baseline: the scoring work itself, without HTTP.
        from rewardplug import load_stack
        from rewardplug.integrations.openrlhf import parse_request

        stack = load_stack(stack_path)
        direct = []
        for body in bodies[:200]:
            samples, _ = parse_request(body)
            start = time.perf_counter()
            stack.score(samples)
            direct.append(time.perf_counter() - start)

        with (
            Server(stack_path, env, *wait) as batched,
            Server(stack_path, env, *wait, "--group-size", str(args.samples)) as grouped,
        ):
            # 2. one client, one request at a time.
            seq, seq_err, seq_wall = asyncio.run(load(batched.url, bodies[: args.sequential], 1))
            for _ in range(args.repeats):
                # 3. the load test, whole groups per request; 4. one sample per request.
                before = batched.health()
                got: list = []
                lat, err, wall = asyncio.run(load(batched.url, bodies, args.clients, got))
                after = batched.health()
                got1: list = []
                lat1, err1, wall1 = asyncio.run(load(grouped.url, singles, args.clients, got1))
                runs.append(
                    {
                        "lat": lat,
                        "err": err,
                        "wall": wall,
                        "lat1": lat1,
                        "err1": err1,
                        "wall1": wall1,
                        "batches": after["batches"] - before["batches"],
                        "same": same_rewards(bodies, got, singles, got1),
                    }
                )
            groups = grouped.health()["groups"]

    d50 = statistics.median(direct)
    seq_rps = len(seq) / seq_wall
    print(f"stack: python source (math_answer + short_enough), {args.samples} samples per group")
    print(f"baseline in-process Stack.score, {args.samples} samples: median {d50 * 1e3:.2f} ms")
    print(
        f"1 client x {len(seq)} requests: p50 {statistics.median(seq) * 1e3:.1f} ms, "
        f"p99 {pct(seq, 0.99) * 1e3:.1f} ms, {seq_rps:.0f} req/s, errors {seq_err}"
    )
    for n, r in enumerate(runs, 1):
        rps, rps1 = len(r["lat"]) / r["wall"], len(r["lat1"]) / r["wall1"]
        print(
            f"repeat {n}: batched {args.clients} clients x {len(r['lat'])} requests: "
            f"p50 {statistics.median(r['lat']) * 1e3:.1f} ms, p99 {pct(r['lat'], 0.99) * 1e3:.1f} ms, "
            f"{rps * args.samples:.0f} samples/s, errors {r['err']}, "
            f"{args.requests / r['batches']:.1f} requests per scoring call"
        )
        print(
            f"          one-sample {args.clients} clients x {len(r['lat1'])} requests "
            f"(--group-size {args.samples}): p50 {statistics.median(r['lat1']) * 1e3:.1f} ms, "
            f"p99 {pct(r['lat1'], 0.99) * 1e3:.1f} ms, {rps1:.0f} samples/s, errors {r['err1']}, "
            f"rewards identical to batched: {r['same']}"
        )
    ratio = statistics.median(
        (len(r["lat1"]) / r["wall1"]) / (len(r["lat"]) * args.samples / r["wall"]) for r in runs
    )
    print(
        f"groups assembled: {groups['groups_complete']} complete, {groups['groups_partial']} "
        f"partial, {groups['rejected']} rejected"
    )
    print(
        f"ratios (medians of {len(runs)}): one-sample / batched throughput = {ratio:.2f}x "
        f"(target >= 0.5x); batched {args.clients} clients / 1 client = "
        f"{statistics.median(len(r['lat']) / r['wall'] for r in runs) / seq_rps:.2f}x; "
        f"batched p50 / in-process scoring = "
        f"{statistics.median(statistics.median(r['lat']) for r in runs) / d50:.1f}x"
    )


def same_rewards(bodies: list[dict], got: list, singles: list[dict], got1: list) -> bool:
    """Whether every one-sample answer equals the batched answer for the same query."""
    batched = {
        q: r for index, rewards in got for q, r in zip(bodies[index]["query"], rewards, strict=True)
    }
    return len(got1) == len(singles) and all(
        batched.get(singles[index]["query"][0]) == rewards[0] for index, rewards in got1
    )


if __name__ == "__main__":
    main()
