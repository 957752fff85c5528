"""Per-source reward transforms (a source's ``transform:`` list), applied draw by draw.

Each transform is one plain function over an array of draws plus its config literal (``kind``).
A source's transforms run in order after its ``noise:``, on the point estimate and on every draw
alike, so the source's uncertainty flows through them into the discretizer:

* ``par`` -- preference as reward, ``sigmoid((r - r_ref) / tau)``, where ``r_ref`` is the same
  source's score of the sample's ``reference`` response (Fu et al., 2025, "Reward Shaping to
  Mitigate Reward Hacking in RLHF"): bounded, centred on the reference, saturating above it;
* ``log_sigmoid`` -- ``log sigmoid((r - r_ref) / tau)`` of the same centred value;
* ``clip`` -- ``min(max(r, min), max)``;
* ``scale`` -- ``a * r + b``;
* ``overlong`` -- DAPO's soft overlong punishment (Yu et al., 2025): ``r + penalty * p(n)``
  with ``n`` the response's token count, ``p = 0`` up to ``max_tokens - cache_tokens``, falling
  linearly to ``-1`` at ``max_tokens`` and ``-1`` beyond.

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
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

if TYPE_CHECKING:  # numpy is imported where a transform runs: a stack loads without it
    import numpy as np

from rewardplug.types import Sample, Score, _digest

__all__ = [
    "KINDS",
    "ClipSpec",
    "LogSigmoidSpec",
    "OverlongSpec",
    "ParSpec",
    "ScaleSpec",
    "TransformChain",
    "TransformSpec",
    "clip",
    "log_sigmoid",
    "normalize_transforms",
    "overlong_penalty",
    "par",
    "scale",
]

#: how many reference scores one source keeps (least recently used ones are dropped)
REFERENCE_CACHE_SIZE = 100_000

# -- the functions ---------------------------------------------------------------------------


def par(x: np.ndarray, ref: float, tau: float) -> np.ndarray:
    """``sigmoid((x - ref) / tau)``, computed without overflow for any finite input."""
    import numpy as np

    z = (np.asarray(x, dtype=np.float64) - ref) / tau
    # 0.5 * (1 + tanh(z / 2)) is the logistic function and never overflows
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def log_sigmoid(x: np.ndarray, ref: float, tau: float) -> np.ndarray:
    """``log sigmoid((x - ref) / tau) = -log(1 + exp(-z))``, stable for large ``|z|``."""
    import numpy as np

    z = (np.asarray(x, dtype=np.float64) - ref) / tau
    return -np.logaddexp(0.0, -z)


def clip(x: np.ndarray, lo: float | None, hi: float | None) -> np.ndarray:
    """``x`` limited to ``[lo, hi]`` (an open side when None)."""
    import numpy as np

    return np.clip(
        np.asarray(x, dtype=np.float64),
        -np.inf if lo is None else lo,
        np.inf if hi is None else hi,
    )


def scale(x: np.ndarray, a: float, b: float) -> np.ndarray:
    """``a * x + b``."""
    import numpy as np

    return a * np.asarray(x, dtype=np.float64) + b


def overlong_penalty(n_tokens: int, max_tokens: int, cache_tokens: int) -> float:
    """DAPO's soft overlong punishment of a response of ``n_tokens`` tokens, in ``[-1, 0]``."""
    limit = max_tokens - cache_tokens
    if n_tokens <= limit:
        return 0.0
    if n_tokens <= max_tokens:
        return (limit - n_tokens) / cache_tokens
    return -1.0


# -- the config literals ---------------------------------------------------------------------


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ParSpec(_Spec):
    """``{kind: par, tau: 1.0}``: ``sigmoid((r - r_ref) / tau)``; needs the sample's ``reference``."""

    kind: Literal["par"]
    tau: float = Field(1.0, gt=0, allow_inf_nan=False, description="temperature, on r's scale")


class LogSigmoidSpec(_Spec):
    """``{kind: log_sigmoid, tau: 1.0}``: ``log sigmoid((r - r_ref) / tau)``; needs ``reference``."""

    kind: Literal["log_sigmoid"]
    tau: float = Field(1.0, gt=0, allow_inf_nan=False, description="temperature, on r's scale")


