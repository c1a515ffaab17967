"""The chapter's figures (PNG): refusal and over-refusal per model; follow-up corrections per condition."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from hfrepro.claims import bootstrap
from hfrepro.report import pyplot, save_figure

CAPTION_RATES = ("Look at the two groups of bars: alignment should raise the left ones (requests to decline) and "
                 "leave the right ones (benign look-alikes) near the base model's.")
CAPTION_CORRECTIONS = ("Look at the gap between the bars: how often the next answer names the right capital with "
                       "and without the user's correction.")


def _bar(ax, x, values: Sequence[int], color: str, label: str | None) -> None:
    est, lo, hi = bootstrap(values) if values else (0.0, 0.0, 0.0)
    ax.bar(x, est, width=0.25, color=color, label=label, yerr=[[est - lo], [hi - est]], capsize=3)


def rates_figure(rows: Sequence[dict], models: Sequence[str], path: str | Path) -> Path:
    """Refusal rate (decline rows) and over-refusal rate (answer rows) per model, 95% bootstrap intervals."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    colors = ("#9e9e9e", "#4c72b0", "#dd8452", "#55a868")
    for j, name in enumerate(models):
        for i, label in enumerate(("decline", "answer")):
            flags = [int(r[f"{name}_refused"]) for r in rows if r["label"] == label]
            _bar(ax, i + (j - (len(models) - 1) / 2) * 0.27, flags, colors[j % len(colors)], name if i == 0 else None)
    ax.set_xticks([0, 1], ["refusal rate\n(requests to decline)", "over-refusal rate\n(benign look-alikes)"])
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("share of held-out replies refused")
    ax.legend(frameon=False)
    ax.set_title("Refusals before and after alignment training", fontsize=10)
    return save_figure(fig, path)


def corrections_figure(flags: dict[str, Sequence[int]], path: str | Path) -> Path:
    """Share of replies naming the right capital, per condition, 95% bootstrap intervals."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.2, 3.2))
    names = list(flags)
    for i, name in enumerate(names):
        _bar(ax, i, flags[name], ("#9e9e9e", "#4c72b0", "#55a868")[i % 3], None)
    ax.set_xticks(range(len(names)), names)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("replies naming the right capital")
    ax.set_title("Follow-up corrections", fontsize=10)
    return save_figure(fig, path)
