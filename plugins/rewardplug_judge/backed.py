"""The part every judge-backed source shares: a lazily made backend and prompt template, and a
synchronous ``score`` that runs ``ascore`` on a loop and closes the backend with it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rewardplug.source import RewardSource
from rewardplug.types import Sample, Score
from rewardplug_judge.backends import Backend, make_backend
from rewardplug_judge.prompts import Template, load_template
from rewardplug_judge.requirements import ALL_BACKENDS, backend_requirements

__all__ = ["BackedSource"]


class BackedSource(RewardSource):
    """A source that asks a judge backend; subclasses implement ``ascore``."""

    transient = ("_backend", "_template")
    requires = ALL_BACKENDS  # narrowed to the configured backend by requirements()

    def __init__(self, config: Any = None, **options: Any):
        super().__init__(config, **options)
        self._backend: Backend | None = None
        self._template: Template | None = None

    def requirements(self) -> Mapping[str, str]:
        return backend_requirements(self.config)

    @property
    def backend(self) -> Backend:
        """The judge backend (created on first use)."""
        if self._backend is None:
            self._backend = make_backend(self.config)
        return self._backend

    @property
    def template(self) -> Template:
        """The judge prompt template."""
        if self._template is None:
            self._template = load_template(self.config.template_name)
        return self._template

    def score(self, samples: Sequence[Sample]) -> list[Score]:
        from rewardplug_judge.aio import run_sync

        async def once() -> list[Score]:
            try:
                return await self.ascore(samples)
            finally:
                await self.backend.aclose()  # the loop ends with this call

        return run_sync(once())
