"""Load test of ``rewardplug serve`` (OpenRLHF protocol) with a ``python``-source stack.

Starts a real server process (``rewardplug serve STACK --port P``, loopback), then

1. baseline: the same 16-sample batch scored in-process with ``Stack.score`` (no HTTP);
2. one client sending requests one after another;
3. ``--clients`` concurrent clients sending ``--requests`` requests of ``--samples`` samples
   (one prompt, ``--samples`` responses: one GRPO group per request),

4. one-sample mode, as OpenRLHF >= 0.9.1 sends: the same samples as one-sample requests from
   the same ``--clients`` clients to a second server started with ``--group-size --samples``
   (each group's requests are consecutive in the queue, in shuffled order within the group), and
   checks that every sample got the reward the batched mode gave it; and, as the floor of that
   mode, the same one-sample requests to the server *without* ``--group-size`` (no assembling:
   what the HTTP round trips alone cost),

and prints p50/p99 latency, throughput (requests/s and samples/s), errors, how many requests
the server merged per scoring call (from ``/health``), and ratios against the baselines; the
load runs repeat ``--repeats`` times and the ratios are medians.

``--in-flight N`` runs the production-size mode instead (issue 24): OpenRLHF's default rollout,
``N / --group`` prompts x ``--group`` samples, *all in flight at once*, each request on a new
aiohttp session with a 180 s timeout exactly as OpenRLHF's ``SingleTurnAgentExecutor`` sends
them. Per repeat, two fresh servers: one-sample requests (``N`` requests of one sample) to
``serve --group-size G``, and batched requests (``N / G`` requests of one whole group each) to
``serve`` without it; it prints p50/p99 latency, samples/s, errors, the servers' peak RSS
(``VmHWM``) and idle RSS, checks that every one-sample reward equals the batched one, and the
median over the repeats of one-sample / batched throughput.

    python benchmarks/serve_bench.py                      # 1,000 x 16 samples, 32 clients
    python benchmarks/serve_bench.py --requests 200       # quicker
    python benchmarks/serve_bench.py --in-flight 8192 --group 8    # OpenRLHF's default rollout
    python benchmarks/serve_bench.py --smoke              # 24 x 4 samples, 4 clients: seconds
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import random
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from _bench import parser as bench_parser

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
    # a unique prompt per group: the one-sample mode groups by prompt
    prompt = f"Question {rng.getrandbits(48):x}: what is {a} * {b}? Show your work.\nAnswer: "
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

    The client is aiohttp, as OpenRLHF's own (httpx's client costs several times more CPU per
    request, and on a shared 2-core box it, not the server, set the pace). ``answers``
    (optional) receives ``(body index, rewards)`` for every successful request.
    """
    import aiohttp

    pending = list(enumerate(bodies))
    pending.reverse()
    latencies: list[float] = []
    errors = 0
    timeout = aiohttp.ClientTimeout(total=120)
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(url, timeout=timeout, connector=connector) as client:

        async def worker() -> None:
            nonlocal errors
            while pending:
                index, body = pending.pop()
                start = time.perf_counter()
                try:
                    async with client.post("/get_reward", json=body) as r:
                        rewards = (await r.json())["rewards"] if r.status == 200 else None
                    ok = rewards is not None and len(rewards) == len(body["query"])
                except (aiohttp.ClientError, TimeoutError, ValueError, KeyError):
                    ok = False
                latencies.append(time.perf_counter() - start)
                errors += not ok
                if ok and answers is not None:
                    answers.append((index, rewards))

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        wall = time.perf_counter() - started
    return latencies, errors, wall


def _load_part(args: tuple) -> tuple[list[float], int, list, float, float]:
    url, bodies, offset, clients = args
    answers: list = []
    started = time.time()
    lat, err, _ = asyncio.run(load(url, bodies, clients, answers))
    return lat, err, [(offset + i, r) for i, r in answers], started, time.time()