class ClipSpec(_Spec):
    """``{kind: clip, min: 0, max: 1}``: limit the score to ``[min, max]`` (either may be left out)."""

    kind: Literal["clip"]
    min: float | None = Field(None, allow_inf_nan=False)
    max: float | None = Field(None, allow_inf_nan=False)

    @model_validator(mode="after")
    def _bounds(self) -> ClipSpec:
        if self.min is None and self.max is None:
            raise ValueError("clip needs `min`, `max` or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"clip min ({self.min}) is above max ({self.max})")
        return self


class ScaleSpec(_Spec):
    """``{kind: scale, a: 1.0, b: 0.0}``: ``a * r + b``."""

    kind: Literal["scale"]
    a: float = Field(1.0, allow_inf_nan=False)
    b: float = Field(0.0, allow_inf_nan=False)


class OverlongSpec(_Spec):
    """``{kind: overlong, max_tokens, cache_tokens, tokenizer, penalty}``: DAPO's soft overlong
    punishment added to the score (see :func:`overlong_penalty`)."""

    kind: Literal["overlong"]
    max_tokens: int = Field(gt=0, description="L_max: the longest response allowed")
    cache_tokens: int = Field(gt=0, description="L_cache: the soft band before max_tokens")
    #: ``whitespace`` counts words; anything else is a tokenizer folder (or hub name) loaded with
    #: transformers' ``AutoTokenizer.from_pretrained`` when the stack loads
    tokenizer: str = Field("whitespace", min_length=1)
    penalty: float = Field(1.0, ge=0, allow_inf_nan=False, description="the punishment at L_max")

    @model_validator(mode="after")
    def _band(self) -> OverlongSpec:
        if self.cache_tokens > self.max_tokens:
            raise ValueError(
                f"overlong cache_tokens ({self.cache_tokens}) must not exceed "
                f"max_tokens ({self.max_tokens})"
            )
        return self


TransformSpec = Annotated[
    ParSpec | LogSigmoidSpec | ClipSpec | ScaleSpec | OverlongSpec, Field(discriminator="kind")
]
KINDS = ("par", "log_sigmoid", "clip", "scale", "overlong")
_CENTRED = ("par", "log_sigmoid")


def normalize_transforms(value: Any) -> Any:
    """Accept the short YAML forms: ``log_sigmoid`` (a name), ``{par: {tau: 0.5}}`` (one key
    naming the kind), a single transform instead of a list. Anything else is left for pydantic
    to reject with its path."""
    if value is None:
        return []
    if isinstance(value, str | Mapping):
        value = [value]
    if not isinstance(value, list):
        return value
    out = []
    for item in value:
        if isinstance(item, str):
            item = {"kind": item}
        elif isinstance(item, Mapping) and "kind" not in item and len(item) == 1:
            (kind, options), *_ = item.items()
            if kind in KINDS and (options is None or isinstance(options, Mapping)):
                item = {"kind": kind, **dict(options or {})}
        out.append(item)
    return out


# -- running a source's transforms ----------------------------------------------------------

ScoreFn = Callable[[list[Sample]], list[Score]]
AScoreFn = Callable[[list[Sample]], Awaitable[list[Score]]]


def reference_key(sample: Sample) -> str:
    """What a reference score depends on: the prompt, the reference text, tests and rubric."""
    return _digest([sample.prompt, sample.reference, sample.tests, sample.rubric], 32)


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

    An ``overlong`` tokenizer is loaded here, so an unknown tokenizer fails when the stack loads
    (a ``ValueError`` naming it). Picklable: loaded tokenizers and the lock are re-created.
    """

    def __init__(self, specs: Sequence[Any]):
        self.specs: list[Any] = list(specs)
        self.needs_reference = any(s.kind in _CENTRED for s in self.specs)
        self._tokenizers: dict[str, Any] = {}
        self._refs: OrderedDict[str, Score] = OrderedDict()
        self._lock = threading.Lock()
        for spec in self.specs:
            if spec.kind == "overlong" and spec.tokenizer != "whitespace":
                self._tokenizer(spec.tokenizer)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_tokenizers"] = {}
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
        """One sample's score with every transform applied in order (abstentions untouched)."""
        import numpy as np

        if not score.ok:
            return score
        # the reference runs through the chain alongside the response, so a centred transform
        # after others centres on the reference's score at that point of the chain
        ref_value = 0.0
        if self.needs_reference:
            ref = self._reference(sample, fresh or {})
            if isinstance(ref, str):
                kind = next(s.kind for s in self.specs if s.kind in _CENTRED)
                return _abstain(score, f"transform {kind}: {ref}")
            ref_value = float(ref.value)  # type: ignore[arg-type]
        x = np.asarray([score.value, *score.draws], dtype=np.float64)
        r = np.array([ref_value])
        applied: list[dict[str, Any]] = []
        with np.errstate(over="ignore", invalid="ignore"):  # caught below, with a reason
            for spec in self.specs:
                step: dict[str, Any] = {"kind": spec.kind}
                if spec.kind in _CENTRED:
                    fn = par if spec.kind == "par" else log_sigmoid
                    step["reference_value"] = float(r[0])
                    x, r = fn(x, r[0], spec.tau), fn(r, r[0], spec.tau)
                elif spec.kind == "clip":
                    x, r = clip(x, spec.min, spec.max), clip(r, spec.min, spec.max)
                elif spec.kind == "scale":
                    x, r = scale(x, spec.a, spec.b), scale(r, spec.a, spec.b)
                else:  # overlong
                    n = self.count_tokens(sample.response, spec.tokenizer)
                    shift = spec.penalty * overlong_penalty(n, spec.max_tokens, spec.cache_tokens)
                    x = x + shift
                    if self.needs_reference:
                        m = self.count_tokens(sample.reference or "", spec.tokenizer)
                        r = r + spec.penalty * overlong_penalty(
                            m, spec.max_tokens, spec.cache_tokens
                        )
                    step.update(tokens=n, penalty=shift)
                applied.append(step)
        value, draws = x[:1], x[1:]
        if not (np.isfinite(value).all() and np.isfinite(draws).all()):
            kinds = ", ".join(s["kind"] for s in applied)
            return _abstain(
                score, f"transform ({kinds}) gave a non-finite score from value {score.value}"
            )
        detail = {**score.detail, "untransformed": score.value, "transform": applied}
        return Score(value=float(value[0]), draws=draws.tolist(), detail=detail)

    def count_tokens(self, text: str, tokenizer: str) -> int:
        """Tokens in ``text``: words for ``whitespace``, else the tokenizer's ids (no specials)."""
        if tokenizer == "whitespace":
            return len(text.split())
        tok = self._tokenizer(tokenizer)
        return len(tok(text, add_special_tokens=False)["input_ids"])

    def _tokenizer(self, name: str) -> Any:
        tok = self._tokenizers.get(name)
        if tok is None:
            tok = self._tokenizers[name] = load_tokenizer(name)
        return tok


def load_tokenizer(name: str) -> Any:
    """A transformers tokenizer, or a ``ValueError`` that names it and says what to do."""
    try:
        from transformers import AutoTokenizer
    except ImportError:
        raise ValueError(
            f"overlong tokenizer {name!r} needs transformers (pip install 'rewardplug[neural]'), "
            "or use tokenizer: whitespace"
        ) from None
    try:
        import transformers

        verbosity = transformers.logging.get_verbosity()
        transformers.logging.set_verbosity_error()
        try:
            return AutoTokenizer.from_pretrained(name)
        finally:
            transformers.logging.set_verbosity(verbosity)
    except Exception as exc:  # OSError, ValueError, HF hub errors: all mean "cannot load it"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(
            f"overlong: cannot load tokenizer {name!r} ({first}); give a local tokenizer folder "
            "or use tokenizer: whitespace"
        ) from None


def _abstain(score: Score, reason: str) -> Score:
    """An abstention that keeps what the source said about the sample (its ``detail``)."""
    return Score(status="abstain", detail={**score.detail, "reason": reason})
