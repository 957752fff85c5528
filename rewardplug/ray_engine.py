"""``rewardplug score --engine ray``: score a JSONL file on a Ray cluster with Ray Data.

The driver reads and validates the input exactly as the local engine does
(:func:`rewardplug.io.load_jsonl`) and cuts it into batches of whole groups with the same
:func:`rewardplug.io.group_batches`, so a group is never split (and never discretized in pieces).
Each batch of groups becomes one row of a Ray Dataset; ``map_batches`` sends the rows to a fixed
pool of actors that each load the stack once (models, sandboxes and clients stay warm in the
actor) and score one batch of groups per call. The driver writes the results in batch order with
:class:`rewardplug.io.RowWriter`, so the output file is byte-for-byte the one
:func:`rewardplug.runner.score_file` writes for the same stack, input and ``batch_size`` (for
deterministic sources: every built-in source seeds its draws by sample, never by batch).

The scoring is what is distributed; reading the file and collecting rows stays on the driver,
which is cheap next to scoring for any stack worth a cluster.

Reward functions of ``python`` sources must be importable in the actors: the driver's import path
(``sys.path`` entries outside the Python installation, e.g. ``PYTHONPATH=examples``) is passed to
them through ``PYTHONPATH``; on a remote cluster ship your code with ``runtime_env``
(``working_dir`` or ``py_modules``).
"""

from __future__ import annotations

import json
import os
import sys
import sysconfig
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rewardplug.io import RowWriter, dump_row, group_batches, load_jsonl, output_row
from rewardplug.stack import load_stack
from rewardplug.types import Sample

__all__ = ["score_file_ray"]


class _StackScorer:
    """A Ray Data actor: loads the stack once, then scores one batch of whole groups per row."""

    def __init__(self, stack_path: str):
        self.stack = load_stack(stack_path)

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        import numpy as np

        indices, outputs = [], []
        for index, payload in zip(batch["index"], batch["payload"], strict=True):
            data = json.loads(payload)
            samples = [Sample.model_validate(s) for s in data["samples"]]
            rewards = self.stack.score(samples)
            # serialized here, exactly as `score` writes them, and shipped as lines
            pairs = zip(data["rows"], rewards, strict=True)
            lines = [dump_row(output_row(row, r)) for row, r in pairs]
            indices.append(int(index))
            outputs.append(json.dumps(lines, ensure_ascii=False))
        return {"index": np.array(indices, dtype=np.int64), "rows": np.array(outputs, dtype=object)}


def _import_path() -> str:
    """The driver's own import path entries (not the Python installation's) for the actors."""
    installed = {sysconfig.get_path(p) for p in ("stdlib", "platstdlib", "purelib", "platlib")}
    prefixes = tuple(os.path.realpath(p) for p in installed if p)
    entries = [os.getcwd()]
    for entry in sys.path:
        path = os.path.realpath(entry or os.getcwd())
        if os.path.isdir(path) and not path.startswith(prefixes) and path not in entries:
            entries.append(path)
    extra = os.environ.get("PYTHONPATH")
    if extra:
        entries.extend(p for p in extra.split(os.pathsep) if p and p not in entries)
    return os.pathsep.join(entries)


def score_file_ray(
    stack_path: str,
    input_path: str,
    output_path: str,
    *,
    address: str | None = None,
    batch_size: int = 256,
    skip_bad: bool = False,
    num_actors: int | None = None,
    runtime_env: dict[str, Any] | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> int:
    """Score ``input_path`` into ``output_path`` on Ray; returns the number of rows written.

    :param address: Ray cluster address (``ray.init(address=...)``); None starts a local Ray
        instance unless one is already running in this process.
    :param batch_size: samples per batch of whole groups (as in the local engine).
    :param num_actors: size of the actor pool (default: one per CPU of the cluster, at most one
        per batch); each actor holds one loaded stack.
    :param runtime_env: extra Ray runtime environment for the actors (merged with the import path).
    :param on_progress: called as ``on_progress(done, total)`` after each batch is written.
    """
    import ray

    stack_path = str(Path(stack_path).resolve())
    load_stack(stack_path).close()  # an invalid stack fails here, before Ray starts
    loaded = load_jsonl(input_path, skip_bad=skip_bad)
    out = Path(output_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("", encoding="utf-8")
    batches = group_batches(loaded.samples, batch_size)
    total = len(loaded.samples)
    if on_progress:
        on_progress(0, total)
    if not batches:
        return 0

    started = False
    ctx: Any = None
    saved: tuple[bool, bool] = (False, True)
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
        started = True
    try:
        items = [
            {
                "index": b,
                "payload": json.dumps(
                    {
                        "samples": [loaded.samples[i].model_dump(mode="json") for i in idx],
                        "rows": [loaded.rows[i] for i in idx],
                    },
                    ensure_ascii=False,
                ),
            }
            for b, idx in enumerate(batches)
        ]
        cpus = int(ray.cluster_resources().get("CPU", 1)) or 1
        size = max(1, min(num_actors or cpus, len(batches)))
        env = dict(runtime_env or {})
        env_vars = dict(env.get("env_vars") or {})
        env_vars.setdefault("PYTHONPATH", _import_path())
        env["env_vars"] = env_vars
        ctx = ray.data.DataContext.get_current()
        saved = (ctx.execution_options.preserve_order, ctx.enable_progress_bars)
        ctx.execution_options.preserve_order = True
        if on_progress is not None:  # the caller shows its own progress
            ctx.enable_progress_bars = False
        ds: ray.data.Dataset = ray.data.from_items(items, override_num_blocks=len(items))
        ds = ds.map_batches(
            _StackScorer,
            fn_constructor_kwargs={"stack_path": stack_path},
            batch_size=1,
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=size),
            num_cpus=1,
            runtime_env=env,
        )
        # Results are written strictly in batch order (buffering any that arrive early).
        waiting: dict[int, list[str]] = {}
        next_index = written = 0
        with RowWriter(out) as writer:
            for result in ds.iter_rows():
                waiting[int(result["index"])] = json.loads(result["rows"])
                while next_index in waiting:
                    lines = waiting.pop(next_index)
                    writer.append_lines(lines)
                    written += len(lines)
                    next_index += 1
                    if on_progress:
                        on_progress(written, total)
        if next_index != len(batches):
            raise RuntimeError(f"Ray returned {next_index} of {len(batches)} batches")
        return written
    finally:
        if ctx is not None:
            ctx.execution_options.preserve_order, ctx.enable_progress_bars = saved
        if started:
            ray.shutdown()
