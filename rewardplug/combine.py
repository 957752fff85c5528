"""Draw-wise combination of several sources' scores into one uncertain score per sample.

Each source's draws are aligned to a common K -- resampled without loss where possible (every
draw used ``K // k`` times, the remainder drawn without replacement) and shuffled with a seed
derived from the sample's content, so the result never depends on the batch it came in -- and
then combined draw by draw, so every source's uncertainty propagates into the combined draws:

* ``weighted_sum``: ``sum_s w_s x_s``;
* ``min``: the worst source per draw (the worst-case ensemble objective; weights only select
  which sources take part: weight 0 = logged, not used);
* ``mean_minus_var``: weighted mean minus ``lambda`` times the weighted variance across sources
  (the uncertainty-weighted ensemble objective of Coste et al., 2023).

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
from rewardplug.types import Sample, Score

__all__ = ["Combined", "align", "combine_scores", "sample_seed"]


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
    method: str = "weighted_sum",
    lam: float = 1.0,
    on_abstain: str = "renormalize",
    k: int | None = None,
    seed: int = 0,
    pairing: str = "shuffled",
    floors: dict[str, float] | None = None,
) -> Combined:
    """Combine per-source scores of a batch into :class:`Combined` (see module docstring).

    ``floors`` (``on_abstain="floor"``): each weighted source's lowest score, used in its place
    -- every draw at the floor -- where it abstains, so that abstaining never pays."""
    if method not in ("weighted_sum", "min", "mean_minus_var"):
        raise ValueError(f"combine method {method!r}: use weighted_sum, min or mean_minus_var")
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
    w = np.array([weights[name] for name in names])[:, None] * present  # (S, N)
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

    total = sum(weights[nm] for nm in names)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        raw = _combine(v[:, :, None], w[:, :, None], method, lam, total)[:, 0]
        drw = _combine(x, w[:, :, None], method, lam, total)
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


def _combine(x: np.ndarray, w: np.ndarray, method: str, lam: float, total: float) -> np.ndarray:
    """Combine (S, N, K) values with (S, N, 1) weights (0 where absent) into (N, K)."""
    present = w > 0
    xz = np.where(present, x, 0.0)
    wsum = w.sum(axis=0)
    if method == "min":
        lowest: np.ndarray = np.where(present, x, np.inf).min(axis=0)
        return lowest
    if method == "mean_minus_var":
        mean = (w * xz).sum(axis=0) / wsum
        var = (w * (xz - mean) ** 2).sum(axis=0) / wsum
        penalized: np.ndarray = mean - lam * var
        return penalized
    # weighted_sum, rescaled so that missing sources' weight goes to the others
    summed: np.ndarray = (w * xz).sum(axis=0) * (total / wsum)
    return summed
