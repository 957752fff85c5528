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
from rewardplug.config import StackConfig, StackError, describe_errors, line_of, read_stack_file
from rewardplug.extras import describe_missing, import_hint, missing_modules
from rewardplug.health import SourceHealth
from rewardplug.source import RewardSource
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


def resolve_source(use: str) -> type[RewardSource]:
    """The source class for ``use:``: a registered name or an import path ``pkg.mod:Class``."""
    if ":" in use:
        obj = plugins.import_object(use)
        if not (isinstance(obj, type) and issubclass(obj, RewardSource)):
            raise ValueError(f"{use!r} is not a RewardSource subclass")
        return obj
    registered: type[RewardSource] = plugins.sources().get(use)
    return registered


def load_stack(stack: str | Path | Mapping[str, Any] | StackConfig) -> Stack:
    """Build a :class:`Stack` from a YAML file path, a mapping, or a :class:`StackConfig`.

    Raises :class:`StackError` listing every problem (key path, YAML line, allowed values).
    """
    node, origin = None, None
    if isinstance(stack, StackConfig):
        return Stack(stack)
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
        problems = describe_errors(exc, StackConfig, node=node) + _source_problems(data, node)
        raise StackError(problems, origin) from None
    return Stack(config, _node=node, _origin=origin)


def _source_problems(data: Mapping[str, Any], node: Any) -> list[str]:
    """Problems in the sources' ``use:``/``with:``, checked on their own (the stack as a whole
    did not validate, so this is the only chance to report them in the same pass)."""
    problems: list[str] = []
    sources = data.get("sources")
    if not isinstance(sources, list):
        return problems
    for i, spec in enumerate(sources):
        if isinstance(spec, Mapping) and isinstance(spec.get("use"), str):
            options = spec.get("with", {})
            if isinstance(options, Mapping):
                problems += _build_source(i, spec["use"], dict(options), node)[1]
    return problems


def _build_source(
    i: int, use: str, options: dict[str, Any], node: Any
) -> tuple[RewardSource | None, list[str]]:
    """The source ``sources[i]`` declares, or the problems that prevent it (path and line):
    an unknown ``use:``, invalid ``with:`` settings, or modules it needs that are not installed
    (named with the pip command that installs them)."""
    line = line_of(node, ("sources", i, "use"))
    at = f"sources[{i}].use{f' (line {line})' if line else ''}"
    try:
        cls = resolve_source(use)
    except (LookupError, ValueError) as exc:
        return None, [f"{at}: {exc}"]
    # modules every configuration needs, reported even when `with:` is invalid as well (a
    # source that narrows them to its configuration is checked once that is known)
    fixed = cls.requirements is RewardSource.requirements
    missing = missing_modules(cls.requires) if fixed else {}
    problems = [f"{at}: {describe_missing(use, missing)}"] if missing else []
    try:
        source = cls(cls.Config.model_validate(options))
    except ValidationError as exc:
        return None, problems + describe_errors(exc, cls.Config, ("sources", i, "with"), node)
    except ImportError as exc:  # a load-time check imported a module that is not there
        if getattr(exc, "name", None) not in missing:
            problems.append(f"sources[{i}].with: {import_hint(exc) or exc}")
        return None, problems
    except (ValueError, OSError, RuntimeError) as exc:  # a source's own load-time check
        return None, [*problems, f"sources[{i}].with: {exc}"]
    if not fixed:
        missing = missing_modules(source.requirements())
        problems += [f"{at}: {describe_missing(use, missing)}"] if missing else []
    if problems:
        source.close()
        return None, problems
    return source, []


class Stack:
    """Sources + combination + discretization, as declared by a :class:`StackConfig`."""

    def __init__(self, config: StackConfig, *, _node: Any = None, _origin: str | None = None):
        self.config = config
        self.sources: dict[str, RewardSource] = {}
        problems: list[str] = []
        for i, spec in enumerate(config.sources):
            source, found = _build_source(i, spec.use, spec.with_, _node)
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
        import asyncio

        names = list(self.sources) if names is None else list(names)
        if not batch:
            return {n: [] for n in names}
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

        if len(self.sources) == 1:
            return {name: run(name) for name in self.sources}
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=len(self.sources)) as pool:
            return dict(zip(self.sources, pool.map(run, self.sources), strict=True))

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
        from rewardplug.rewards import build_rewards, warn_if_no_uncertainty

        self.health.observe(scores)
        from rewardplug.inputs import count_missing

        count_missing(self, batch, self.missing_inputs)
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
