"""A reward stack: several sources, combined draw-wise, discretized per group.

``load_stack("stack.yaml")`` validates the whole stack (including every source's ``with:``)
before anything is scored; ``Stack.score(samples)`` returns one :class:`Reward` per sample, in
order. One failing source never fails the batch: its samples follow the ``on_abstain`` policy.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from rewardplug import plugins
from rewardplug.config import StackConfig, StackError, describe_errors, read_stack_file
from rewardplug.health import SourceHealth
from rewardplug.source import RewardSource
from rewardplug.stack_sources import build_source, resolve_source, source_problems
from rewardplug.transforms import TransformChain
from rewardplug.types import Reward, Sample, Score, sample_from

if TYPE_CHECKING:
    from rewardplug.combine import Combined
    from rewardplug.discretizer import DiscretizeResult
    from rewardplug.inputs import InputReport

_log = logging.getLogger("rewardplug")

# numpy, asyncio, the combiner and the discretizer are imported where a batch is scored, not
# here: loading (or validating) a stack then costs a fraction of the start-up.

__all__ = ["Stack", "load_stack", "resolve_source"]


def load_stack(
    stack: str | Path | Mapping[str, Any] | StackConfig, *, host: plugins.Host | None = None
) -> Stack:
    """Build a :class:`Stack` from a YAML file path, a mapping, or a :class:`StackConfig`.

    ``host``: the :class:`~rewardplug.plugins.Host` whose plugins resolve the stack's names
    (default: the current one, usually the process's default host). Raises :class:`StackError`
    listing every problem (key path, YAML line, allowed values).
    """
    host = host or plugins.current_host()
    with plugins.use_host(host):
        return _load(stack, host)


def _load(stack: str | Path | Mapping[str, Any] | StackConfig, host: plugins.Host) -> Stack:
    node, origin = None, None
    if isinstance(stack, StackConfig):
        return Stack(stack, host=host)
    if isinstance(stack, str | Path):
        origin = str(stack)
        data, node = read_stack_file(stack)
    elif isinstance(stack, Mapping):
        data = dict(stack)
    else:
        raise TypeError(f"load_stack takes a path or a mapping, not {type(stack).__name__}")
    try:
        config = StackConfig.model_validate(data)
    except ValidationError as exc:
        # every problem in one pass: the stack's own, and each source's `with:` as well
        problems = describe_errors(exc, StackConfig, node=node) + source_problems(data, node)
        raise StackError(problems, origin) from None
    return Stack(config, host=host, _node=node, _origin=origin)


class Stack:
    """Sources + combination + discretization, as declared by a :class:`StackConfig`."""

    def __init__(
        self,
        config: StackConfig,
        *,
        host: plugins.Host | None = None,
        _node: Any = None,
        _origin: str | None = None,
    ):
        #: the plugin host that resolves this stack's names, current while it builds and scores
        self.host = host or plugins.current_host()
        with plugins.use_host(self.host):
            self._build(config, _node, _origin)

    def _build(self, config: StackConfig, _node: Any, _origin: str | None) -> None:
        self.config = config
        self.sources: dict[str, RewardSource] = {}
        problems: list[str] = []
        for i, spec in enumerate(config.sources):
            source, found = build_source(i, spec.use, spec.with_, _node)
            problems += found
            if source is not None:
                self.sources[spec.name] = source
        self.transforms: dict[str, TransformChain] = {}
        for i, spec in enumerate(config.sources):
            if spec.transform:
                try:  # loads what a transform needs (an overlong tokenizer) now, not mid-batch
                    self.transforms[spec.name] = TransformChain(spec.transform)
                except ValueError as exc:
                    problems.append(f"sources[{i}].transform: {exc}")
        if problems:
            raise StackError(problems, _origin)
        self.weights = {spec.name: spec.weight for spec in config.sources}
        self.noise = {spec.name: spec.noise for spec in config.sources if spec.noise is not None}
        self._index = {spec.name: i for i, spec in enumerate(config.sources)}
        self._warned_k1 = False
        self._logged_raises: set[tuple[str, str]] = set()
        self.health = SourceHealth(config.source_failure_share, config.on_source_failure)
        #: (source, field) -> samples scored without a field the source needs (rewardplug.inputs)
        self.missing_inputs: Counter[tuple[str, str]] = Counter()

    # -- scoring -----------------------------------------------------------------------------

    def score(self, samples: Iterable[Sample | Mapping[str, Any]]) -> list[Reward]:
        """Score a batch: one :class:`Reward` per sample, in input order."""
        batch = _as_samples(samples)
        if not batch:
            return []
        return self.finish(batch, self.score_sources(batch))

    async def ascore(self, samples: Iterable[Sample | Mapping[str, Any]]) -> list[Reward]:
        """Async :meth:`score`: the sources run concurrently with their native ``ascore``."""
        batch = _as_samples(samples)
        if not batch:
            return []
        return self.finish(batch, await self.ascore_sources(batch))

    async def ascore_sources(
        self, batch: Sequence[Sample], names: Sequence[str] | None = None
    ) -> dict[str, list[Score]]:
        """Every source's (or the named sources') scores for the batch, concurrently."""
        names = list(self.sources) if names is None else list(names)
        if not batch:
            return {n: [] for n in names}
        with plugins.use_host(self.host):  # the tasks below copy this context
            return await self._ascore_sources(batch, names)

    async def _ascore_sources(
        self, batch: Sequence[Sample], names: list[str]
    ) -> dict[str, list[Score]]:
        import asyncio

        results = await asyncio.gather(
            *(self.sources[n].ascore(batch) for n in names), return_exceptions=True
        )
        out = {
            n: self._with_noise(n, batch, self._checked(n, r, len(batch)))
            for n, r in zip(names, results, strict=True)
        }
        shaped = [n for n in names if n in self.transforms]
        if shaped:
            done = await asyncio.gather(
                *(
                    self.transforms[n].aapply(batch, out[n], self._ascore_references(n))
                    for n in shaped
                )
            )
            out.update(zip(shaped, done, strict=True))
        return out

    def transform_scores(
        self, name: str, batch: Sequence[Sample], scores: list[Score]
    ) -> list[Score]:
        """Source ``name``'s scores after its ``transform:`` list (references scored by the
        source, cached); the scores themselves when it has none."""
        chain = self.transforms.get(name)
        if chain is None:
            return scores

        def score_refs(refs: list[Sample]) -> list[Score]:
            try:
                result: Any = self.sources[name].score(refs)
            except Exception as exc:
                result = exc
            return self._checked(name, result, len(refs))

        return chain.apply(batch, scores, score_refs)

    def _ascore_references(self, name: str) -> Callable[[list[Sample]], Any]:
        async def ascore_refs(refs: list[Sample]) -> list[Score]:
            try:
                result: Any = await self.sources[name].ascore(refs)
            except Exception as exc:
                result = exc
            return self._checked(name, result, len(refs))

        return ascore_refs

    def _with_noise(self, name: str, batch: Sequence[Sample], scores: list[Score]) -> list[Score]:
        """A source's one-draw scores with its declared ``noise:`` as draws (seeded per sample)."""
        noise = self.noise.get(name)
        if noise is None:
            return scores
        return self.noisy_scores(name, batch, scores, noise.std, noise.draws)

    def noisy_scores(
        self,
        name: str,
        batch: Sequence[Sample],
        scores: Sequence[Score],
        std: float,
        draws: int = 32,
    ) -> list[Score]:
        """``scores`` of source ``name`` with every one-draw ok score turned into ``draws`` draws
        ``value + std * z``, seeded by the sample and the source alone."""
        import numpy as np

        from rewardplug.combine import sample_seed

        out = []
        for sample, score in zip(batch, scores, strict=True):
            if score.ok and score.value is not None and len(score.draws) == 1:
                rng = np.random.default_rng(sample_seed(sample, 104729 + self._index[name]))
                values = (score.value + std * rng.standard_normal(draws)).tolist()
                detail = {**score.detail, "noise_std": std}
                score = score.model_copy(update={"draws": values, "detail": detail})
            out.append(score)
        return out

    def score_sources(
        self, batch: Sequence[Sample], *, transform: bool = True
    ) -> dict[str, list[Score]]:
        """Every source's scores for the batch (sources run in parallel threads), with their
        declared noise and, unless ``transform=False``, their ``transform:`` lists applied."""

        def run(name: str) -> list[Score]:
            try:
                result: Any = self.sources[name].score(batch)
            except Exception as exc:
                result = exc
            scores = self._with_noise(name, batch, self._checked(name, result, len(batch)))
            return self.transform_scores(name, batch, scores) if transform else scores

        import contextvars

        with plugins.use_host(self.host):
            if len(self.sources) == 1:
                return {name: run(name) for name in self.sources}
            from concurrent.futures import ThreadPoolExecutor

            # each thread runs in a copy of this context: it sees the stack's plugin host
            contexts = {name: contextvars.copy_context() for name in self.sources}
            with ThreadPoolExecutor(max_workers=len(self.sources)) as pool:
                done = pool.map(lambda n: contexts[n].run(run, n), self.sources)
                return dict(zip(self.sources, done, strict=True))

    def combine(self, batch: Sequence[Sample], scores: dict[str, list[Score]]) -> Combined:
        """Combine the sources' scores draw-wise (see :mod:`rewardplug.combine`)."""
        from rewardplug.combine import combine_scores

        c = self.config
        return combine_scores(
            batch,
            scores,
            self.weights,
            c.combine,
            c.lambda_,
            c.on_abstain,
            c.draws,
            c.seed,
            c.pairing,
            {spec.name: spec.floor for spec in c.sources if spec.floor is not None},
        )

    def discretize(
        self, batch: Sequence[Sample], combined: Combined, **overrides: Any
    ) -> DiscretizeResult:
        """Tie-group the combined draws per group; ``overrides`` replace ``discretize:`` settings."""
        import numpy as np

        from rewardplug.discretizer import discretize

        d = self.config.discretize.model_copy(update=overrides)
        return discretize(
            combined.draws,
            np.array([s.group for s in batch], dtype=object),
            confidence=d.confidence,
            assign=d.assign,
            values=combined.raw,
            method=d.method,
            margin=d.margin,
            rule=d.rule,
        )

    def check_inputs(self, samples: Sequence[Sample]) -> InputReport:
        """Samples against the sources' declared inputs (:mod:`rewardplug.inputs`): missing
        required fields per source, malformed ones per sample."""
        from rewardplug.inputs import check_inputs

        return check_inputs(self, samples)

    def finish(self, batch: Sequence[Sample], scores: dict[str, list[Score]]) -> list[Reward]:
        """Combine and discretize already computed source scores into rewards."""
        from rewardplug.inputs import count_missing
        from rewardplug.rewards import build_rewards, warn_if_no_uncertainty

        self.health.observe(scores)
        count_missing(self, batch, self.missing_inputs)
        with plugins.use_host(self.host):  # combine rules come from the stack's host
            combined = self.combine(batch, scores)
        enabled = self.config.discretize.enabled
        if enabled and not self._warned_k1:
            self._warned_k1 = warn_if_no_uncertainty(batch, combined)
        result = self.discretize(batch, combined) if enabled else None
        return build_rewards(batch, scores, combined, result)

    def _checked(self, name: str, result: Any, n: int) -> list[Score]:
        """A source's result, or per-sample errors saying what went wrong with it. A source that
        raised is logged with its traceback at DEBUG, once per source and exception type
        (``rewardplug -v`` shows it): its own bug must be findable. The one line a user sees
        is the stack's warning about the failed batch (:mod:`rewardplug.health`), which names
        the exception and its message."""
        if isinstance(result, BaseException):
            key = (name, type(result).__name__)
            if key not in self._logged_raises:
                self._logged_raises.add(key)
                _log.debug(
                    "source %r raised %s on a batch of %d samples; they get status 'error'",
                    name,
                    type(result).__name__,
                    n,
                    exc_info=result,
                )
        return _scores_or_errors(name, result, n)

    # -- integrations ------------------------------------------------------------------------

    def as_trl_reward(
        self, name: str = "rewardplug", *, num_generations: int | None = None
    ) -> Callable[..., list[float | None]]:
        """A TRL ``reward_funcs`` callable: ``fn(prompts, completions, completion_ids=None, **columns)``.

        Groups are consecutive blocks of G completions, as TRL lays them out (a prompt the
        dataset holds twice is two groups). Under a TRL trainer G is read from it: its
        ``num_generations`` in training, ``num_generations_eval`` in evaluation;
        ``num_generations``, when given, must match the trainer's in training. Without a trainer
        G is ``num_generations``, and without either, runs of consecutive equal prompts are the
        groups. Dataset columns become sample fields/metadata. Returns one reward per
        completion, in order; None where the stack abstained.
        """
        from rewardplug.integrations.trl import make_reward_function

        return make_reward_function(self, name, num_generations=num_generations)

    def as_async_trl_reward(
        self, name: str = "rewardplug", *, num_generations: int | None = None
    ) -> Callable[..., Any]:
        """The async TRL reward function (``async def``): sources score concurrently through
        their native ``ascore`` -- use it for network-bound stacks (judges behind an API).
        Groups are found as by :meth:`as_trl_reward`."""
        from rewardplug.integrations.trl import make_async_reward_function

        return make_async_reward_function(self, name, num_generations=num_generations)

    def close(self) -> None:
        """Release every source's resources."""
        for source in self.sources.values():
            source.close()

    def __enter__(self) -> Stack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __getstate__(self) -> dict[str, Any]:
        # a host holds plugin modules and cannot be pickled: a copy (a Ray worker's, say) uses
        # the current host of the process that unpickles it
        return {**self.__dict__, "host": None}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.host = plugins.current_host()

    def __repr__(self) -> str:
        return f"Stack(sources={list(self.sources)}, combine={self.config.combine.kind!r})"


def _as_samples(samples: Iterable[Sample | Mapping[str, Any]]) -> list[Sample]:
    return [s if isinstance(s, Sample) else sample_from(s) for s in samples]


def _scores_or_errors(name: str, result: Any, n: int) -> list[Score]:
    """A source's result, or per-sample errors saying what went wrong with it."""
    if isinstance(result, BaseException):
        reason = f"source {name!r} raised {type(result).__name__}: {result}"
        return [Score.error(reason) for _ in range(n)]
    if (
        not isinstance(result, list | tuple)
        or len(result) != n
        or not all(isinstance(s, Score) for s in result)
    ):
        got = f"{len(result)} items" if isinstance(result, list | tuple) else type(result).__name__
        reason = f"source {name!r} returned {got}; expected a list of {n} Score objects"
        return [Score.error(reason) for _ in range(n)]
    return list(result)
