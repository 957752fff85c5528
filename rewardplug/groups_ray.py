"""One group assembler shared by every process of a Ray job: a named, async Ray actor.

A trainer that scores samples in several processes (verl's reward-loop workers are Ray actors, and
each sample goes to a random one) cannot assemble a group inside any one of them. The actor made
here holds the stack and one :class:`~rewardplug.groups.GroupAssembler` (each group's size comes
with its first member, so training and validation groups share it); every
process that asks for it by the same name gets the same actor (``get_if_exists``), submits its
samples to it and awaits its rewards. Scoring happens in the actor, so models and sandboxes load
once for the whole job.

The actor is owned by the process that created it first (not detached): it lives as long as that
process, i.e. the training job. ``num_cpus=0`` by default so that it is schedulable on a cluster
whose CPUs the trainer has already reserved; give it CPUs (``num_cpus``) when its sources are
CPU-heavy, so that Ray places it where they are.

Ray is imported inside the functions, so ``import rewardplug`` stays light.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from rewardplug.groups import GroupAssembler
from rewardplug.types import Reward, Sample

__all__ = ["AssemblerActor", "actor_name", "shared_assembler"]


class AssemblerActor:
    """The actor's class (made remote by :func:`shared_assembler`)."""

    def __init__(self, stack_path: str, timeout_s: float | None, options: dict[str, Any]):
        from rewardplug.stack import load_stack

        self.stack = load_stack(stack_path)
        self.timeout_s = timeout_s
        self.options = options
        self.assembler: GroupAssembler | None = None

    async def submit(self, sample: dict[str, Any], key: str, group_size: int) -> Reward:
        """The reward of ``sample`` once its group (``key``, ``group_size`` members) is done."""
        if self.assembler is None:  # made on the actor's event loop, which it belongs to
            self.assembler = GroupAssembler(
                self.stack, group_size, timeout_s=self.timeout_s, **self.options
            )
        return await self.assembler.submit(
            Sample.model_validate(sample), key, group_size=group_size
        )

    async def required_fields(self) -> list[tuple[str, str]]:
        """``(source, field)`` the stack's sources cannot score without."""
        from rewardplug.inputs import required_fields

        return required_fields(self.stack)

    async def health(self) -> dict[str, Any]:
        """Open groups, held samples, waiting first members, missing inputs and counters."""
        import dataclasses

        a = self.assembler
        # samples scored without a field their source needs, per "source.field"
        missing = {f"{s}.{f}": n for (s, f), n in sorted(self.stack.missing_inputs.items())}
        if a is None:
            return {"open": 0, "held": 0, "waiting_for_room": 0, "missing_inputs": missing}
        return {
            "open": a.open_groups,
            "held": a.held,
            "waiting_for_room": a.waiting_for_room,
            "missing_inputs": missing,
            **dataclasses.asdict(a.stats),
        }


def actor_name(stack_path: str | Path, timeout_s: float | None) -> str:
    """The actor's name: one actor per stack file and deadline."""
    key = f"{Path(stack_path).resolve()}\x00{timeout_s}"
    return "rewardplug-groups-" + hashlib.blake2b(key.encode(), digest_size=6).hexdigest()


def shared_assembler(
    stack_path: str | Path,
    *,
    timeout_s: float | None = 60.0,
    num_cpus: float = 0,
    max_open_groups: int = 8192,
    max_samples: int = 16384,
    max_concurrency: int = 100_000,
    extra: str = "new_group",
) -> Any:
    """The job's assembler actor for ``stack_path`` (created on first use); needs ``ray.init``.

    Call ``await handle.submit.remote(sample.model_dump(), key, group_size)`` for a reward.
    ``max_concurrency`` bounds the submissions the actor awaits at once; it must exceed the
    samples in flight, or submissions queue behind groups that wait for them. The limits and
    ``extra`` are those of :class:`~rewardplug.groups.GroupAssembler`; they take effect when the
    actor is created (the first caller's win).
    """
    import ray

    if not ray.is_initialized():
        raise RuntimeError(
            "the shared group assembler is a Ray actor: call ray.init() first (verl does), or "
            "use the in-process assembler (assembler: local) when one process sees every sample"
        )
    remote = ray.remote(AssemblerActor)
    return remote.options(
        name=actor_name(stack_path, timeout_s),
        get_if_exists=True,
        num_cpus=num_cpus,
        max_concurrency=max_concurrency,
    ).remote(
        str(Path(stack_path).resolve()),
        timeout_s,
        {"max_open_groups": max_open_groups, "max_samples": max_samples, "extra": extra},
    )
