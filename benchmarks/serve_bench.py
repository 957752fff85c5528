"""Load test of ``rewardplug serve`` (OpenRLHF protocol) with a ``python``-source stack.

Starts a real server process (``rewardplug serve STACK --port P``, loopback), then

1. baseline: the same 16-sample batch scored in-process with ``Stack.score`` (no HTTP);
2. one client sending requests one after another;
3. ``--clients`` concurrent clients sending ``--requests`` requests of ``--samples`` samples
   (one prompt, ``--samples`` responses: one GRPO group per request),

and prints p50/p99 latency, throughput (requests/s and samples/s), errors, how many requests
the server merged per scoring call (from ``/health``), and ratios against the baselines.

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


async def load(url: str, bodies: list[dict], clients: int) -> tuple[list[float], int, float]:
    """Send every body once from ``clients`` concurrent clients; latencies (s), errors, wall (s)."""
    queue: asyncio.Queue[dict] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)
    latencies: list[float] = []
    errors = 0
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)

    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:

        async def worker() -> None:
            nonlocal errors
            while True:
                try:
                    body = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                start = time.perf_counter()
                try:
                    r = await client.post("/get_reward", json=body)
                    ok = r.status_code == 200 and len(r.json()["rewards"]) == len(body["query"])
                except (httpx.HTTPError, ValueError, KeyError):
                    ok = False
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--samples", type=int, default=16)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--sequential", type=int, default=100, help="requests of the 1-client run")
    parser.add_argument("--max-wait-ms", type=float, default=5.0)
    args = parser.parse_args()

    rng = random.Random(0)
    bodies = [make_request(rng, args.samples) for _ in range(args.requests)]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "examples"), os.environ.get("PYTHONPATH", "")]),
    }
    sys.path.insert(0, str(ROOT / "examples"))

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

        port = free_port()
        # `rewardplug serve`, run through the console-script entry point (rewardplug.cli:main).
        launcher = "import sys; from rewardplug.cli import main; main(sys.argv[1:])"
        cmd = [
            sys.executable,
            "-c",
            launcher,
            "serve",
            str(stack_path),
            "--port",
            str(port),
            "--max-wait-ms",
            str(args.max_wait_ms),
        ]
        server = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                if server.poll() is not None:
                    sys.exit(f"server exited: {server.stderr.read()}")
                try:
                    if httpx.get(url + "/health", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    sys.exit("server did not start within 60 s")
                time.sleep(0.2)

            # 2. one client, one request at a time.
            seq, seq_err, seq_wall = asyncio.run(load(url, bodies[: args.sequential], 1))
            before = httpx.get(url + "/health").json()
            # 3. the load test.
            lat, err, wall = asyncio.run(load(url, bodies, args.clients))
            after = httpx.get(url + "/health").json()
        finally:
            server.terminate()
            server.wait(timeout=10)

    batches = after["batches"] - before["batches"]
    merged = args.requests / batches if batches else float("nan")
    d50 = statistics.median(direct)
    seq_rps = len(seq) / seq_wall
    rps = len(lat) / wall
    print(f"stack: python source (math_answer + short_enough), {args.samples} samples per request")
    print(f"baseline in-process Stack.score, {args.samples} samples: median {d50 * 1e3:.2f} ms")
    print(
        f"1 client x {len(seq)} requests: p50 {statistics.median(seq) * 1e3:.1f} ms, "
        f"p99 {pct(seq, 0.99) * 1e3:.1f} ms, {seq_rps:.0f} req/s, errors {seq_err}"
    )
    print(
        f"{args.clients} clients x {len(lat)} requests: p50 {statistics.median(lat) * 1e3:.1f} ms, "
        f"p99 {pct(lat, 0.99) * 1e3:.1f} ms, {rps:.0f} req/s = {rps * args.samples:.0f} samples/s, "
        f"errors {err}"
    )
    print(
        f"micro-batching: {batches} scoring calls for {args.requests} requests "
        f"({merged:.1f} requests per call, max_wait_ms={args.max_wait_ms})"
    )
    print(
        f"ratios: throughput {args.clients} clients / 1 client = {rps / seq_rps:.2f}x; "
        f"p50 latency / in-process scoring = {statistics.median(lat) / d50:.1f}x; "
        f"1-client p50 / in-process = {statistics.median(seq) / d50:.1f}x"
    )


if __name__ == "__main__":
    main()
