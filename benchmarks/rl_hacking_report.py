"""Summaries, tables and plots of the RL hacking experiment (``benchmarks/rl_hacking.py``).

The pre-registered endpoints per arm -- final held-out gold and its peak-minus-final drop, mean and
95 % t-interval over seeds -- and the paired difference from the raw arm (every arm of a seed runs
in the same world: split, planted bias, noise pattern and random streams), as JSON, markdown
tables for docs/rl-experiment.md, and matplotlib (Agg) PNGs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def mean_ci(values: np.ndarray) -> tuple[float, float, float]:
    """Mean and 95 % t-interval over seeds."""
    from scipy import stats

    v = np.asarray(values, dtype=float)
    mean = float(v.mean())
    if len(v) < 2:
        return mean, mean, mean
    half = float(stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v)))
    return mean, mean - half, mean + half


def summarize(curves: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The pre-registered endpoints per arm (final held-out gold, peak-minus-final drop) and the
    paired difference from the raw arm (same seeds, same worlds)."""
    out: dict[str, dict[str, Any]] = {}
    raw_final = np.asarray(curves["raw"].gold[-1]) if "raw" in curves else None
    for name, c in curves.items():
        gold = np.stack(c.gold, axis=1)  # (S, T)
        final, lo, hi = mean_ci(gold[:, -1])
        drop, dlo, dhi = mean_ci(gold.max(axis=1) - gold[:, -1])
        row: dict[str, Any] = {
            "heldout_gold_final": round(final, 4),
            "heldout_gold_ci": [round(lo, 4), round(hi, 4)],
            "peak_minus_final": round(drop, 4),
            "peak_minus_final_ci": [round(dlo, 4), round(dhi, 4)],
            "proxy_final": round(float(np.mean(c.proxy[-1])), 4),
            "gap_final": round(float(np.mean(c.gap[-1])), 4),
            "bias_weight_final": round(float(np.mean(c.bias_weight[-1])), 4),
            "kl_final": round(float(np.mean(c.kl[-1])), 4),
        }
        if raw_final is not None:
            d, d_lo, d_hi = mean_ci(gold[:, -1] - raw_final)
            row["minus_raw"] = round(d, 4)
            row["minus_raw_ci"] = [round(d_lo, 4), round(d_hi, 4)]
        if name.startswith("discretized"):  # paired against each draw-free control
            partners = {
                "random_merge": name.replace("discretized", "random_merge"),
                "gap_merge": name.replace("discretized", "gap_merge"),
                "dr_grpo": "dr_grpo",
            }
            for key, partner in partners.items():
                if partner in curves:
                    d, d_lo, d_hi = mean_ci(gold[:, -1] - np.asarray(curves[partner].gold[-1]))
                    row[f"minus_{key}"] = round(d, 4)
                    row[f"minus_{key}_ci"] = [round(d_lo, 4), round(d_hi, 4)]
        if c.tiers:
            row["tiers_per_group"] = round(float(np.mean(c.tiers)), 3)
            row["one_tier_share"] = round(float(np.mean(c.flat)), 3)
        out[name] = row
    return out


def curves_json(curves: dict[str, Any]) -> dict[str, Any]:
    """Per arm, the seed-mean and 95 % CI of each curve (for plots)."""
    out: dict[str, Any] = {}
    for name, c in curves.items():
        entry: dict[str, Any] = {"steps": c.steps}
        for key in ("gold", "proxy", "gap", "kl", "bias_weight"):
            stats = [mean_ci(v) for v in getattr(c, key)]
            entry[key] = [[round(x, 4) for x in s] for s in stats]
        if "raw" in curves:  # the paired difference over steps (same seeds, same worlds)
            diffs = [mean_ci(a - r) for a, r in zip(c.gold, curves["raw"].gold, strict=True)]
            entry["gold_minus_raw"] = [[round(x, 4) for x in s] for s in diffs]
        out[name] = entry
    return out


def gold_at_kl(entry: dict[str, Any], kl: float) -> float:
    """The seed-mean held-out gold where the seed-mean KL first reaches ``kl`` (interpolated);
    NaN when the arm never gets that far from the initial policy."""
    kls = np.array([s[0] for s in entry["kl"]])
    gold = np.array([s[0] for s in entry["gold"]])
    if kls[-1] < kl:
        return float("nan")
    i = int(np.argmax(kls >= kl))
    if i == 0:
        return float(gold[0])
    f = (kl - kls[i - 1]) / (kls[i] - kls[i - 1])
    return float(gold[i - 1] + f * (gold[i] - gold[i - 1]))


