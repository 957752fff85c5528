"""verl >= 0.9: the reward-loop manager (``rewardplug.integrations.verl.RewardManager``).

Kept apart from :mod:`rewardplug.integrations.verl` so that importing that module never imports
verl (with Ray and torch): ``RewardManager`` is made on first access, a subclass of verl's
``RewardManagerBase`` (which gives ``self.loop`` and ``assemble_rm_scores``) when verl is there,
of a plain stand-in otherwise.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rewardplug.inputs import missing_flags, required_fields
from rewardplug.integrations.conventions import is_eval_split
from rewardplug.integrations.verl_common import (
    STACK_ENV,
    get_stack,
    plain,
    result_fields,
    sample_fields,
    stack_lock,
    warn_once,
)
from rewardplug.types import Reward, Sample, digest

if TYPE_CHECKING:
    from rewardplug.groups import GroupAssembler

__all__ = ["RewardLoopManager", "reward_manager_class"]

#: concurrent calls a reward-loop worker accepts (Ray's default for async actors is 1,000): a
#: sample waiting for its group holds one, so the limit must exceed the samples in flight
WORKER_CONCURRENCY = 100_000

_local: dict[tuple[Any, ...], GroupAssembler] = {}


def _option(config: Any, *path: str) -> Any:
    """``config.a.b.c`` of verl's (OmegaConf or dict) config, or None where a key is missing."""
    node = config
    for key in path:
        if node is None:
            return None
        try:
            node = node.get(key) if hasattr(node, "get") else getattr(node, key, None)
        except Exception:
            return None
    return node


