"""NeMo Gym adapter: a resources server whose ``/verify`` discretizes each group of rollouts whole.

NeMo Gym (NVIDIA-NeMo/Gym) scores a rollout by POSTing it to its resources server's ``/verify``:
the task row (``responses_create_params`` and the task's own fields, plus the collector's
``_ng_task_index`` / ``_ng_rollout_index``) with the model's ``response``, one request per
rollout. :class:`RewardplugResourcesServer` is a NeMo Gym ``SimpleResourcesServer`` (built from
NeMo Gym's own base class when it is installed) whose ``verify`` submits each rollout to a group
assembler (:mod:`rewardplug.groups`) and answers when the rollout's group has been discretized:

* **Group key** (NeMo Gym's own cohort keys, as its ``genrm_compare`` server reads them):
  ``_ng_group_id`` with ``_ng_group_attempt`` when the caller names groups; else the task
  (``_ng_task_index``, shared by the G repeats of one task row: NeMo Gym's collector stamps it, so
  does NeMo RL's asynchronous GRPO) with a digest of the prompt; else the prompt alone.
* **Group size** G: ``num_rollouts_per_prompt`` in the server's config (NeMo RL's
  ``grpo.num_generations_per_prompt``, ``gym eval run --num-repeats``); a task row may carry
  ``rewardplug_group_size`` (e.g. 1 in a validation set generated once per task).
* **Partial groups.** A group still short of G members ``group_timeout_s`` after its first member
  arrived is discretized with the members it has: real rewards, with ``failure_kind:
  "cohort_incomplete"`` and a ``failure_reason`` (a diagnostic: ``mask_sample`` stays false, as
  NeMo Gym's schema means for a sample still measured validly).
* **Abstentions and failures are typed, never a bare 0.0.** NeMo Gym's ``reward`` must be a
  float; a rollout the stack cannot score gets the fill value ``abstain_reward`` together with
  ``mask_sample: true`` (and ``instance_config.mask_sample: true``, which NeMo RL reads today),
  ``failure_kind`` (``rewardplug:abstained``, or ``verifier_error`` when a source failed or the
  stack raised) and ``failure_reason`` -- the shape NeMo Gym's own judge failsafe answers with.
* **Retries.** NeMo Gym's HTTP client resends a request whose connection dropped: a request
  repeating one already held (same group key, rollout index and response) gets the same answer
  instead of joining its group twice.

Every answer also carries ``rewardplug``: ``raw``, ``tier``, ``n_tiers``, ``group_size``,
``partial_group``, ``abstained`` and ``reason``. Groups are process-local, so the server runs with
one HTTP worker (the config refuses ``num_workers`` > 1 with G > 1).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import math
import os
from collections.abc import Mapping
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from rewardplug.integrations.nemo_gym_protocol import (
    ABSTAINED,
    COHORT_INCOMPLETE,
    GROUP_SIZE_FIELD,
    ROLLOUT_INDEX_KEY,
    VERIFIER_ERROR,
    failed_fields,
    group_key,
    gym_sample,
    plain,
    verify_fields,
)
from rewardplug.types import digest

if TYPE_CHECKING:
    from rewardplug.stack import Stack

# RewardplugResourcesServer and its config (NeMo Gym classes) are built on first access: see
# __getattr__
__all__ = [
    "ABSTAINED",
    "COHORT_INCOMPLETE",
    "GROUP_SIZE_FIELD",
    "STACK_ENV",
    "VERIFIER_ERROR",
    "VerifyGroups",
    "group_key",
    "gym_sample",
    "verify_fields",
]

log = logging.getLogger(__name__)

STACK_ENV = "REWARDPLUG_STACK"
#: answered requests remembered for resent duplicates
_RECENT = 16384


class VerifyGroups:
    """The ``/verify`` protocol on top of a group assembler (NeMo Gym's classes not needed).

    :param stack: the stack that scores, combines and discretizes.
    :param group_size: G, the rollouts per task (``num_rollouts_per_prompt``).
    :param timeout_s: the group deadline, from its first member (then discretized as partial).
    :param abstain_reward: the ``reward`` of a rollout that could not be scored (always sent with
        ``mask_sample: true``).
    """

    def __init__(
        self,
        stack: Stack,
        group_size: int,
        *,
        timeout_s: float = 1800.0,
        abstain_reward: float = 0.0,
    ):
        from rewardplug.groups import GroupAssembler

        if not math.isfinite(abstain_reward):
            raise ValueError(f"abstain_reward must be finite, not {abstain_reward}")
        self.group_size = group_size
        self.abstain_reward = float(abstain_reward)
        self.assembler = GroupAssembler(stack, group_size, timeout_s=timeout_s)
        self._pending: dict[tuple[str, Any, str], asyncio.Future[dict[str, Any]]] = {}
        self._recent: collections.OrderedDict[tuple[str, Any, str], dict[str, Any]] = (
            collections.OrderedDict()
        )
        self._tasks: set[asyncio.Task[None]] = set()

    async def verify(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """The answer fields for one ``/verify`` request body (a dict)."""
        key = group_key(body)
        size = body.get(GROUP_SIZE_FIELD) or self.group_size
        ident = (key, body.get(ROLLOUT_INDEX_KEY), digest(plain(body.get("response") or {})))
        if ident in self._recent:
            return self._recent[ident]
        held = self._pending.get(ident)
        if held is None:
            loop = asyncio.get_running_loop()
            held = loop.create_future()
            self._pending[ident] = held
            task = loop.create_task(self._answer(ident, body, key, size))
            self._tasks.add(task)  # a strong reference until it is done
            task.add_done_callback(self._tasks.discard)
        # a client that goes away leaves its rollout in its group (the others need it)
        return await asyncio.shield(held)

    async def _answer(self, ident: tuple[str, Any, str], body: Any, key: str, size: Any) -> None:
        config = body.get("instance_config")
        try:
            reward = await self.assembler.submit(gym_sample(body, key), key, group_size=size)
            fields = verify_fields(
                reward, expected=size, fill=self.abstain_reward, instance_config=config
            )
        except Exception as exc:
            from rewardplug.admission import AssemblerFull

            if isinstance(exc, AssemblerFull):  # overload, before the group began: retryable
                held = self._pending.pop(ident)
                held.set_exception(exc)
                held.add_done_callback(lambda f: f.exception())  # read even if the client left
                return
            log.error("rewardplug could not score a NeMo Gym rollout of group %r: %s", key, exc)
            fields = failed_fields(exc, self.abstain_reward, config)
        self._recent[ident] = fields
        while len(self._recent) > _RECENT:
            self._recent.popitem(last=False)
        self._pending.pop(ident).set_result(fields)

    async def close(self) -> None:
        """Answer every open group now (as partial)."""
        await self.assembler.close()


def _stack(path: str | None) -> Stack:
    path = path or os.environ.get(STACK_ENV)
    if not path:
        raise ValueError(
            f"no reward stack given: set `stack: /abs/path/stack.yaml` in the resources server's "
            f"config, or {STACK_ENV} in its environment"
        )
    from rewardplug.integrations.verl import get_stack  # the shared per-process stack cache

    return get_stack(path)


_classes: dict[str, type] = {}


def _build() -> None:
    """NeMo Gym's ``SimpleResourcesServer`` with rewardplug's group verify (built on first use,
    so that importing this module never imports NeMo Gym)."""
    from fastapi import FastAPI
    from nemo_gym.base_resources_server import (
        BaseResourcesServerConfig,
        BaseVerifyRequest,
        BaseVerifyResponse,
        SimpleResourcesServer,
    )
    from pydantic import ConfigDict, Field, PrivateAttr, model_validator

    # NeMo Gym is not installed where mypy runs (make frameworks): its base classes are Any
    class RewardplugResourcesServerConfig(BaseResourcesServerConfig):  # type: ignore[misc]
        """The server's block in a NeMo Gym config (module docstring)."""

        name: str = "rewardplug"
        #: the stack YAML (default: ``$REWARDPLUG_STACK``)
        stack: str | None = None
        #: G: the rollouts per task (NeMo RL ``grpo.num_generations_per_prompt``)
        num_rollouts_per_prompt: int = Field(ge=1)
        group_timeout_s: float = Field(default=1800.0, gt=0, allow_inf_nan=False)
        abstain_reward: float = Field(default=0.0, allow_inf_nan=False)

        @model_validator(mode="after")
        def _one_worker(self) -> Any:
            if self.num_rollouts_per_prompt > 1 and (getattr(self, "num_workers", 1) or 1) > 1:
                raise ValueError(
                    "rewardplug assembles groups in one process: run this resources server with "
                    "num_workers: 1"
                )
            return self

    class RewardplugVerifyRequest(BaseVerifyRequest):  # type: ignore[misc]
        model_config = ConfigDict(extra="allow", populate_by_name=True)

    class RewardplugVerifyResponse(BaseVerifyResponse):  # type: ignore[misc]
        model_config = ConfigDict(extra="allow", populate_by_name=True)

    class RewardplugResourcesServer(SimpleResourcesServer):  # type: ignore[misc]
        """A NeMo Gym resources server whose rewards are the stack's, discretized per group."""

        config: RewardplugResourcesServerConfig
        _groups: VerifyGroups | None = PrivateAttr(default=None)

        def model_post_init(self, context: Any) -> None:
            super().model_post_init(context)
            self._groups = VerifyGroups(
                _stack(self.config.stack),  # a bad stack fails at start-up, not mid-run
                self.config.num_rollouts_per_prompt,
                timeout_s=self.config.group_timeout_s,
                abstain_reward=self.config.abstain_reward,
            )

        async def verify(self, body: RewardplugVerifyRequest) -> RewardplugVerifyResponse:
            from fastapi import HTTPException

            from rewardplug.admission import AssemblerFull

            assert self._groups is not None
            data = body.model_dump()
            try:
                fields = await self._groups.verify(data)
            except AssemblerFull as exc:
                raise HTTPException(status_code=503, detail=str(exc)) from None
            response: RewardplugVerifyResponse = RewardplugVerifyResponse.model_validate(
                {**data, **fields}
            )
            return response

        def setup_webserver(self) -> FastAPI:
            app: FastAPI = super().setup_webserver()
            inner = app.router.lifespan_context

            @asynccontextmanager
            async def lifespan(app: FastAPI) -> Any:
                async with inner(app):
                    try:
                        yield
                    finally:
                        if self._groups is not None:  # answer held rollouts before exiting
                            await self._groups.close()

            app.router.lifespan_context = lifespan
            return app

    # FastAPI reads the request model from the annotation: the class itself, not its name (this
    # module's annotations are strings, and these classes are not module globals)
    RewardplugResourcesServer.verify.__annotations__.update(
        {"body": RewardplugVerifyRequest, "return": RewardplugVerifyResponse}
    )
    for cls in (
        RewardplugResourcesServerConfig,
        RewardplugVerifyRequest,
        RewardplugVerifyResponse,
        RewardplugResourcesServer,
    ):
        cls.__module__ = __name__
        _classes[cls.__name__] = cls


def __getattr__(name: str) -> Any:
    if name in (
        "RewardplugResourcesServer",
        "RewardplugResourcesServerConfig",
        "RewardplugVerifyRequest",
        "RewardplugVerifyResponse",
    ):
        if not _classes:
            _build()
        return _classes[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
