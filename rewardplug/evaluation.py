"""``rewardplug eval``: how well a stack separates better from worse responses, raw vs discretized.

The stack scores the data once; the raw (combined, continuous) reward and the discretized reward
are then measured with the paper's metrics (:mod:`rewardplug.metrics`). The SP-DA trade-off is
traced by re-discretizing the same combined draws over a sweep of ``confidence`` values -- no
source is called again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rewardplug.combine import Combined
from rewardplug.extras import PLOT, require
from rewardplug.io import group_batches
from rewardplug.metrics import evaluate
from rewardplug.stack import Stack
from rewardplug.types import Sample, Score

__all__ = [
    "DEFAULT_SWEEP",
    "evaluate_stack",
    "gold_values",
    "plot_tradeoff",
    "score_all",
    "score_combined",
]

DEFAULT_SWEEP = (0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.975, 0.99, 0.995, 0.999)


def gold_values(samples: Sequence[Sample], field: str) -> np.ndarray:
    """The gold label of each sample as a float (bools as 0/1); NaN where missing or not numeric."""
    out = np.full(len(samples), np.nan)
    for i, sample in enumerate(samples):
        value = sample.field(field)
        if isinstance(value, bool | int | float):
            out[i] = float(value)
        elif isinstance(value, str):
            try:
                out[i] = float(value)
            except ValueError:
                continue
    return out


def score_all(
    stack: Stack,
    samples: Sequence[Sample],
    batch_size: int = 256,
    on_progress: Callable[[int, int], None] | None = None,
    *,
    transform: bool = True,
) -> dict[str, list[Score]]:
    """Every source's scores for all samples (scored in batches of whole groups); with
    ``transform=False`` before the sources' ``transform:`` lists."""
    scores: dict[str, list[Any]] = {name: [None] * len(samples) for name in stack.sources}
    done = 0
    if on_progress:
        on_progress(0, len(samples))  # the bar shows before the first (slowest) batch
    for batch in group_batches(samples, batch_size):
        part = stack.score_sources([samples[i] for i in batch], transform=transform)
        for name, values in part.items():
            for i, score in zip(batch, values, strict=True):
                scores[name][i] = score
        done += len(batch)
        if on_progress:
            on_progress(done, len(samples))
    return scores


def score_combined(
    stack: Stack,
    samples: Sequence[Sample],
    batch_size: int = 256,
    on_progress: Callable[[int, int], None] | None = None,
) -> Combined:
    """Score all samples (batches of whole groups) and combine them; no discretizing."""
    return stack.combine(samples, score_all(stack, samples, batch_size, on_progress))


