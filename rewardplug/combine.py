"""Draw-wise combination of several sources' scores into one uncertain score per sample.

Each source's draws are aligned to a common K -- resampled without loss where possible (every
draw used ``K // k`` times, the remainder drawn without replacement) and shuffled with a seed
derived from the sample's content, so the result never depends on the batch it came in -- and
then combined draw by draw by the stack's combine rule, so every source's uncertainty
propagates into the combined draws. A combine rule is one function plus its config model,
registered through the ``register_combiners`` hook; the built-ins (``weighted_sum``, ``min``,
``mean_minus_var``) are in :mod:`rewardplug.combine_rules`. Weight 0 = logged, not combined.

Abstaining or failed sources follow the stack's ``on_abstain`` policy (see ``StackConfig``).

What alignment does to a source's spread: filling k draws up to K repeats each draw ``K // k``
times and adds ``K % k`` of them at random, so the aligned draws' sample std is about
``sqrt((k - 1) / k)`` of the source's own (0.89x for k = 5) and the random remainder moves their
mean a little (by up to ``(K % k) / K`` of the range). Shuffling pairs sources independently: for
two perfectly correlated sources the combined std comes out about 0.71x the true one. Give such
sources the same K and ``pairing: paired`` (draw j with draw j), or set ``draws:`` to a multiple
of every source's K.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from rewardplug.discretizer import row_spread
from rewardplug.rules import CombineConfig, Rule
from rewardplug.types import Sample, Score

__all__ = ["Combined", "align", "combine_rule", "combine_scores", "sample_seed"]


@dataclass
class Combined:
    """Combined scores of a batch: ``raw`` (N,) point estimates, ``draws`` (N, K); NaN = none
    (a row with fewer draws than the widest is NaN-padded at the end)."""

    raw: np.ndarray
    draws: np.ndarray
    reasons: list[str | None]
    all_failed: np.ndarray
    #: (N,) sample std of each row's draws (NaN where ``raw`` is)
    std: np.ndarray


def sample_seed(sample: Sample, salt: int) -> list[int]:
    """A seed that depends only on the sample's identity and content (never on the batch)."""
    digest = hashlib.blake2b(f"{sample.id}\x00{sample.response}".encode(), digest_size=8).digest()
    return [salt, int.from_bytes(digest, "little")]


