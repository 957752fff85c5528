"""The demo's PNG: per problem, every answer's raw combined score and the reward its tier got.

One panel per problem, stacked, all on one shared x-axis (the reward scale), so panels compare
at a glance. Each answer is a row: a dot at its raw score with a bar of +-1 std of its draws,
coloured by its gold label; its name is the row's tick label on the left, so a label never sits
on a bar. Each tier is a shaded band of rows with a black stroke at the reward all its members
get, and the tier's number and reward are written in the right margin.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rewardplug.types import Reward

__all__ = ["plot_tiers", "tier_figure"]

_GOLD_COLOURS = {2: "tab:green", 1: "tab:orange", 0: "tab:red"}


def _groups(batch: Sequence[Any]) -> dict[str, list[int]]:
    groups: dict[str, list[int]] = {}
    for i, sample in enumerate(batch):
        groups.setdefault(sample.group, []).append(i)
    return groups


def plot_tiers(batch: Sequence[Any], rewards: Sequence[Reward], path: Path) -> None:
    """Write the PNG (see the module docstring) to ``path``."""
    import matplotlib.pyplot as plt

    fig = tier_figure(batch, rewards)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def tier_figure(batch: Sequence[Any], rewards: Sequence[Reward]) -> Any:
    """The figure of :func:`plot_tiers` (a matplotlib ``Figure``; the caller closes it)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = _groups(batch)
    rows = {
        g: sorted(
            (i for i in members if rewards[i].raw is not None and rewards[i].tier is not None),
            key=lambda i: (rewards[i].tier, -(rewards[i].raw or 0.0)),
        )
        for g, members in groups.items()
    }
    heights = [max(1, len(r)) for r in rows.values()]
    fig, axes = plt.subplots(
        len(groups),
        1,
        sharex=True,
        squeeze=False,
        figsize=(9, 1.2 + 0.34 * sum(heights) + 0.45 * len(groups)),
        gridspec_kw={"height_ratios": heights},
    )
    for ax, (group, order) in zip(axes[:, 0], rows.items(), strict=True):
        tiers: dict[int, list[int]] = {}
        for y, i in enumerate(order):
            tiers.setdefault(rewards[i].tier or 0, []).append(y)
        for t, ys in tiers.items():
            low, high = min(ys) - 0.5, max(ys) + 0.5
            if t % 2 == 0:
                ax.axhspan(low, high, color="0.93", zorder=0)
            reward = rewards[order[ys[0]]].reward
            if reward is not None:
                ax.vlines(reward, low + 0.08, high - 0.08, color="black", linewidth=2.2, zorder=2)
                ax.text(
                    1.01,
                    (min(ys) + max(ys)) / 2,
                    f"tier {t}: {reward:.2f}",
                    transform=ax.get_yaxis_transform(),
                    va="center",
                    fontsize=7,
                )
        for y, i in enumerate(order):
            gold = batch[i].metadata.get("gold")
            colour = _GOLD_COLOURS.get(gold, "tab:blue") if isinstance(gold, int) else "tab:blue"
            r = rewards[i]
            ax.errorbar(r.raw, y, xerr=r.std or 0.0, fmt="o", color=colour, capsize=3, zorder=3)
        labels = [str(batch[i].metadata.get("candidate", batch[i].id))[:34] for i in order]
        ax.set_yticks(range(len(order)), labels=labels, fontsize=7)
        ax.set_ylim(len(order) - 0.5, -0.5)
        ax.set_title(group, fontsize=9, loc="left")
    axes[-1, 0].set_xlabel(
        "combined score: dot = raw score, bar = ±1 std of its draws, black stroke = the tier's reward"
    )
    fig.suptitle(
        "rewardplug demo: green = correct, orange = subtly wrong, red = hack / no code", fontsize=9
    )
    fig.tight_layout()
    return fig