def evaluate_stack(
    stack: Stack,
    samples: Sequence[Sample],
    gold_field: str,
    *,
    sweep: Sequence[float] = DEFAULT_SWEEP,
    n_boot: int = 1000,
    batch_size: int = 256,
    on_progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Metrics of the raw and the discretized reward, plus the confidence sweep."""
    gold = gold_values(samples, gold_field)
    if np.isnan(gold).all():
        raise ValueError(f"no sample has a numeric or boolean gold field {gold_field!r}")
    groups = np.array([s.group for s in samples], dtype=object)
    combined = score_combined(stack, samples, batch_size, on_progress)
    raw = np.where(np.isnan(gold), np.nan, combined.raw)
    result = stack.discretize(samples, combined)
    disc = result.reward
    report: dict[str, Any] = {
        "raw": evaluate(raw, gold, groups, n_boot=n_boot),
        "discretized": evaluate(
            np.where(np.isnan(gold), np.nan, disc), gold, groups, n_boot=n_boot
        ),
        "settings": stack.config.discretize.model_dump(),
        "gold_field": gold_field,
        "abstained": int(np.isnan(combined.raw).sum()),
        "missing_gold": int(np.isnan(gold).sum()),
        **tier_stats(result.n_tiers),
    }
    sweep_points = []
    for c in sweep:
        at = stack.discretize(samples, combined, confidence=c)
        point = _point(evaluate(at.reward, gold, groups, n_boot=0))
        sweep_points.append(
            {"confidence": c, **point, "n_tiers_mean": tier_stats(at.n_tiers)["n_tiers_mean"]}
        )
    report["sweep"] = sweep_points
    return report


def tier_stats(n_tiers: dict[Any, int]) -> dict[str, Any]:
    """Tiers per group: the mean, and how many groups have 1, 2, ... tiers."""
    counts = list(n_tiers.values())
    if not counts:
        return {"n_tiers_mean": None, "n_tiers_distribution": {}}
    distribution: dict[str, int] = {}
    for n in sorted(counts):
        distribution[str(n)] = distribution.get(str(n), 0) + 1
    return {"n_tiers_mean": float(np.mean(counts)), "n_tiers_distribution": distribution}


def _point(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: metrics[k] for k in ("discriminative_ability", "specificity", "accuracy")}


def plot_tradeoff(report: dict[str, Any], path: str | Path, title: str = "") -> Path:
    """PNG: specificity against discriminative ability over the confidence sweep (the stack's
    own setting marked), and accuracy against confidence next to it.

    Points that coincide share one label (``0.5-0.8``) instead of printing over each other; a
    sweep that does not move at all (sources without uncertainty) says so on the plot.
    """
    require("a trade-off plot", PLOT)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sweep = [
        p
        for p in report["sweep"]
        if p["specificity"] is not None and p["discriminative_ability"] is not None
    ]
    fig, (ax, acc_ax) = plt.subplots(1, 2, figsize=(10, 4.5), dpi=120)
    xs = [p["discriminative_ability"] for p in sweep]
    ys = [p["specificity"] for p in sweep]
    ax.plot(xs, ys, "o-", label="discretized (confidence sweep)")
    for (x, y), label in _point_labels(sweep).items():
        ax.annotate(label, (x, y), textcoords="offset points", xytext=(5, 5), fontsize=7)
    raw = report["raw"]
    if raw["discriminative_ability"] is not None and raw["specificity"] is not None:
        ax.plot(
            [raw["discriminative_ability"]],
            [raw["specificity"]],
            "r*",
            markersize=14,
            label="raw reward",
        )
    own = report.get("discretized") or {}
    confidence = (report.get("settings") or {}).get("confidence")
    if own.get("discriminative_ability") is not None and own.get("specificity") is not None:
        ax.plot(
            [own["discriminative_ability"]],
            [own["specificity"]],
            "gD",
            markersize=9,
            label=f"this stack (confidence {confidence:g})" if confidence else "this stack",
        )
    if len({(x, y) for x, y in zip(xs, ys, strict=True)}) == 1 and sweep:
        ax.text(
            0.5,
            0.5,
            "the sweep is flat: every confidence gives the same tiers\n(scores without "
            "uncertainty? give one-draw sources noise: {std: ...})",
            transform=ax.transAxes,
            ha="center",
            va="center",
            fontsize=8,
            bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "0.7"},
        )
    ax.set_xlabel("discriminative ability")
    ax.set_ylabel("specificity")
    ax.set_xlim(-0.02, 1.02)
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left", fontsize=8)
    ax.set_title(title or "specificity vs discriminative ability", fontsize=10)

    accuracy = [(p["confidence"], p["accuracy"]) for p in sweep if p.get("accuracy") is not None]
    if accuracy:
        acc_ax.plot([c for c, _ in accuracy], [a for _, a in accuracy], "o-", label="discretized")
    if raw.get("accuracy") is not None:
        acc_ax.axhline(raw["accuracy"], color="r", linestyle="--", label="raw reward")
    if confidence is not None:
        acc_ax.axvline(confidence, color="g", alpha=0.5, label=f"this stack ({confidence:g})")
    acc_ax.set_xlabel("confidence")
    acc_ax.set_ylabel("accuracy")
    acc_ax.set_ylim(-0.02, 1.02)
    acc_ax.grid(alpha=0.3)
    acc_ax.legend(loc="lower left", fontsize=8)
    acc_ax.set_title("accuracy over the sweep", fontsize=10)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def _point_labels(sweep: list[dict[str, Any]]) -> dict[tuple[float, float], str]:
    """One label per distinct point: the confidences that land on it, as a range."""
    at: dict[tuple[float, float], list[float]] = {}
    for p in sweep:
        key = (round(p["discriminative_ability"], 3), round(p["specificity"], 3))
        at.setdefault(key, []).append(p["confidence"])
    return {key: f"{c[0]:g}" if len(c) == 1 else f"{min(c):g}-{max(c):g}" for key, c in at.items()}