def align(draws: Sequence[float], k: int, seed: list[int] | None) -> np.ndarray:
    """``k`` draws from ``draws``: all of them ``k // len`` times plus a random remainder.

    With ``seed`` the result is also shuffled, so that sources are paired at random draw by draw
    (sources that sort their draws would otherwise be paired low-with-low).
    """
    src = np.asarray(draws, dtype=np.float64)
    n = len(src)
    if n == k and seed is None:
        return src
    if n == 1:
        return np.full(k, src[0])
    rng = np.random.default_rng(seed if seed is not None else 0)
    idx = np.tile(np.arange(n), k // n)
    if k % n:
        idx = np.concatenate((idx, rng.choice(n, k % n, replace=False)))
    if seed is not None:
        idx = rng.permutation(idx)
    return src[idx]


def combine_scores(
    samples: Sequence[Sample],
    scores: dict[str, list[Score]],
    weights: dict[str, float],
    method: str | CombineConfig = "weighted_sum",
    lam: float | None = None,
    on_abstain: str = "renormalize",
    k: int | None = None,
    seed: int = 0,
    pairing: str = "shuffled",
    floors: dict[str, float] | None = None,
) -> Combined:
    """Combine per-source scores of a batch into :class:`Combined` (see module docstring).

    ``method`` is a registered combine rule's name (``lam`` is its ``lambda`` where it takes
    one) or its validated config. ``floors`` (``on_abstain="floor"``): each weighted source's
    lowest score, used in its place -- every draw at the floor -- where it abstains, so that
    abstaining never pays."""
    config, rule = combine_rule(method, lam)
    if on_abstain not in ("abstain", "floor", "renormalize"):
        raise ValueError(f"on_abstain {on_abstain!r}: use abstain, floor or renormalize")
    if pairing not in ("shuffled", "paired"):
        raise ValueError(f"pairing {pairing!r}: use shuffled or paired")
    names = [name for name in scores if weights.get(name, 0) > 0]
    n = len(samples)
    # Each sample's common K is its own (the stack's ``draws:``, else the largest K among the
    # sources that scored it), never the batch's: a sample's combined draws, and so its group's
    # rewards, do not depend on what else is in the batch. Rows are NaN-padded to the widest.
    if k:
        ks = np.full(n, k, dtype=np.int64)
    else:
        lengths = [[len(s.draws) if s.ok else 1 for s in scores[name]] for name in names]
        ks = np.array(lengths, dtype=np.int64).reshape(len(names), n).max(axis=0, initial=1)
    width = int(ks.max(initial=1))
    # shuffled: sources paired at random draw by draw (independent sources); paired: draw j of
    # every source goes with draw j of the others (sources whose draws share their randomness)
    shuffle = len(names) > 1 and pairing == "shuffled"
    x = np.full((len(names), n, width), np.nan)
    v = np.full((len(names), n), np.nan)
    for si, name in enumerate(names):
        full: list[int] = []  # unshuffled ok rows that already have K draws: one copy for all
        for i, score in enumerate(scores[name]):
            if score.ok and not shuffle and len(score.draws) == ks[i] == width:
                full.append(i)
                v[si, i] = score.value
            elif score.ok:
                x[si, i, : ks[i]] = align(
                    score.draws,
                    int(ks[i]),
                    sample_seed(samples[i], seed * 7919 + si) if shuffle else None,
                )
                v[si, i] = score.value
        if full:
            x[si, full] = np.array([scores[name][i].draws for i in full], dtype=np.float64)
    present = ~np.isnan(v)
    reasons: list[str | None] = [None] * n
    usable = present.any(axis=0)
    if on_abstain == "abstain":
        usable &= present.all(axis=0)
    elif on_abstain == "floor":
        # where some weighted source scored the sample, an abstaining one counts at its floor
        floored = usable & ~present.all(axis=0)
        for si, name in enumerate(names):
            rows = floored & ~present[si]
            if rows.any():
                floor = (floors or {}).get(name)
                if floor is None:
                    raise ValueError(f"on_abstain: floor needs a floor for source {name!r}")
                v[si, rows] = floor
                x[si, rows] = np.where(np.arange(width)[None, :] < ks[rows, None], floor, np.nan)
        for i in np.flatnonzero(floored).tolist():
            reasons[i] = "scored at the floor of -- " + "; ".join(
                f"{name}: {scores[name][i].reason}"
                for si, name in enumerate(names)
                if not present[si, i]
            )
        present = present | floored[None, :]
    for i in np.flatnonzero(~usable).tolist():  # (floored samples are usable)
        missing = [
            f"{name}: {scores[name][i].reason}"
            for si, name in enumerate(names)
            if not present[si, i]
        ]
        reasons[i] = (
            "sources did not score it -- " + "; ".join(missing) if missing else "no weighted source"
        )
    all_failed = np.array(
        [bool(names) and all(scores[nm][i].status == "error" for nm in names) for i in range(n)],
        dtype=bool,
    )

    wts = np.array([weights[name] for name in names], dtype=np.float64)
    held = present[:, :, None]
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        raw = _run(rule, config, v[:, :, None], wts, held, (n, 1))[:, 0]
        drw = _run(rule, config, x, wts, held, (n, width))
    std = row_spread(drw)
    # weighted scores beyond the float range abstain with a reason (never an "ok" NaN reward)
    overflow = usable & ~(np.isfinite(raw) & np.isfinite(std))
    for i in np.flatnonzero(overflow).tolist():
        reasons[i] = "the combined score is not finite (the sources' scores, weighted, overflow)"
    usable &= ~overflow
    raw[~usable] = np.nan
    drw[~usable] = np.nan
    std[~usable] = np.nan
    return Combined(raw=raw, draws=drw, reasons=reasons, all_failed=all_failed, std=std)


def combine_rule(
    method: str | CombineConfig, lam: float | None = None
) -> tuple[CombineConfig, Rule]:
    """The combine rule named ``method`` (with ``lam`` as its ``lambda`` where it takes one), or
    the rule of a validated config; a ``ValueError`` names an unknown rule and the known ones."""
    from rewardplug import plugins
    from rewardplug.rules import validate_rule

    registry = plugins.combiners()
    if isinstance(method, CombineConfig):
        return method, registry.get(method.kind)
    if not isinstance(method, str):
        raise ValueError(f"combine method {method!r}: give a rule's name or its config")
    try:
        rule: Rule = registry.get(method)
    except LookupError as exc:
        raise ValueError(f"combine method {method!r}: {exc}") from None
    takes_lambda = any(f.alias == "lambda" for f in rule.config.model_fields.values())
    options = {"kind": method, **({"lambda": lam} if takes_lambda and lam is not None else {})}
    return validate_rule(registry, CombineConfig, options), rule


def _run(
    rule: Rule,
    config: CombineConfig,
    values: np.ndarray,
    weights: np.ndarray,
    present: np.ndarray,
    shape: tuple[int, int],
) -> np.ndarray:
    """The rule applied to (S, N, K) values; its result checked to be (N, K) floats."""
    out = np.asarray(rule.function(values, weights, present, config), dtype=np.float64)
    if out.shape != shape:
        raise ValueError(
            f"combine rule {config.kind!r} returned shape {out.shape}; expected {shape} "
            "(one row per sample, one column per draw)"
        )
    return out