class RewardLoopManager:
    """verl reward-loop manager: tie-grouped rewards for ``run_single`` calls (see
    :mod:`rewardplug.integrations.verl`); made a subclass of verl's ``RewardManagerBase`` by
    :func:`reward_manager_class`.

    verl builds it with ``config`` (the whole trainer config), ``tokenizer`` and
    ``compute_score`` (unused: the stack scores), plus the reward-model router's address and
    tokenizer (unused).
    """

    #: set by verl's ``RewardManagerBase.__init__``
    tokenizer: Any

    def __init__(
        self,
        config: Any,
        tokenizer: Any,
        compute_score: Any = None,
        reward_router_address: str | None = None,
        reward_model_tokenizer: Any = None,
        **options: Any,
    ):
        # verl's RewardManagerBase, mixed in below at run time (reward_manager_class)
        super().__init__(config, tokenizer, compute_score)  # type: ignore[call-arg]
        kwargs = _option(config, "reward", "custom_reward_function", "reward_kwargs") or {}
        opts = {**dict(kwargs.items()), **options}
        self.stack_path = str(opts.get("stack") or os.environ.get(STACK_ENV) or "")
        if not self.stack_path:
            raise ValueError(
                "no reward stack given: add +reward.custom_reward_function.reward_kwargs.stack="
                f"/abs/path/stack.yaml to the verl config, or set {STACK_ENV}"
            )
        if not Path(self.stack_path).is_file():
            raise ValueError(
                f"reward stack {self.stack_path!r} is not a file (reward_kwargs.stack)"
            )
        self.group_size = _size(
            opts.get("group_size") or _option(config, "actor_rollout_ref", "rollout", "n"),
            "actor_rollout_ref.rollout.n (or reward_kwargs.group_size)",
        )
        # verl validates with val_kwargs.n responses per prompt (1 by default), not rollout.n
        val = opts.get("val_group_size") or _option(
            config, "actor_rollout_ref", "rollout", "val_kwargs", "n"
        )
        self.val_group_size = _size(
            val or 1, "actor_rollout_ref.rollout.val_kwargs.n (or reward_kwargs.val_group_size)"
        )
        self.phase_key = str(opts.get("phase_key", "split"))
        self.timeout_s = float(opts.get("group_timeout", 60.0))
        self.abstain_reward = float(opts.get("abstain_reward", 0.0))
        self.assembler = str(opts.get("assembler", "auto"))
        if self.assembler not in ("auto", "ray", "local"):
            raise ValueError(f"reward_kwargs.assembler={self.assembler!r}; use auto, ray or local")
        self.num_cpus = float(opts.get("assembler_num_cpus", 0))
        self.limits = {
            "max_open_groups": int(opts.get("max_open_groups", 8192)),
            "max_samples": int(opts.get("max_held", 16384)),
        }
        self._actor: Any = None
        self._required: list[tuple[str, str]] | None = None

    async def run_single(self, data: Any) -> dict[str, Any]:
        """The reward of one sample (``data[i:i+1]``), once its ``uid`` group is complete."""
        import asyncio

        item = data[-1:][0]
        sample, key, size = await asyncio.get_running_loop().run_in_executor(
            None, self._sample, item
        )
        reward = await self._submit(sample, key, size)
        out = result_fields(reward, list(reward.sources), self.abstain_reward)
        # per-sample 0/1 for each field a source needs: verl averages them into its validation
        # metrics (val-aux/.../missing/<source>/<field>) and writes them to rollout dumps
        out.update(missing_flags(await self._required_fields(), sample))
        score = out.pop("score")
        return {"reward_score": score, "reward_extra_info": out}

    def _sample(self, item: Any) -> tuple[Sample, str, int]:
        """A sample, its group key and its group's size from one verl ``DataProtoItem``."""
        responses = item.batch["responses"]
        mask = item.batch["attention_mask"]
        valid = int(mask[-responses.shape[-1] :].sum())
        response = self.tokenizer.decode(responses[:valid], skip_special_tokens=True)
        extra = item.non_tensor_batch
        reward_model = plain(extra.get("reward_model")) or {}
        gt = reward_model.get("ground_truth") if isinstance(reward_model, dict) else None
        info = plain(extra.get("extra_info"))
        info = info if isinstance(info, dict) else {}
        size = self._phase_size(info)
        fields = sample_fields(info)
        if "prompt" not in fields:
            fields["prompt"] = self._prompt(item, plain(extra.get("raw_prompt")))
        fields["metadata"]["data_source"] = plain(extra.get("data_source"))
        uid = plain(extra.get("uid"))
        if isinstance(uid, str | int) and not isinstance(uid, bool) and uid != "":
            key = f"uid:{uid}"
        else:
            warn_once(
                "uid",
                f"a verl sample has no usable uid ({uid!r}); grouping such samples by prompt",
            )
            key = "prompt:" + digest(fields["prompt"])
        reference = None if gt is None else (gt if isinstance(gt, str) else json.dumps(gt))
        sample = Sample.model_validate(
            {
                **fields,
                "id": digest([key, response]),
                "group": key,
                "response": response,
                "reference": reference,
            }
        )
        return sample, key, size

    def _phase_size(self, info: dict[str, Any]) -> int:
        """``val_group_size`` for a validation sample (``extra_info[phase_key]``), else n."""
        if self.val_group_size == self.group_size:
            return self.group_size
        phase = info.get(self.phase_key)
        if phase is None:
            warn_once(
                "phase",
                f"a verl sample has no extra_info[{self.phase_key!r}], so rewardplug cannot tell "
                f"validation samples (val_kwargs.n = {self.val_group_size} per prompt) from "
                f"training ones (rollout.n = {self.group_size}); it assumes training, and a "
                "validation group would wait out group_timeout. Put the split in extra_info "
                "(verl's preprocessing scripts write 'train' / 'test'), or set "
                "reward_kwargs.phase_key to the field that holds it",
            )
            return self.group_size
        return self.val_group_size if is_eval_split(phase) else self.group_size

    def _prompt(self, item: Any, raw_prompt: Any) -> Any:
        if isinstance(raw_prompt, list) and all(isinstance(m, dict) for m in raw_prompt):
            return raw_prompt  # chat messages (data.return_raw_chat=True)
        if "prompts" not in item.batch.keys():  # noqa: SIM118 (TensorDict: no __contains__)
            return ""
        prompts = item.batch["prompts"]
        mask = item.batch["attention_mask"][: prompts.shape[-1]]
        valid = int(mask.sum())
        return self.tokenizer.decode(prompts[prompts.shape[-1] - valid :], skip_special_tokens=True)

    def _shared_actor(self) -> Any:
        """The shared assembler actor when the assembler runs in Ray, else None (local)."""
        mode = self.assembler
        if mode == "auto":
            ray = sys.modules.get("ray")
            mode = "ray" if ray is not None and ray.is_initialized() else "local"
        if mode == "ray" and self._actor is None:
            from rewardplug.groups_ray import shared_assembler

            self._actor = shared_assembler(
                self.stack_path,
                timeout_s=self.timeout_s,
                num_cpus=self.num_cpus,
                extra="padding",
                **self.limits,
            )
        return self._actor if mode == "ray" else None

    async def _submit(self, sample: Sample, key: str, size: int) -> Reward:
        actor = self._shared_actor()
        if actor is not None:
            reward: Reward = await actor.submit.remote(sample.model_dump(mode="json"), key, size)
            return reward
        assembler = _local_assembler(self.stack_path, self.group_size, self.timeout_s, self.limits)
        return await assembler.submit(sample, key, group_size=size)

    async def _required_fields(self) -> list[tuple[str, str]]:
        """The stack's required ``(source, field)`` pairs, asked once (from the actor's stack)."""
        if self._required is None:
            actor = self._shared_actor()
            if actor is not None:
                found = await actor.required_fields.remote()
            else:
                found = required_fields(get_stack(self.stack_path))
            self._required = [(str(a), str(b)) for a, b in found]
        return self._required


