"""Per-source reward transforms (a source's ``transform:`` list), applied draw by draw.

Each transform is one function plus its config model, registered under its name (``kind``)
through the ``register_transforms`` hook (:mod:`rewardplug.rules`); the built-ins -- ``par``,
``log_sigmoid``, ``clip``, ``scale``, ``overlong`` -- are in :mod:`rewardplug.transform_kinds`.
A source's transforms run in order after its ``noise:``, on the point estimate and on every draw
alike, so the source's uncertainty flows through them into the discretizer. This module runs a
source's list (:class:`TransformChain`).

Rules every transform keeps (property-tested in ``tests/core/test_transforms.py``): an abstaining
or failed score passes through untouched (a transform never turns "could not score" into a
number); a result that is not finite abstains with the reason; and a sample's result depends on
that sample alone -- the reference score of ``par`` is cached by the prompt and reference text
(and the sample's tests and rubric), never by its place in a batch.

The reference enters as its point estimate (``Score.value``), not its draws: every response to a
prompt is centred on the same reference, so the reference's own spread is common to the whole
group and says nothing about which response is better; adding it draw by draw would only tie
responses that are confidently different.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from rewardplug.rules import TransformConfig, TransformContext, short_form
from rewardplug.transform_kinds import (
    KINDS,
    ClipSpec,
    LogSigmoidSpec,
    OverlongSpec,
    ParSpec,
    ScaleSpec,
    clip,
    load_tokenizer,
    log_sigmoid,
    overlong_penalty,
    par,
    scale,
)
from rewardplug.types import Sample, Score, digest

__all__ = [
    "KINDS",
    "ClipSpec",
    "LogSigmoidSpec",
    "OverlongSpec",
    "ParSpec",
    "ScaleSpec",
    "TransformChain",
    "TransformConfig",
    "TransformSpec",
    "clip",
    "load_tokenizer",
    "log_sigmoid",
    "normalize_transforms",
    "overlong_penalty",
    "par",
    "reference_key",
    "reference_sample",
    "scale",
]

#: a validated ``transform:`` entry: an instance of the config model registered under its kind
TransformSpec = TransformConfig

#: how many reference scores one source keeps (least recently used ones are dropped)
REFERENCE_CACHE_SIZE = 100_000


def normalize_transforms(value: Any) -> Any:
    """Accept the short YAML forms: ``log_sigmoid`` (a name), ``{par: {tau: 0.5}}`` (one key
    naming the kind), a single transform instead of a list. Anything else is left for
    validation to reject with its path."""
    if value is None:
        return []
    if isinstance(value, str | Mapping):
        value = [value]
    if not isinstance(value, list):
        return value
    return [short_form(item) for item in value]


# -- running a source's transforms ----------------------------------------------------------

ScoreFn = Callable[[list[Sample]], list[Score]]
AScoreFn = Callable[[list[Sample]], Awaitable[list[Score]]]


def reference_key(sample: Sample) -> str:
    """What a reference score depends on: the prompt, the reference text, tests and rubric."""
    return digest([sample.prompt, sample.reference, sample.tests, sample.rubric], 32)


def reference_sample(sample: Sample) -> Sample:
    """The sample's reference response as a sample of its own (same prompt, tests, rubric).

    Dataset columns (``metadata``) are left out: they describe the response being scored
    (``is_correct``, a length), not the reference, and the cache key does not include them.
    """
    return Sample(
        group=sample.group,
        prompt=sample.prompt,
        response=sample.reference or "",
        reference=sample.reference,
        tests=sample.tests,
        rubric=sample.rubric,
    )


class TransformChain:
    """One source's ``transform:`` list, ready to run; loads what it needs when built.

    Each transform's function is looked up in the transform registry by its ``kind``, and its
    config's ``prepare()`` runs here (an ``overlong`` tokenizer is loaded), so a bad setting fails
    when the stack loads (a ``ValueError`` naming it). Picklable: the lock is re-created and the
    configs drop what they loaded.
    """

    def __init__(self, specs: Sequence[TransformConfig]):
        from rewardplug import plugins

        self.specs: list[TransformConfig] = list(specs)
        self._functions: list[Callable[..., Any]] = []
        registry = plugins.transforms()
        for spec in self.specs:
            rule = registry.get(spec.kind)
            if not isinstance(spec, rule.config):
                raise ValueError(
                    f"transform {spec.kind!r} takes a {rule.config.__name__} config, "
                    f"not {type(spec).__name__}"
                )
            self._functions.append(rule.function)
        self.needs_reference = any(type(s).needs_reference for s in self.specs)
        self._refs: OrderedDict[str, Score] = OrderedDict()
        self._lock = threading.Lock()
        for spec in self.specs:
            spec.prepare()

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_lock", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    # -- references --------------------------------------------------------------------------

    def missing_references(self, batch: Sequence[Sample]) -> dict[str, Sample]:
        """The batch's reference responses that are not cached yet (one per key)."""
        if not self.needs_reference:
            return {}
        out: dict[str, Sample] = {}
        with self._lock:
            for sample in batch:
                if sample.reference is None:
                    continue
                key = reference_key(sample)
                if key not in self._refs and key not in out:
                    out[key] = reference_sample(sample)
        return out

    def remember(self, keys: Sequence[str], scores: Sequence[Score]) -> dict[str, Score]:
        """Cache the references' scores (errors are not cached: they may be transient)."""
        got = dict(zip(keys, scores, strict=True))
        with self._lock:
            for key, score in got.items():
                if score.status != "error":
                    self._refs[key] = score
                    self._refs.move_to_end(key)
            while len(self._refs) > REFERENCE_CACHE_SIZE:
                self._refs.popitem(last=False)
        return got

    def _reference(self, sample: Sample, fresh: Mapping[str, Score]) -> Score | str:
        """The reference's score, or why there is none."""
        if sample.reference is None:
            return "the sample has no `reference` response to centre on"
        key = reference_key(sample)
        with self._lock:
            score = self._refs.get(key) or fresh.get(key)
        if score is None:
            return "the reference response was not scored"
        if not score.ok:
            return f"the reference response could not be scored: {score.reason}"
        return score

    def apply(
        self, batch: Sequence[Sample], scores: Sequence[Score], score_refs: ScoreFn | None = None
    ) -> list[Score]:
        """The batch's scores transformed; ``score_refs`` scores reference responses (the same
        source's ``score``) when a centred transform needs them and they are not cached."""
        fresh: dict[str, Score] = {}
        missing = self.missing_references([s for s, sc in zip(batch, scores, strict=True) if sc.ok])
        if missing and score_refs is not None:
            fresh = self.remember(list(missing), score_refs(list(missing.values())))
        return [self.transform(s, sc, fresh) for s, sc in zip(batch, scores, strict=True)]

    async def aapply(
        self, batch: Sequence[Sample], scores: Sequence[Score], ascore_refs: AScoreFn | None = None
    ) -> list[Score]:
        """:meth:`apply` with the references scored by an async scorer."""
        fresh: dict[str, Score] = {}
        missing = self.missing_references([s for s, sc in zip(batch, scores, strict=True) if sc.ok])
        if missing and ascore_refs is not None:
            fresh = self.remember(list(missing), await ascore_refs(list(missing.values())))
        return [self.transform(s, sc, fresh) for s, sc in zip(batch, scores, strict=True)]

    # -- one sample --------------------------------------------------------------------------

    def transform(
        self, sample: Sample, score: Score, fresh: Mapping[str, Score] | None = None
    ) -> Score:
        """One sample's score with every transform applied in order (abstentions untouched).

        A transform that raises, or returns an array of another shape, makes the sample's score
        an error naming it; a non-finite result makes it abstain with the reason.
        """
        import numpy as np

        if not score.ok:
            return score
        # the reference runs through the chain alongside the response, so a centred transform
        # after others centres on the reference's score at that point of the chain
        r = None
        if self.needs_reference:
            ref = self._reference(sample, fresh or {})
            if isinstance(ref, str):
                kind = next(s.kind for s in self.specs if type(s).needs_reference)
                return _abstain(score, f"transform {kind}: {ref}")
            r = np.array([float(ref.value)])  # type: ignore[arg-type]
        x = np.asarray([score.value, *score.draws], dtype=np.float64)
        applied: list[dict[str, Any]] = []
        with np.errstate(over="ignore", invalid="ignore"):  # caught below, with a reason
            for spec, fn in zip(self.specs, self._functions, strict=True):
                step: dict[str, Any] = {"kind": spec.kind}
                ref_value = None if r is None else float(r[0])
                if type(spec).needs_reference:
                    step["reference_value"] = ref_value
                context = TransformContext(sample, sample.response, ref_value)
                try:
                    x = _same_shape(fn(x, spec, context), x)
                    if r is not None:
                        text = sample.reference or ""
                        r = _same_shape(
                            fn(r, spec, TransformContext(sample, text, ref_value, True)), r
                        )
                except Exception as exc:  # a plugin's bug: this sample errs, the batch goes on
                    reason = f"transform {spec.kind} raised {type(exc).__name__}: {exc}"
                    return Score(status="error", detail={**score.detail, "reason": reason})
                step.update(context.detail)
                applied.append(step)
        value, draws = x[:1], x[1:]
        if not (np.isfinite(value).all() and np.isfinite(draws).all()):
            kinds = ", ".join(s["kind"] for s in applied)
            return _abstain(
                score, f"transform ({kinds}) gave a non-finite score from value {score.value}"
            )
        detail = {**score.detail, "untransformed": score.value, "transform": applied}
        return Score(value=float(value[0]), draws=draws.tolist(), detail=detail)


def _same_shape(result: Any, values: Any) -> Any:
    """A transform's result as a float array of its input's shape, or a ``ValueError``."""
    import numpy as np

    out = np.asarray(result, dtype=np.float64)
    if out.shape != values.shape:
        raise ValueError(f"returned shape {out.shape} for values of shape {values.shape}")
    return out


def _abstain(score: Score, reason: str) -> Score:
    """An abstention that keeps what the source said about the sample (its ``detail``)."""
    return Score(status="abstain", detail={**score.detail, "reason": reason})
