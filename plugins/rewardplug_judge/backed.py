"""The part every judge-backed source shares: a lazily made backend and prompt template, the
sample fields its template reads (a sample without a reference its template needs is never sent:
it abstains), and a synchronous ``score`` that runs ``ascore`` on a loop and closes the backend
with it."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any

from rewardplug import RewardSource, Sample, Score, SourceConfig
from rewardplug.plugin_api import Input
from rewardplug_judge.backends import Backend, BackendConfig, make_backend
from rewardplug_judge.prompts import Template, load_template
from rewardplug_judge.requirements import ALL_BACKENDS, backend_requirements

__all__ = ["BackedConfig", "BackedSource"]


class BackedConfig(SourceConfig, BackendConfig):
    """``with:`` of a judge-backed source: the backend fields, and the prompt template it uses."""

    @property
    def template_name(self) -> str:
        """The name or path of the prompt template (each source's config decides)."""
        raise NotImplementedError


class BackedSource(RewardSource):
    """A source that asks a judge backend; subclasses implement ``ascore``."""

    config: BackedConfig
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

    def inputs(self) -> Sequence[Input]:
        """``reference`` when the template shows one: required when it shows ``{reference}``
        outside an ``<!-- if reference -->`` block (the shipped templates only show it inside)."""
        always, conditional = self.template.placeholders()
        if "reference" in always:
            return (Input("reference", check=_text),)
        if "reference" in conditional:
            return (Input("reference", required=False, check=_text),)
        return ()

    async def ascore(self, samples: Sequence[Sample]) -> list[Score]:
        """Score a batch; a sample without a field the template needs abstains, unsent."""
        needed = [i.field for i in self.inputs() if i.required]
        lacking = {
            i: Score.abstain(
                f"the sample has no `{field}`, which the judge template "
                f"{self.config.template_name!r} shows (add it to the sample, or use a template "
                f"that puts it inside <!-- if {field} --> ... <!-- endif -->)"
            )
            for i, s in enumerate(samples)
            for field in needed
            if not getattr(s, field, None)
        }
        if not lacking:
            return await self.ascore_ready(samples)
        keep = [i for i in range(len(samples)) if i not in lacking]
        got = await self.ascore_ready([samples[i] for i in keep]) if keep else []
        out = {**lacking, **dict(zip(keep, got, strict=True))}
        return [out[i] for i in range(len(samples))]

    @abstractmethod
    async def ascore_ready(self, samples: Sequence[Sample]) -> list[Score]:
        """Score samples that have every field the template needs."""

    def score(self, samples: Sequence[Sample]) -> list[Score]:
        from rewardplug_judge.aio import run_sync

        async def once() -> list[Score]:
            try:
                return await self.ascore(samples)
            finally:
                await self.backend.aclose()  # the loop ends with this call

        return run_sync(once())


def _text(value: Any) -> None:
    if not isinstance(value, str):
        raise ValueError(f"`reference` must be text, got {type(value).__name__}")