def load_procs(
    url: str,
    bodies: list[dict],
    clients: int,
    procs: int,
    answers: list | None = None,
    group: int = 1,
) -> tuple[list[float], int, float]:
    """:func:`load` from ``procs`` client processes (``clients`` in all), each sending a
    contiguous share of ``bodies`` cut at multiples of ``group`` (a group's requests stay in one
    process); the wall time runs from the first start to the last finish."""
    if procs <= 1:
        return asyncio.run(load(url, bodies, clients, answers))
    import multiprocessing

    n_groups = len(bodies) // group
    cuts = [round(i * n_groups / procs) * group for i in range(procs)] + [len(bodies)]
    jobs = [(url, bodies[a:b], a, max(1, clients // procs)) for a, b in itertools.pairwise(cuts)]
    with multiprocessing.get_context("fork").Pool(procs) as pool:
        parts = pool.map(_load_part, jobs)
    lat = [x for p in parts for x in p[0]]
    if answers is not None:
        answers += [a for p in parts for a in p[2]]
    wall = max(p[4] for p in parts) - min(p[3] for p in parts)
    return lat, sum(p[1] for p in parts), wall


#: sockets a process may hold: one per in-flight request, with headroom
OPEN_FILES = 20000


def raise_open_files(wanted: int) -> int:
    """Raise this process's soft RLIMIT_NOFILE towards ``wanted`` (at most the hard limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        soft = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    return soft


async def burst(url: str, bodies: list[dict]) -> tuple[list[float], int, list, float, float]:
    """Send every body at once, each on a new aiohttp session with a 180 s timeout -- exactly
    how OpenRLHF's ``SingleTurnAgentExecutor._fetch_rewards_via_http`` sends one attempt (no
    retries here: a failed attempt is counted as an error). Latencies, errors, answers
    ``(index, rewards)``, start and end (epoch seconds)."""
    import aiohttp

    timeout = aiohttp.ClientTimeout(total=180)
    latencies: list[float] = []
    answers: list = []
    errors = 0

    async def post(index: int, body: dict) -> None:
        nonlocal errors
        start = time.perf_counter()
        try:
            async with (
                aiohttp.ClientSession(timeout=timeout) as session,
                session.post(url + "/get_reward", json=body) as r,
            ):
                r.raise_for_status()
                rewards = (await r.json())["rewards"]
            answers.append((index, rewards))
        except Exception:
            errors += 1
        latencies.append(time.perf_counter() - start)

    started = time.time()
    await asyncio.gather(*(post(i, b) for i, b in enumerate(bodies)))
    return latencies, errors, answers, started, time.time()


def _burst_part(args: tuple) -> tuple[list[float], int, list, float, float]:
    url, bodies, offset = args
    raise_open_files(OPEN_FILES)
    lat, err, answers, start, end = asyncio.run(burst(url, bodies))
    return lat, err, [(offset + i, r) for i, r in answers], start, end


def burst_procs(
    url: str, bodies: list[dict], procs: int, group: int = 1
) -> tuple[list[float], int, list, float]:
    """:func:`burst` from ``procs`` client processes at once (a group's requests in one
    process); latencies, errors, answers, wall (first start to last end)."""
    import multiprocessing

    n_groups = len(bodies) // group
    cuts = [round(i * n_groups / procs) * group for i in range(procs)] + [len(bodies)]
    jobs = [(url, bodies[a:b], a) for a, b in itertools.pairwise(cuts)]
    with multiprocessing.get_context("fork").Pool(procs) as pool:
        parts = pool.map(_burst_part, jobs)
    lat = [x for p in parts for x in p[0]]
    answers = [a for p in parts for a in p[2]]
    wall = max(p[4] for p in parts) - min(p[3] for p in parts)
    return lat, sum(p[1] for p in parts), answers, wall


def in_flight_mode(args: argparse.Namespace, env: dict[str, str], stack_path: Path) -> None:
    """OpenRLHF's default rollout, all in flight at once: one-sample vs batched (issue 24)."""
    group, n = args.group, args.in_flight
    rng = random.Random(0)
    bodies = [make_request(rng, group) for _ in range(n // group)]
    singles = one_sample_bodies(bodies, random.Random(1))
    procs = args.client_procs
    raise_open_files(OPEN_FILES)
    wait = ["--max-wait-ms", str(args.max_wait_ms)]
    # one group before the measured burst: a long-running server has its imports and compiled
    # kernels loaded (the first discretize loads numba's cache)
    warm = [make_request(random.Random(99), group)]
    runs = []
    for _ in range(args.repeats):
        with Server(stack_path, env, *wait, "--group-size", str(group)) as grouped:
            asyncio.run(burst(grouped.url, one_sample_bodies(warm, random.Random(2))))
            idle1, cpu1 = grouped.memory_mb()[0], grouped.cpu_s()
            lat1, err1, got1, wall1 = burst_procs(grouped.url, singles, procs, group)
            peak1, cpu1 = grouped.memory_mb()[1], grouped.cpu_s() - cpu1
            groups = grouped.health()["groups"]
        # the batched server admits the whole rollout at once (its --max-queue bounds samples)
        with Server(stack_path, env, *wait, "--max-queue", str(2 * n)) as batched:
            asyncio.run(burst(batched.url, warm))
            idle, cpu = batched.memory_mb()[0], batched.cpu_s()
            lat, err, got, wall = burst_procs(batched.url, bodies, procs)
            peak, cpu = batched.memory_mb()[1], batched.cpu_s() - cpu
        runs.append(
            {
                "one": (lat1, err1, wall1, idle1, peak1, cpu1),
                "batched": (lat, err, wall, idle, peak, cpu),
                "same": same_rewards(bodies, got, singles, got1),
                "groups": groups,
            }
        )
    print(
        f"stack: python source (math_answer + short_enough); {n // group} prompts x {group} "
        f"samples = {n} samples all in flight at once, one new aiohttp session per request (as "
        f"OpenRLHF's client), from {procs} client processes; servers started fresh per repeat and "
        "warmed with one group"
    )
    for k, r in enumerate(runs, 1):
        lat1, err1, wall1, idle1, peak1, cpu1 = r["one"]
        lat, err, wall, idle, peak, cpu = r["batched"]
        g = r["groups"]
        print(
            f"repeat {k}: one-sample {len(lat1)} requests (--group-size {group}): p50 "
            f"{statistics.median(lat1) * 1e3:.0f} ms, p99 {pct(lat1, 0.99) * 1e3:.0f} ms, "
            f"{n / wall1:.0f} samples/s, errors {err1}, server CPU {cpu1:.2f} s "
            f"({n / cpu1:.0f} samples per server CPU s), RSS idle {idle1:.0f} MB, peak "
            f"{peak1:.0f} MB; groups {g['groups_complete']} complete, {g['groups_partial']} "
            f"partial, {g['rejected']} refused, {g['waited_for_room']} waited for room"
        )
        print(
            f"          batched {len(lat)} requests of {group}: p50 "
            f"{statistics.median(lat) * 1e3:.0f} ms, p99 {pct(lat, 0.99) * 1e3:.0f} ms, "
            f"{n / wall:.0f} samples/s, errors {err}, server CPU {cpu:.2f} s, RSS idle "
            f"{idle:.0f} MB, peak {peak:.0f} MB; one-sample rewards identical to batched: "
            f"{r['same']}"
        )
    ratio = statistics.median((r["batched"][2] / r["one"][2]) for r in runs)
    cpu_ratio = statistics.median((r["batched"][5] / r["one"][5]) for r in runs)
    print(
        f"medians of {len(runs)}: one-sample p50 "
        f"{statistics.median(statistics.median(r['one'][0]) for r in runs) * 1e3:.0f} ms, p99 "
        f"{statistics.median(pct(r['one'][0], 0.99) for r in runs) * 1e3:.0f} ms, "
        f"{statistics.median(n / r['one'][2] for r in runs):.0f} samples/s, peak RSS "
        f"{statistics.median(r['one'][4] for r in runs):.0f} MB (idle "
        f"{statistics.median(r['one'][3] for r in runs):.0f} MB); batched "
        f"{statistics.median(n / r['batched'][2] for r in runs):.0f} samples/s, peak RSS "
        f"{statistics.median(r['batched'][4] for r in runs):.0f} MB; one-sample / batched "
        f"throughput = {ratio:.2f}x (target >= 0.5x); per server CPU second = "
        f"{cpu_ratio:.2f}x"
    )


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
        self.proc = subprocess.Popen(
            [*cmd, *extra],
            env=env,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=lambda: raise_open_files(OPEN_FILES),
        )

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

    def cpu_s(self) -> float:
        """CPU seconds (user + system) the server process has used so far."""
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def memory_mb(self) -> tuple[float, float]:
        """(resident now, peak resident since start) of the server process, in MB."""
        fields = {}
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key in ("VmRSS", "VmHWM"):
                    fields[key] = int(value.split()[0]) / 1024  # kB -> MB
        return fields["VmRSS"], fields["VmHWM"]

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


def main() -> None:
    parser = bench_parser(__doc__)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--samples", type=int, default=16)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--sequential", type=int, default=100, help="requests of the 1-client run")
    parser.add_argument("--max-wait-ms", type=float, default=5.0)
    parser.add_argument(
        "--in-flight",
        type=int,
        default=0,
        help="production-size mode: this many samples in flight at once (OpenRLHF's default "
        "rollout: 8192), one-sample vs batched",
    )
    parser.add_argument("--group", type=int, default=8, help="group size of --in-flight")
    parser.add_argument(
        "--client-procs",
        type=int,
        default=2,
        help="client processes sharing --clients (one Python client process saturates a core)",
    )
    args = parser.parse_args()
    if args.smoke:  # a few requests, one client process: the modes' plumbing, in seconds
        args.requests, args.samples, args.clients = 24, 4, 4
        args.sequential, args.client_procs = 4, 1
        args.in_flight = min(args.in_flight, 64)
    procs = args.client_procs
    if args.in_flight:
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(
                [str(ROOT / "examples"), os.environ.get("PYTHONPATH", "")]
            ),
        }
        with tempfile.TemporaryDirectory() as tmp:
            stack_path = Path(tmp) / "stack.yaml"
            stack_path.write_text(STACK)
            in_flight_mode(args, env, stack_path)
        return

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
                lat, err, wall = load_procs(batched.url, bodies, args.clients, procs, got)
                after = batched.health()
                got1: list = []
                lat1, err1, wall1 = load_procs(
                    grouped.url, singles, args.clients, procs, got1, args.samples
                )
                latf, errf, wallf = load_procs(batched.url, singles, args.clients, procs)
                runs.append(
                    {
                        "lat": lat,
                        "err": err,
                        "wall": wall,
                        "lat1": lat1,
                        "err1": err1,
                        "wall1": wall1,
                        "batches": after["batches"] - before["batches"],
                        "floor": len(latf) / wallf,
                        "errf": errf,
                        "same": same_rewards(bodies, got, singles, got1),
                    }
                )
            groups = grouped.health()["groups"]

    d50 = statistics.median(direct)
    seq_rps = len(seq) / seq_wall
    print(
        f"stack: python source (math_answer + short_enough), {args.samples} samples per group; "
        f"{args.clients} aiohttp clients in {procs} processes"
    )
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
        print(
            f"          floor: the same one-sample requests without --group-size: "
            f"{r['floor']:.0f} samples/s, errors {r['errf']}"
        )
    ratio = statistics.median(
        (len(r["lat1"]) / r["wall1"]) / (len(r["lat"]) * args.samples / r["wall"]) for r in runs
    )
    floor = statistics.median(r["floor"] / (len(r["lat"]) * args.samples / r["wall"]) for r in runs)
    assembled = statistics.median((len(r["lat1"]) / r["wall1"]) / r["floor"] for r in runs)
    print(
        f"groups assembled: {groups['groups_complete']} complete, {groups['groups_partial']} "
        f"partial, {groups['rejected']} rejected"
    )
    print(
        f"ratios (medians of {len(runs)}): one-sample / batched throughput = {ratio:.2f}x "
        f"(target >= 0.5x); its floor (one-sample HTTP, no assembling) / batched = "
        f"{floor:.2f}x; one-sample assembled / floor = {assembled:.2f}x; "
        f"batched {args.clients} clients / 1 client = "
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