def _ci(row: dict[str, Any], key: str, sign: bool = False) -> str:
    lo, hi = row["heldout_gold_ci" if key == "heldout_gold_final" else f"{key}_ci"]
    fmt = "{:+.2f}" if sign else "{:.2f}"
    return f"{fmt.format(row[key])} [{fmt.format(lo)}, {fmt.format(hi)}]"


SPREAD_LABELS = {
    "calibrated": "",
    "noise_only": ", spread = noise only",
    "informative": ", spread = informative",
}


def cell_label(cell: dict[str, Any]) -> str:
    extra = SPREAD_LABELS[cell["spread"]]
    return f"β {cell['beta']:g}, σ {cell['sigma']:g}, {cell['regime']}{extra}"


def upgrade(cells: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Results written before the Dr. GRPO arm had its name (``raw_no_std``) read as new ones."""
    for r in cells:
        for part in ("arms", "curve_stats"):
            if part in r and "raw_no_std" in r[part]:
                r[part] = {("dr_grpo" if k == "raw_no_std" else k): v for k, v in r[part].items()}
    return cells


def controls_table(results: list[dict[str, Any]], hp: Any) -> str:
    """Per cell and discretized arm: minus raw, and minus each draw-free control (paired)."""
    keys = ("minus_raw", "minus_gap_merge", "minus_dr_grpo", "minus_random_merge")
    lines = [
        f"<!-- benchmarks/rl_hacking.py, world seed {hp.seed}: {hp.seeds} seeds, {hp.steps} "
        "steps -->",
        "| cell | arm | − raw | − gap merge | − Dr. GRPO | − random merge | tiers / group |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        for name, row in r["arms"].items():
            if not name.startswith("discretized"):
                continue
            diffs = [_ci(row, k, True) if f"{k}_ci" in row else "" for k in keys]
            tiers = f"{row['tiers_per_group']:.2f}" if "tiers_per_group" in row else ""
            lines.append(
                f"| {cell_label(r['cell'])} | {name} | " + " | ".join(diffs) + f" | {tiers} |"
            )
    return "\n".join(lines)


def primary_table(result: dict[str, Any]) -> str:
    """Every arm of one cell: the endpoints, the paired differences and the diagnostics."""
    arms, stats = result["arms"], result["curve_stats"]
    proxy_kls = [r["kl_final"] for n, r in arms.items() if n != "gold"]
    k_star = min(proxy_kls)
    lines = [
        f"| arm | final gold | peak − final | − raw (paired) | − gap merge | − Dr. GRPO "
        f"| − random merge | gold @ KL {k_star:.2f} "
        "| proxy gap | bias weight | KL | tiers / group | one-tier groups |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in arms.items():
        rm, gm, dr = (
            _ci(r, f"minus_{k}", True) if f"minus_{k}" in r else ""
            for k in ("random_merge", "gap_merge", "dr_grpo")
        )
        tiers = f"{r['tiers_per_group']:.2f}" if "tiers_per_group" in r else ""
        flat = f"{r['one_tier_share']:.0%}" if "one_tier_share" in r else ""
        lines.append(
            f"| {name} | {_ci(r, 'heldout_gold_final')} | {_ci(r, 'peak_minus_final')} "
            f"| {_ci(r, 'minus_raw', True)} | {gm} | {dr} | {rm} "
            f"| {gold_at_kl(stats[name], k_star):.2f} "
            f"| {r['gap_final']:.2f} | {r['bias_weight_final']:.2f} | {r['kl_final']:.2f} "
            f"| {tiers} | {flat} |"
        )
    return "\n".join(lines)


def _names(results: list[dict[str, Any]], pattern: tuple[str, ...]) -> list[str]:
    return [n for n in results[0]["arms"] if n in pattern]


def grid_table(results: list[dict[str, Any]], names: list[str], key: str = "minus_raw") -> str:
    """One row per cell: raw's final gold, then each named arm's paired difference ``key``."""
    lines = ["| cell | raw final gold | " + " | ".join(names) + " |"]
    lines.append("|---|---|" + "---|" * len(names))
    for r in results:
        arms = r["arms"]
        cells = [_ci(arms[n], key, True) if f"{key}_ci" in arms[n] else "" for n in names]
        raw = _ci(arms["raw"], "heldout_gold_final")
        lines.append(f"| {cell_label(r['cell'])} | {raw} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def small_grid_table(
    results: list[dict[str, Any]], names: list[str], key: str, fmt: str = "{:.2f}"
) -> str:
    """One row per cell, one number per named arm (e.g. the bias weight)."""
    lines = ["| cell | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for r in results:
        vals = [fmt.format(r["arms"][n][key]) if key in r["arms"][n] else "" for n in names]
        lines.append(f"| {cell_label(r['cell'])} | " + " | ".join(vals) + " |")
    return "\n".join(lines)


def markdown_tables(results: list[dict[str, Any]], hp: Any, confidence: str = "0.9") -> str:
    """The report's tables (docs/rl-experiment.md), from one run."""
    at = [f"{a}@{confidence}" for a in ("discretized", "equivalent", "random_merge", "gap_merge")]
    main = _names(results, ("gold", "dr_grpo", *at))
    sweep = [n for n in results[0]["arms"] if n.startswith("discretized")]
    merges = [n for n in results[0]["arms"] if n.startswith(("random_merge", "gap_merge"))]
    every = _names(results, ("gold", "raw", "dr_grpo", *at))
    parts = [
        f"<!-- produced by benchmarks/rl_hacking.py --full: {hp.seeds} seeds, {hp.steps} steps -->",
        "#### The primary cell: " + cell_label(results[0]["cell"]),
        primary_table(results[0]),
        f"#### Final held-out gold minus the raw arm's (paired, grade points), confidence {confidence}",
        grid_table(results, main),
        "#### The confidence sweep: discretized minus raw, and minus its random-merge control",
        grid_table(results, sweep),
        grid_table(results, sweep, "minus_random_merge"),
        "#### Discretized minus the draw-free controls: gap merge, and Dr. GRPO",
        grid_table(results, sweep, "minus_gap_merge"),
        grid_table(results, sweep, "minus_dr_grpo"),
        "#### Peak-minus-final drop of held-out gold (grade points)",
        small_grid_table(results, every, "peak_minus_final", "{:.3f}"),
        "#### Weight on the planted bias feature at the end",
        small_grid_table(results, every, "bias_weight_final"),
        "#### Proxy-minus-gold gap on held-out prompts at the end (z units)",
        small_grid_table(results, every, "gap_final"),
        "#### Tiers per training group, and the share of groups with one tier (no gradient)",
        small_grid_table(results, sweep + merges, "tiers_per_group"),
        small_grid_table(results, sweep + merges, "one_tier_share", "{:.0%}"),
    ]
    return "\n\n".join(parts)


# -- plots --------------------------------------------------------------------------------------

_STYLE = {
    "gold": ("#2ca02c", "-"),
    "raw": ("#d62728", "-"),
    "dr_grpo": ("#ff9896", "--"),
    "discretized": ("#1f77b4", "-"),
    "equivalent": ("#9467bd", ":"),
    "random_merge": ("#7f7f7f", "--"),
    "gap_merge": ("#8c564b", "-."),
}


def _style(name: str) -> tuple[str, str]:
    return _STYLE.get(name.split("@")[0], ("#000000", "-"))


def _plot_arms(result: dict[str, Any], confidence: str) -> list[str]:
    """The arms to draw for one cell: every unconditional arm and those at ``confidence``."""
    return [n for n in result["arms"] if "@" not in n or n.endswith(f"@{confidence}")]


def write_plots(results: list[dict[str, Any]], folder: Path, hp: Any, confidence: str = "0.9"):
    """rl_gold_vs_step.png, rl_gold_vs_kl.png, rl_bias_weight.png, rl_proxy_gap.png and
    rl_gold_minus_raw.png (the primary cell) and rl_grid.png (every cell's paired differences)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    primary = results[0]
    stats = primary["curve_stats"]
    title = cell_label(primary["cell"]) + f" -- {hp.seeds} seeds, mean and 95 % CI"
    for key, xkey, fname, ylabel in (
        ("gold", "steps", "rl_gold_vs_step.png", "held-out gold (expected gpt4_grade)"),
        ("gold", "kl", "rl_gold_vs_kl.png", "held-out gold (expected gpt4_grade)"),
        ("bias_weight", "steps", "rl_bias_weight.png", "policy weight on the planted bias"),
        ("gap", "steps", "rl_proxy_gap.png", "held-out proxy − gold (z units)"),
    ):
        fig, ax = plt.subplots(figsize=(7, 4.2), dpi=90)
        for name in _plot_arms(primary, confidence):
            color, ls = _style(name)
            e = stats[name]
            y = np.array(e[key])
            x = np.array(e["steps"]) if xkey == "steps" else np.array([s[0] for s in e["kl"]])
            ax.plot(x, y[:, 0], ls, color=color, label=name, lw=1.6)
            ax.fill_between(x, y[:, 1], y[:, 2], color=color, alpha=0.15, lw=0)
        ax.set_xlabel("step" if xkey == "steps" else "KL(π ‖ π₀) on held-out prompts")
        ax.set_ylabel(ylabel)
        ax.set_title(title, fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(folder / fname)
        plt.close(fig)
    if "gold_minus_raw" in stats.get("raw", {}):
        _difference_plot(primary, folder / "rl_gold_minus_raw.png", confidence, title, plt)
    _grid_plot(results, folder / "rl_grid.png", confidence, plt)


def _difference_plot(result: dict[str, Any], path: Path, confidence: str, title: str, plt: Any):
    """Each arm's held-out gold minus the raw arm's over steps (paired 95 % CI); the gold arm,
    an order of magnitude above, is left out to keep the scale readable."""
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=90)
    for name in _plot_arms(result, confidence):
        if name in ("gold", "raw"):
            continue
        color, ls = _style(name)
        e = result["curve_stats"][name]
        y, x = np.array(e["gold_minus_raw"]), np.array(e["steps"])
        ax.plot(x, y[:, 0], ls, color=color, label=name, lw=1.6)
        ax.fill_between(x, y[:, 1], y[:, 2], color=color, alpha=0.15, lw=0)
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xlabel("step")
    ax.set_ylabel("held-out gold minus raw's (grade points)")
    ax.set_title(title.replace("mean and 95 % CI", "paired 95 % CI"), fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _grid_plot(results: list[dict[str, Any]], path: Path, confidence: str, plt: Any) -> None:
    """A forest plot: per cell, each arm's final gold minus raw's with its paired 95 % CI
    (the equivalent arms are left out: where they tie only copies of one answer they are raw)."""
    # equivalent arms left out: at these spreads they tie only copies, exactly as raw does
    names = [n for n in results[0]["arms"] if n not in ("raw", "gold") and "equivalent" not in n]
    fig, ax = plt.subplots(figsize=(8, 0.5 * len(results) + 1.6), dpi=90)
    step = 1.0 / (len(names) + 1)
    for j, name in enumerate(names):
        color, _ = _style(name)
        conf = name.split("@")[1] if "@" in name else None
        marker = {"0.75": "v", "0.9": "o", "0.97": "^"}.get(conf or "", "s")
        ys, xs, los, his = [], [], [], []
        for i, r in enumerate(results):
            row = r["arms"][name]
            ys.append(i + (j + 1) * step - 0.5)
            xs.append(row["minus_raw"])
            los.append(row["minus_raw"] - row["minus_raw_ci"][0])
            his.append(row["minus_raw_ci"][1] - row["minus_raw"])
        ax.errorbar(xs, ys, xerr=[los, his], fmt=marker, color=color, ms=4, lw=1, label=name)
    ax.axvline(0, color="black", lw=0.8)
    ax.set_yticks(range(len(results)), [cell_label(r["cell"]) for r in results], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("final held-out gold minus the raw arm's (grade points, paired 95 % CI)")
    ax.legend(fontsize=7, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=4, frameon=False)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def worlds_table(saved: list[dict[str, Any]], key: str, arm: str = "discretized") -> str:
    """One row per cell, one column per world (``rl_hacking.py --controls --world-seed N --json``
    files): ``arm``'s paired difference ``key`` (e.g. ``minus_gap_merge``)."""
    seeds = [w["hyper"]["seed"] for w in saved]
    lines = ["| cell | " + " | ".join(f"world {s}" for s in seeds) + " |"]
    lines.append("|---|" + "---|" * len(seeds))
    for i, r in enumerate(saved[0]["cells"]):
        cells = [_ci(w["cells"][i]["arms"][arm], key, True) for w in saved]
        lines.append(f"| {cell_label(r['cell'])} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Re-draw the plots and re-print the tables from a ``rl_hacking.py --full --json`` file;
    given several ``--controls`` files (one per world), the control tables across worlds."""
    import argparse
    import json
    from types import SimpleNamespace

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument(
        "json", type=Path, nargs="+", help="the file(s) written by rl_hacking.py --json"
    )
    parser.add_argument("--plots", type=Path, help="write the PNGs into this folder")
    args = parser.parse_args(argv)
    if len(args.json) > 1:
        worlds = [json.loads(f.read_text(encoding="utf-8")) for f in args.json]
        for w in worlds:
            w["cells"] = upgrade(w["cells"])
        for key, title in (
            ("minus_raw", "discretized − raw"),
            ("minus_gap_merge", "discretized − gap_merge"),
            ("minus_dr_grpo", "discretized − dr_grpo"),
            ("minus_random_merge", "discretized − random_merge"),
        ):
            print(f"#### {title} (paired, grade points)\n\n{worlds_table(worlds, key)}\n")
        return
    saved = json.loads(args.json[0].read_text(encoding="utf-8"))
    saved["cells"] = upgrade(saved["cells"])
    hp = SimpleNamespace(**saved["hyper"])
    if args.plots:
        write_plots(saved["cells"], args.plots, hp)
    print(markdown_tables(saved["cells"], hp))


if __name__ == "__main__":
    main()
