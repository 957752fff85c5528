"""The reward-source interface every plugin implements.

A source is a class with a nested pydantic ``Config`` (validated from a stack's ``with:``
mapping, unknown keys rejected) and a batch-first ``score(samples) -> list[Score]``. Network-bound
sources also override ``ascore`` with a native coroutine. Sources must be picklable (Ray actors,
multiprocessing) and load heavy resources (models, clients, sandboxes) lazily, on first use.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict

from rewardplug.types import Sample, Score

if TYPE_CHECKING:
    from rewardplug.inputs import Input

__all__ = ["RewardSource", "SourceConfig"]


class SourceConfig(BaseModel):
    """Base for source configs: unknown keys are errors, so typos fail at stack load."""

    model_config = ConfigDict(extra="forbid")


class RewardSource(ABC):
    """Base class of reward sources.

    Subclasses define ``Config`` (a :class:`SourceConfig` subclass) and ``score``. The instance
    keeps the validated config in ``self.config``. Attributes listed in ``transient`` (loaded
    models, clients, pools) are dropped when the source is pickled (they come back as None) and must
    be re-created lazily.
    """

    Config: ClassVar[type[SourceConfig]] = SourceConfig
    #: attribute names that are not pickled (heavy, process-local resources)
    transient: ClassVar[tuple[str, ...]] = ()
    #: True for a source whose score of a sample depends on the other members of its group (a
    #: contrastive judge): the group assembler then scores it once per complete group instead
    #: of each sample on arrival (see :mod:`rewardplug.groups`)
    group_scoped: ClassVar[bool] = False
    #: the modules this source may import when it scores (any configuration), each with the pip
    #: requirement that provides it: ``{"torch": "rewardplug[neural]"}``, ``{"mylib":
    #: "my-plugin[gpu]"}``. Checked when a stack loads (with ``importlib.util.find_spec``, nothing
    #: is imported): a missing one is a load error naming the pip command. ``rewardplug plugins``
    #: lists what is missing. Narrow it to one configuration by overriding :meth:`requirements`.
    requires: ClassVar[Mapping[str, str]] = {}

    def __init__(self, config: SourceConfig | Mapping[str, Any] | None = None, **options: Any):
        if isinstance(config, SourceConfig):
            if options:
                config = config.model_copy(update=options)
            self.config = config
        else:
            self.config = self.Config.model_validate({**dict(config or {}), **options})

    @abstractmethod
    def score(self, samples: Sequence[Sample]) -> list[Score]:
        """Score a batch; return exactly one :class:`Score` per sample, in order.

        A sample that cannot be scored gets ``Score.abstain(reason)``; an exception for one sample
        must not fail the others. Raising from ``score`` marks the whole batch as errored.
        """

    async def ascore(self, samples: Sequence[Sample]) -> list[Score]:
        """Async scoring; the default runs :meth:`score` in a worker thread."""
        import asyncio

        return await asyncio.to_thread(self.score, samples)

    def inputs(self) -> Sequence[Input]:
        """The sample fields this source reads (:class:`rewardplug.inputs.Input`), so that the
        front ends can reject malformed ones and count missing ones before scoring (see
        :mod:`rewardplug.inputs`). Default: none declared."""
        return ()

    def requirements(self) -> Mapping[str, str]:
        """The modules this configured source imports when it scores (``module -> pip
        requirement``), checked when the stack loads; default :attr:`requires`. Override it
        when they depend on ``self.config`` (the judge: only its backend's client)."""
        return self.requires

    def close(self) -> None:  # noqa: B027 - optional hook with a no-op default
        """Release process-local resources (pools, servers, models). Safe to call twice."""

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        for name in self.transient:
            state.pop(name, None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        for name in self.transient:
            self.__dict__.setdefault(name, None)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.config!r})"
