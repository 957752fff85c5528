"""``rewardplug tune``: which ``discretize:`` settings to use, chosen on labelled data.

The stack's sources score the data once. The groups are split at random (seeded) into tuning
groups and held-out groups (``holdout``: the held-out share, 0.5 by default). Every candidate
setting is applied to the same scores -- ``confidence``; ``rule: equivalent`` with a few margins
on the scores' own scale; and, when a source gives one number per response, a few
``noise: {std}`` levels for it (applied to the stored scores before the source's ``transform:``
list, seeded per sample, as the stack does) -- and measured with the paper's metrics on the
tuning groups, with bootstrap CIs over groups. The objective picks one:

* ``sp_at_max_da_loss`` (default): the highest specificity whose discriminative ability is at
  most ``max_da_loss`` below the raw reward's (ties: higher accuracy);
* ``accuracy``: the highest accuracy (ties: higher SP, then higher confidence). Accuracy weighs
  DA and SP by how many pairs have different or equal gold, so on data where most pairs have
  equal gold it is mostly SP and picks settings that tie nearly everything.

Numbers measured on the groups a setting was chosen on are optimistic (the best of ~90
candidates is partly the luckiest); the chosen setting is therefore measured again on the
held-out groups, which played no part in the choice, and those are the numbers to trust.
``holdout=0`` chooses and measures on every group (in-sample, as before).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from rewardplug.evaluation import DEFAULT_SWEEP, gold_values, score_all, tier_stats
from rewardplug.metrics import evaluate
from rewardplug.stack import Stack
from rewardplug.types import Sample, Score

__all__ = ["OBJECTIVES", "WIDE_CI", "chosen_yaml", "shortlist", "split_groups", "tune"]

OBJECTIVES = ("sp_at_max_da_loss", "accuracy")
#: a held-out 95 % bootstrap CI wider than this (DA, SP or accuracy) is too wide to trust
WIDE_CI = 0.2
METRIC_KEYS = ("discriminative_ability", "specificity", "accuracy")
MARGIN_FRACTIONS = (0.02, 0.05, 0.1)  # of the raw scores' range
NOISE_FRACTIONS = (0.02, 0.05, 0.1)  # of the one-draw sources' score range


def _one_draw_sources(stack: Stack, scores: dict[str, list[Score]]) -> list[str]:
    """Weighted sources without their own noise whose every ok score has a single draw."""
    out = []
    for name, values in scores.items():
        ok = [s for s in values if s.ok]
        weighted = stack.weights.get(name, 0) > 0 and name not in stack.noise
        if ok and weighted and all(len(s.draws) == 1 for s in ok):
            out.append(name)
    return out


def _span(values: np.ndarray) -> float:
    finite = values[np.isfinite(values)]
    return float(finite.max() - finite.min()) if finite.size else 0.0


def _round(x: float) -> float:
    return float(f"{x:.2g}")


def split_groups(groups: np.ndarray, holdout: float, seed: int = 0) -> np.ndarray:
    """Per sample, True where its group is held out: ``round(holdout * n_groups)`` groups (at
    least one, and one left to tune on), drawn with ``seed`` from the groups in sorted order, so
    the split depends on the groups and the seed, not on the order of the rows."""
    if not 0.0 <= holdout < 1.0:
        raise ValueError(f"holdout {holdout}: give the held-out share of the groups, in [0, 1)")
    labels = sorted(set(groups.tolist()), key=lambda g: (type(g).__name__, str(g)))
    if holdout == 0.0:
        return np.zeros(len(groups), dtype=bool)
    if len(labels) < 2:
        raise ValueError(
            f"a held-out split needs at least 2 groups, the data has {len(labels)}: label more "
            "groups, or pass --holdout 0 to choose and measure on the same groups (in-sample)"
        )
    n_held = min(max(round(holdout * len(labels)), 1), len(labels) - 1)
    perm = np.random.default_rng(seed).permutation(len(labels))
    held = {labels[i] for i in perm[:n_held]}
    return np.array([g in held for g in groups.tolist()], dtype=bool)


def tune(
    stack: Stack,
    samples: Sequence[Sample],
    gold_field: str,
    *,
    objective: str = "sp_at_max_da_loss",
    max_da_loss: float = 0.05,
    n_boot: int = 200,
    batch_size: int = 256,
    on_progress: Callable[[int, int], None] | None = None,
    holdout: float = 0.5,
    seed: int = 0,
    scores: dict[str, list[Score]] | None = None,
) -> dict[str, Any]:
    """Score once, measure every candidate setting on the tuning groups, choose one, and measure
    it on the held-out groups (see module docstring). ``scores``: the per-source scores of
    ``samples`` from an earlier ``score_all(stack, samples, transform=False)``, to tune again
    (another objective or split) without scoring again."""
    if objective not in OBJECTIVES:
        raise ValueError(f"objective {objective!r}: use one of {', '.join(OBJECTIVES)}")
    gold = gold_values(samples, gold_field)
    if np.isnan(gold).all():
        raise ValueError(f"no sample has a numeric or boolean gold field {gold_field!r}")
    groups = np.array([s.group for s in samples], dtype=object)
    held = split_groups(groups, holdout, seed)
    tuning = ~held

    def measure(reward: np.ndarray, part: np.ndarray) -> dict[str, Any]:
        keep = part & ~np.isnan(gold)
        return evaluate(np.where(keep, reward, np.nan), gold, groups, n_boot=n_boot)

    # Candidate noise goes in where a stack adds declared noise: before the source's transforms
    # (its std is on the source's own scale), so score untransformed and transform per level.
    untransformed = (
        scores
        if scores is not None
        else score_all(stack, samples, batch_size, on_progress, transform=False)
    )
    transformed = {n: stack.transform_scores(n, samples, v) for n, v in untransformed.items()}
    base = stack.combine(samples, transformed)
    raw_metrics = measure(base.raw, tuning)

    one_draw = _one_draw_sources(stack, untransformed)
    noise_levels: list[float | None] = [None]
    if one_draw:
        span = max(
            _span(np.array([s.value if s.ok else np.nan for s in untransformed[n]], dtype=float))
            for n in one_draw
        )
        noise_levels += [_round(f * span) for f in NOISE_FRACTIONS if f * span > 0]

    def combined_at(std: float | None) -> Any:
        noisy = transformed
        if std is not None:
            noisy = {
                n: stack.transform_scores(n, samples, stack.noisy_scores(n, samples, v, std))
                if n in one_draw
                else transformed[n]
                for n, v in untransformed.items()
            }
        return stack.combine(samples, noisy)

    tuning_groups = set(groups[tuning].tolist())
    current = stack.config.discretize
    rows: list[dict[str, Any]] = []
    for std in noise_levels:
        combined = combined_at(std)
        span = _span(combined.raw)
        settings: list[dict[str, Any]] = [
            {"rule": "different", "margin": current.margin, "confidence": c} for c in DEFAULT_SWEEP
        ]
        settings += [
            {"rule": "equivalent", "margin": _round(f * span), "confidence": c}
            for f in MARGIN_FRACTIONS
            if f * span > 0
            for c in (0.6, 0.8, 0.9, 0.95)
        ]
        for setting in settings:
            result = stack.discretize(samples, combined, **setting)
            rows.append(
                {**setting, "noise_std": std, **_row(measure(result.reward, tuning), result.n_tiers,
                                                     tuning_groups)}
            )  # fmt: skip
    chosen = _choose(rows, objective, max_da_loss, raw_metrics["discriminative_ability"])
    setting = {k: chosen[k] for k in ("rule", "margin", "confidence")}
    split = {
        "holdout": holdout,
        "seed": seed,
        "tuning_groups": len(tuning_groups),
        "held_out_groups": len(set(groups[held].tolist())),
        "tuning_samples": int(tuning.sum()),
        "held_out_samples": int(held.sum()),
    }
    held_out = None
    if held.any():
        result = stack.discretize(samples, combined_at(chosen["noise_std"]), **setting)
        raw_held = measure(base.raw, held)
        held_out = {
            "groups": split["held_out_groups"],
            "samples": split["held_out_samples"],
            "tuning_groups": split["tuning_groups"],
            "tuning_samples": split["tuning_samples"],
            "raw": {k: raw_held[k] for k in METRIC_KEYS},
            "raw_ci": raw_held.get("ci", {}),
            "chosen": _row(
                measure(result.reward, held), result.n_tiers, set(groups[held].tolist())
            ),
        }
        held_out["wide_ci"] = wide_cis(held_out["chosen"]["ci"])
    return {
        "gold_field": gold_field,
        "objective": objective,
        "max_da_loss": max_da_loss,
        "split": split,
        "raw": {k: raw_metrics[k] for k in METRIC_KEYS},
        "raw_ci": raw_metrics.get("ci", {}),
        "one_draw_sources": one_draw,
        "rows": rows,
        "chosen": chosen,
        "held_out": held_out,
        "wide_ci_threshold": WIDE_CI,
        "yaml": chosen_yaml(stack, chosen, one_draw),
    }


def _row(m: dict[str, Any], n_tiers: dict[Any, int], part: set[Any]) -> dict[str, Any]:
    """The metrics of one setting on one part of the groups, and its tiers there."""
    tiers = tier_stats({g: n for g, n in n_tiers.items() if g in part})["n_tiers_mean"]
    return {**{k: m[k] for k in METRIC_KEYS}, "ci": m.get("ci", {}), "n_tiers_mean": tiers}


def wide_cis(ci: dict[str, Any]) -> list[str]:
    """The metrics whose 95 % bootstrap CI is wider than :data:`WIDE_CI`."""
    return [k for k in METRIC_KEYS if ci.get(k) and ci[k][1] - ci[k][0] > WIDE_CI]


def _num(x: float | None) -> float:
    return -1.0 if x is None else float(x)


def _choose(
    rows: list[dict[str, Any]], objective: str, max_da_loss: float, raw_da: float | None
) -> dict[str, Any]:
    if objective == "accuracy":
        return max(
            rows, key=lambda r: (_num(r["accuracy"]), _num(r["specificity"]), r["confidence"])
        )
    floor = (raw_da or 0.0) - max_da_loss
    allowed = [r for r in rows if _num(r["discriminative_ability"]) >= floor - 1e-12]
    if not allowed:  # nothing keeps DA within the loss: the least loss
        return max(rows, key=lambda r: (_num(r["discriminative_ability"]), _num(r["accuracy"])))
    return max(allowed, key=lambda r: (_num(r["specificity"]), _num(r["accuracy"])))


def shortlist(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The rows worth reading: the best of each (noise level, rule) family under the report's
    objective, in sweep order (the chosen row is always one of them)."""
    families: dict[tuple[Any, str], list[dict[str, Any]]] = {}
    for row in report["rows"]:
        families.setdefault((row["noise_std"], row["rule"]), []).append(row)
    raw_da = report["raw"]["discriminative_ability"]
    best = [
        _choose(rows, report["objective"], report["max_da_loss"], raw_da)
        for rows in families.values()
    ]
    if not any(row is report["chosen"] for row in best):
        best.append(report["chosen"])
    order = {id(row): i for i, row in enumerate(report["rows"])}
    return sorted(best, key=lambda row: order.get(id(row), len(order)))


def chosen_yaml(stack: Stack, chosen: dict[str, Any], one_draw: list[str]) -> str:
    """The chosen settings as the YAML to paste into the stack."""
    d = stack.config.discretize
    lines = [
        "discretize:",
        "  enabled: true",
        f"  confidence: {chosen['confidence']}",
        f"  assign: {d.assign}",
        f"  method: {d.method}",
        f"  rule: {chosen['rule']}",
        f"  margin: {chosen['margin']}",
    ]
    if chosen.get("noise_std") is not None:
        lines.append("# and, under each of these sources:")
        for name in one_draw:
            lines.append(f"#   - name: {name}")
            lines.append(f"#     noise: {{std: {chosen['noise_std']}}}")
    return "\n".join(lines)
