"""What the per-submission clean-up of the ``test_cases`` sandbox costs (issue 25).

Each job runs in namespaces of its own; with bubblewrap they include a mount namespace holding
a fresh tmpfs on ``/tmp`` and ``/dev/shm`` (size- and inode-limited), dropped by the kernel with
the job's last process. This times, inside a real bubblewrap worker (as the pool starts it), one
job's namespace life cycle -- fork the job's first process, make its namespaces, fork PID 1 there,
let it exit, reap both -- in three variants:

* ``user+pid``: the PID namespace alone (what every job had before; nothing to clean);
* ``user+pid+mount, tmpfs x2``: what a job gets now (empty mounts);
* the same, PID 1 writing N files to ``/tmp`` first (N up to the 4,096-inode cap): the worst a
  submission can leave behind (the time spent writing them is taken off).

Also, for comparison, the walk that emptied ``/tmp`` before (the zygote's old ``clear_dir``) of a
folder holding the same files. Prints a Markdown table of medians.

    python benchmarks/cleanup_bench.py --jobs 400
    python benchmarks/cleanup_bench.py --smoke     # 20 cycles per variant: seconds
"""

from __future__ import annotations

import json
import subprocess

from _bench import parser, size
from rewardplug_code import sandbox

INNER = r"""
import json, os, statistics, sys, time
ns = {"__name__": "zygote"}
exec(ZYGOTE, ns)
MOUNTS = ns_mounts = json.loads(MOUNTS_JSON)
jobs = JOBS

def cycle(mounts, files):
    # the time PID 1 spends writing its files is not the clean-up's: it is sent back, and taken off
    r, w = os.pipe()
    t0 = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        ns["new_job_namespace"](mounts)
        child = os.fork()
        if child == 0:
            t1 = time.perf_counter()
            for i in range(files):
                os.close(os.open("/tmp/f%d" % i, os.O_WRONLY | os.O_CREAT, 0o600))
            os.write(w, b"%.9f" % (time.perf_counter() - t1))
            os._exit(0)
        os.waitpid(child, 0)
        os._exit(0)
    os.close(w)
    os.waitpid(pid, 0)
    dt = time.perf_counter() - t0
    writing = float(os.read(r, 64) or 0)
    os.close(r)
    return dt - writing

def walk(files):
    folder = "/tmp/walk"
    os.mkdir(folder)
    for i in range(files):
        os.close(os.open("%s/f%d" % (folder, i), os.O_WRONLY | os.O_CREAT, 0o600))
    t0 = time.perf_counter()
    clear_dir(folder)
    dt = time.perf_counter() - t0
    os.rmdir(folder)
    return dt

def clear_dir(path):  # the zygote's clean-up before issue 25, verbatim but for the docstring
    import stat
    todo = [os.path.join(path, name) for name in os.listdir(path)]
    folders = []
    while todo:
        entry = todo.pop()
        try:
            mode = os.lstat(entry).st_mode
        except FileNotFoundError:
            continue
        if stat.S_ISDIR(mode):
            os.chmod(entry, 0o700)
            folders.append(entry)
            todo.extend(os.path.join(entry, name) for name in os.listdir(entry))
        else:
            os.unlink(entry)
    for folder in reversed(folders):
        os.rmdir(folder)

def median_ms(fn, n):
    fn()
    return statistics.median(fn() for _ in range(n)) * 1e3

out = {}
out["user+pid"] = median_ms(lambda: cycle([], 0), jobs)
out["user+pid+mount, tmpfs x2"] = median_ms(lambda: cycle(MOUNTS, 0), jobs)
for files in (100, 4000):
    out["user+pid+mount, tmpfs x2, %d files left" % files] = median_ms(
        lambda: cycle(MOUNTS, files), max(5, jobs // 20))
# the walk needs a writable folder: a job's own /tmp
pid = os.fork()
if pid == 0:
    ns["new_job_namespace"](MOUNTS)
    res = {}
    for files in (0, 100, 4000):
        res["old walk of /tmp, %d files" % files] = median_ms(lambda: walk(files), max(5, jobs // 20))
    sys.stdout.write(json.dumps(res) + "\n")
    sys.stdout.flush()
    os._exit(0)
os.waitpid(pid, 0)
sys.stdout.write(json.dumps(out) + "\n")
"""


def main() -> None:
    ap = parser(__doc__, repeats=None)
    ap.add_argument(
        "--jobs", type=int, default=None, help="cycles per variant, fewer with files (default 400)"
    )
    args = ap.parse_args()
    args.jobs = args.jobs or size(args, 400, 20)
    if sandbox.isolation_level("auto") != sandbox.LEVEL_BWRAP:
        raise SystemExit(f"bubblewrap does not work here: {sandbox.bwrap_unavailable_reason()}")
    program = (
        f"ZYGOTE = {sandbox.worker_source()!r}\n"
        f"MOUNTS_JSON = {json.dumps(sandbox.job_mounts(sandbox.LEVEL_BWRAP))!r}\n"
        f"JOBS = {args.jobs}\n" + INNER
    )
    cmd = sandbox.bwrap_command()
    cmd[-1] = program  # the worker's own sandbox, running this program instead of the zygote
    proc = subprocess.run(
        cmd, capture_output=True, text=True, timeout=600, check=True, **sandbox.bwrap_options()
    )
    rows: dict[str, float] = {}
    for line in proc.stdout.splitlines():
        rows.update(json.loads(line))
    base = rows["user+pid"]
    print(f"{args.jobs} cycles per variant (1/20 of them with files), medians, bubblewrap\n")
    print("| variant | ms per job | over user+pid |")
    print("|---|---|---|")
    for name, ms in rows.items():
        extra = f"+{ms - base:.3f}" if not name.startswith("old") else "-"
        print(f"| {name} | {ms:.3f} | {extra} |")


if __name__ == "__main__":
    main()