def _size(value: Any, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"group size {value!r}: set {what} to the number of responses per prompt")
    return value


def _local_assembler(
    stack_path: str, group_size: int, timeout_s: float, limits: dict[str, int]
) -> GroupAssembler:
    """This process's assembler for the running event loop (one per stack and deadline)."""
    import asyncio

    from rewardplug.groups import GroupAssembler

    stack = get_stack(stack_path)  # takes stack_lock itself
    key = (asyncio.get_running_loop(), id(stack), timeout_s)
    with stack_lock:
        if key not in _local:
            # verl's uids are unique per prompt and step: a member beyond n is a padded copy
            _local[key] = GroupAssembler(
                stack, group_size, timeout_s=timeout_s, extra="padding", **limits
            )
        return _local[key]


def _worker_concurrency(config: Any) -> int:
    kwargs = _option(config, "reward", "custom_reward_function", "reward_kwargs") or {}
    return int(dict(kwargs.items()).get("worker_concurrency", WORKER_CONCURRENCY))


def raise_worker_concurrency() -> bool:
    """Let verl's reward-loop workers take as many concurrent calls as samples are in flight.

    verl makes its ``RewardLoopWorker`` actors with Ray's default concurrency for async actors
    (1,000 calls). Each sample waiting for its group holds one call; with more waiting samples
    than that on one worker (a large batch, few workers) the members that would complete the
    groups queue behind them and every group waits out its deadline. verl has no setting for it,
    so this wraps ``RewardLoopManager._init_reward_loop_workers`` (in the process that resolves
    the reward manager class, before the workers are made) to create them with
    ``max_concurrency = reward_kwargs.worker_concurrency`` (default 100,000; 0 keeps verl's).
    Only a manager whose reward manager is rewardplug's is affected. True when installed.
    """
    module = sys.modules.get("verl.experimental.reward_loop.reward_loop")
    manager = getattr(module, "RewardLoopManager", None)
    init = getattr(manager, "_init_reward_loop_workers", None)
    if init is None or getattr(init, "_rewardplug", False):
        return init is not None
    worker = module.RewardLoopWorker  # type: ignore[union-attr]

    def _init_reward_loop_workers(self: Any) -> Any:
        ours = getattr(self, "reward_manager_cls", None)
        limit = _worker_concurrency(self.config)
        if isinstance(ours, type) and issubclass(ours, RewardLoopManager) and limit > 0:
            import ray

            # ray's overloads of remote() leave out the actor options (max_concurrency is one)
            remote = ray.remote(max_concurrency=limit)  # type: ignore[call-overload]
            self.reward_loop_workers_class = remote(worker)
        return init(self)

    _init_reward_loop_workers._rewardplug = True  # type: ignore[attr-defined]
    manager._init_reward_loop_workers = _init_reward_loop_workers  # type: ignore[union-attr]
    return True


class _StandIn:
    """verl's base class where verl < 0.9 (or no verl) is installed: the class still documents
    itself and can be built (e.g. to check a config)."""

    def __init__(self, config: Any, tokenizer: Any, compute_score: Any = None):
        self.config, self.tokenizer, self.compute_score = config, tokenizer, compute_score
        self.loop = None


_classes: dict[type, type] = {}


def reward_manager_class() -> type:
    """``RewardManager``: :class:`RewardLoopManager` on top of verl's ``RewardManagerBase``.

    Looked up on every access (one class per base is kept), so a process that reaches verl only
    later -- verl's own loader, after the path was set up -- gets the real base then."""
    try:
        from verl.experimental.reward_loop.reward_manager.base import (
            RewardManagerBase as base,
        )
    except ImportError:
        # a folder named verl on the path imports as an empty namespace package: drop it, so
        # that the real verl, once reachable, is imported then
        stale = sys.modules.get("verl")
        if stale is not None and getattr(stale, "__file__", None) is None:
            del sys.modules["verl"]
        base = _StandIn
    else:
        raise_worker_concurrency()
    if base not in _classes:
        _classes[base] = type(
            "RewardManager",
            (RewardLoopManager, base),
            {"__doc__": RewardLoopManager.__doc__, "__module__": "rewardplug.integrations.verl"},
        )
    return _classes[base]
