"""TRL's calls as samples: the dataset columns of a call, and its groups (blocks of G or runs).

:func:`trl_samples` is the public helper; :mod:`rewardplug.integrations.trl` builds its reward
functions on :func:`call_samples` and :func:`group_size_of` (G read from the trainer, or given).
How TRL lays out groups, and how G is found, is told in :mod:`rewardplug.integrations.trl`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

from rewardplug import notices
from rewardplug.types import Sample, digest

__all__ = [
    "call_samples",
    "check_num_generations",
    "group_size_of",
    "sample_columns",
    "trl_samples",
]

# the TRL adapter's logger, where this code lived: its notices reach the same handlers
log = logging.getLogger("rewardplug.integrations.trl")

#: keyword arguments TRL adds to every call that are not dataset columns
_TRL_KWARGS = ("completion_ids", "trainer_state", "log_metric", "log_extra", "environments")


def sample_columns(n: int, columns: dict[str, Any]) -> dict[str, Any]:
    """The dataset columns of a call: lists with one entry per completion (not TRL's helpers)."""
    return {
        k: v
        for k, v in columns.items()
        if k not in _TRL_KWARGS and isinstance(v, list | tuple) and len(v) == n
    }


def trl_samples(
    prompts: Sequence[Any],
    completions: Sequence[Any],
    *,
    num_generations: int | None = None,
    **columns: Any,
) -> list[Sample]:
    """Samples for a TRL call, grouped as TRL groups them.

    With ``num_generations`` (G), consecutive blocks of G completions form the groups (TRL's
    layout; a prompt repeated in the batch is two groups); the batch length must be a multiple of
    G. Without it, consecutive equal prompts form one group (a prompt repeated next to itself then
    pools both of its trainer groups). This helper takes G as given; the reward functions of
    :func:`make_reward_function` read it from the trainer.

    Columns that are lists with one entry per completion become sample fields (``reference``,
    ``tests``, ``rubric``, ``id``) or metadata; anything else (TRL's own helpers) is ignored.
    A ``tests`` column may hold JSON strings (nested specs do not fit Arrow schemas well).
    """
    size = (check_num_generations(num_generations), "trl_samples(num_generations=...)")
    return call_samples(prompts, completions, columns, size, set())


def check_num_generations(num_generations: int | None) -> int | None:
    if num_generations is not None and (
        isinstance(num_generations, bool)
        or not isinstance(num_generations, int)
        or num_generations < 1
    ):
        raise ValueError(f"num_generations must be a positive int or None, not {num_generations!r}")
    return num_generations


def _trainer(columns: dict[str, Any]) -> Any | None:
    """The trainer behind TRL's ``log_metric`` hook (a bound method of it), if it has a G."""
    trainer = getattr(columns.get("log_metric"), "__self__", None)
    size = getattr(trainer, "num_generations", None)
    return trainer if isinstance(size, int) and not isinstance(size, bool) else None


def group_size_of(num_generations: int | None, columns: dict[str, Any]) -> tuple[int | None, str]:
    """G for one call, and where it came from (for messages); None: group by prompt runs.

    The trainer's (reached through TRL's ``log_metric`` hook) ``num_generations`` in training,
    ``num_generations_eval`` in evaluation (``trainer.model.training`` False, as TRL decides);
    else the explicit ``num_generations``. In training an explicit value that differs from the
    trainer's is a ValueError.
    """
    trainer = _trainer(columns)
    if trainer is None:
        return num_generations, "as_trl_reward(num_generations=...)"
    training = getattr(getattr(trainer, "model", None), "training", True)
    train_size = trainer.num_generations
    if not training:
        size = getattr(trainer, "num_generations_eval", None) or train_size
        return size, "the trainer's num_generations_eval (evaluation)"
    if num_generations is not None and num_generations != train_size:
        raise ValueError(
            f"the reward function was built with num_generations={num_generations}, but the "
            f"trainer ({type(trainer).__name__}) generates num_generations={train_size} "
            "completions per prompt: pass the trainer's value (or leave num_generations out, "
            "and it is read from the trainer)"
        )
    return train_size, "the trainer's num_generations (training)"


def _notice(
    seen: set[str], topic: str, message: str, level: int = logging.WARNING, warn: bool = True
) -> None:
    """Log ``message`` (and warn, when ``warn``) the first time ``topic`` comes up in ``seen``.

    A warning points at the trainer's call of the reward function; the log record repeats it
    only for a configured log (never twice on stderr)."""
    if topic in seen:
        return
    seen.add(topic)
    if not warn:
        log.log(level, message)
        return
    notices.warn(message)
    if log.hasHandlers():
        log.log(level, message, extra={notices.SHOWN: True})


def _group_ids(keys: Sequence[str], size: tuple[int | None, str], seen: set[str]) -> list[str]:
    """One group id per completion: blocks of G when G is known, else runs of equal prompts."""
    n, (g, origin) = len(keys), size
    if g is None:
        ids, runs, run, previous = [], [], -1, object()
        for key in keys:
            if key != previous:
                run, previous = run + 1, key
                runs.append(0)
            runs[-1] += 1
            ids.append(f"{run}:{key}")
        if len(set(runs)) > 1:
            _notice(
                seen,
                "runs",
                f"rewardplug: groups found as runs of equal prompts (no trainer in reach, no "
                f"num_generations) have different sizes {sorted(set(runs))} in one call: a "
                "prompt repeated next to itself in the batch pools its trainer groups into one "
                "comparison pool. Pass as_trl_reward(num_generations=G) to group by blocks of G.",
                level=logging.INFO,
                warn=False,
            )
        return ids
    if n % g:
        raise ValueError(
            f"TRL passed {n} completions, not a multiple of num_generations={g} (from {origin}), "
            "so they cannot be split into groups of G: set num_generations to the number of "
            "completions the trainer generates per prompt (GRPOConfig.num_generations; "
            "num_generations_eval in evaluation), or leave it out to read it from the trainer"
        )
    ids = []
    for start in range(0, n, g):
        block = keys[start : start + g]
        if any(k != block[0] for k in block):
            _notice(
                seen,
                "mixed",
                f"rewardplug: completions {start}..{start + g - 1}, a block of num_generations={g} "
                f"(from {origin}), hold different prompts; each block is still discretized as one "
                "group. TRL repeats every prompt G times in a row, so this usually means G is not "
                "the trainer's: check GRPOConfig.num_generations / num_generations_eval and the "
                "num_generations given to as_trl_reward (a custom rollout that reorders "
                "completions breaks the blocks too).",
            )
        ids.extend([f"{start // g}:{block[0]}"] * g)
    return ids


def call_samples(
    prompts: Sequence[Any],
    completions: Sequence[Any],
    columns: dict[str, Any],
    size: tuple[int | None, str],
    seen: set[str],
) -> list[Sample]:
    n = len(completions)
    if len(prompts) != n:
        raise ValueError(f"TRL passed {len(prompts)} prompts for {n} completions")
    cols = sample_columns(n, columns)
    groups = _group_ids([digest(p) for p in prompts], size, seen)
    samples = []
    for i, (prompt, completion) in enumerate(zip(prompts, completions, strict=True)):
        fields = {k: v[i] for k, v in cols.items()}
        if isinstance(fields.get("tests"), str):
            # Nested test specs are awkward in Arrow-backed datasets: a JSON string is accepted.
            fields["tests"] = _json_object(fields["tests"], "tests", i)
        fields.setdefault("id", str(i))
        fields["id"] = str(fields["id"]) + (f"#{i}" if "id" in cols else "")
        samples.append(
            Sample.model_validate(
                {**fields, "group": groups[i], "prompt": prompt, "response": completion}
            )
        )
    return samples


def _json_object(text: str, column: str, index: int) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"column {column!r}, row {index}: not a JSON object ({exc})") from None
