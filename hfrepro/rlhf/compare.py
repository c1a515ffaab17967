"""The results of one RLHF run folder: one comparison row per policy, the ladder's table, the curves, the summary.

    runs/rlhf/
        config.yaml, metrics.json        the recipe's arguments; the summary written here (`summarize`)
        sft/  reward/  reinforce/ ...    one run folder per step (each the model's Hub repository)
        comparison.md / .json            one row per policy: reward gain, KL, win-rate, exact match, echo rate, time
        ladder.md / .json                REINFORCE -> RLOO -> A2C -> PPO: variance of the gradient, stability
        curves.png                       per update: reward, exact match, KL (with its bound), gradient variance
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path

from hfrepro.fsutil import atomic_write_json, atomic_write_text, read_json
from hfrepro.report import md_table, pyplot, save_figure
from hfrepro.rlhf.online import ALGOS, LADDER
from hfrepro.runtime import read_log

KL_BOUND = 2.0  # nats per response: the bound the RLHF claims hold every logged update to (drawn on the curves)
CURVE_KEYS = {a: ("reward", "kl") for a in LADDER} | {"grpo": ("reward", "kl"), "dpo": ("rewards/margins", None)}


def _read(path: Path) -> dict:
    return {k: v for k, v in read_json(path).items() if k != "key"} if path.is_file() else {}


def comparison_rows(out: Path) -> list[dict]:
    """The SFT policy, then every algorithm evaluated in this run folder."""
    base = _read(out / "sft" / "eval.json")
    rows = [row("sft (reference)", base, {}, base)]
    for algo in ALGOS:
        if (out / algo / "eval.json").is_file():
            rows.append(row(algo, _read(out / algo / "eval.json"), _read(out / algo / "metrics.json"), base))
    return rows


def row(name: str, ev: dict, m: dict, base: dict) -> dict:
    em, em0 = ev.get("exact_match_sampled"), base.get("exact_match_sampled")
    return {
        "policy": name,
        "reward (held-out)": ev.get("reward"),
        "reward gain": ev.get("reward_gain", 0.0 if name.startswith("sft") else None),
        "win-rate vs SFT": ev.get("win_rate"),
        "KL to SFT": ev.get("kl"),
        "exact match": em,
        "EM change": (em - em0) if em is not None and em0 is not None else None,
        "EM greedy": ev.get("exact_match"),
        "echo rate": ev.get("echo_rate_sampled"),
        "tokens/answer": ev.get("sampled_tokens"),
        "no-EOS rate": ev.get("no_eos_rate"),
        "train CPU s": m.get("train_cpu_seconds"),  # steadier than wall time on a shared machine
    }


def ladder_rows(out: Path) -> list[dict]:
    """One row per rung that ran: its rollouts (reward, exact match, KL) over the last third of its updates, and
    the seed's claims - the variance of the gradient estimate (median over updates), how far each update moved
    the policy (approx. KL between the sampling and the updated policy) and PPO's clipping."""
    rows = []
    for algo in LADDER:
        log = read_log(out / algo / "log.jsonl")
        if not log:
            continue
        tail = log[-max(1, len(log) // 3):]
        avg = lambda k, rs=tail: _mean([r.get(k) for r in rs])  # noqa: E731
        ev = _read(out / algo / "eval.json")
        rows.append({"algo": algo, "updates": len(log), "reward (rollouts, last third)": avg("reward"),
                     "exact match (rollouts, last third)": avg("exact_match"),
                     "exact match (held-out)": ev.get("exact_match_sampled"),
                     "KL (last third)": avg("kl"), "max KL": max(r["kl"] for r in log),
                     "gradient variance (median)": _median([r.get("grad_var") for r in log]),
                     "noise/signal (median)": _median([r.get("grad_noise_ratio") for r in log]),
                     "approx. KL per update (max)": max((r.get("approxkl") or 0.0) for r in log),
                     "clip fraction": avg("clipfrac", log)})
    return rows


def _mean(xs):
    xs = [x for x in xs if x is not None]
    return sum(xs) / len(xs) if xs else None


def _median(xs):
    xs = [x for x in xs if x is not None and math.isfinite(x)]
    return statistics.median(xs) if xs else None


def smooth(ys: list[float], alpha: float = 0.5) -> list[float]:
    """Exponential moving average (the curves' thick line; the raw points stay visible)."""
    out, m = [], None
    for y in ys:
        m = y if m is None else alpha * m + (1 - alpha) * y
        out.append(m)
    return out


# The line under curves.png in Markdown (REPORT.md): what to look at.
CURVES_CAPTION = ("Look at: the reward (left) rising; exact match (second), which no model judged, rising with it "
                  "or not; the KL (third) under the red bound; in the ladder, the gradient variance (right) of "
                  "REINFORCE against RLOO's baseline and the critic of A2C and PPO (dots: each update, lines: "
                  "smoothed).")


def plot_curves(out: Path) -> Path | None:
    logs = {a: read_log(out / a / "log.jsonl") for a in CURVE_KEYS}
    logs = {a: lg for a, lg in logs.items() if lg}
    if not logs:
        return None
    plt = pyplot()
    fig, axes = plt.subplots(1, 4, figsize=(17, 3.8))
    panels = [("reward", "reward-model score (rollouts)"), ("exact_match", "exact match (rollouts, gold answers)"),
              ("kl", "KL to the SFT policy (nats/answer)"), ("grad_var", "variance of the gradient estimate")]
    for ax, (key, title) in zip(axes, panels):
        for i, (algo, log) in enumerate(logs.items()):
            k = "rewards/margins" if (algo == "dpo" and key == "reward") else key
            pts = [(r["step"], r[k]) for r in log if r.get(k) is not None]
            if not pts:
                continue
            x, y = zip(*pts)
            color = f"C{i}"
            ax.plot(x, y, ".", color=color, alpha=0.35)
            ax.plot(x, smooth(list(y)), "-", color=color, label=algo if algo != "dpo" else "dpo (margin)")
        if key == "kl":
            ax.axhline(KL_BOUND, color="red", ls="--", lw=1, label=f"bound {KL_BOUND:g}")
        if key == "grad_var":
            ax.set_yscale("log")
        ax.set(title=title, xlabel="update")
        ax.legend(fontsize=7)
    fig.suptitle("Look at: whether RLOO's baseline and A2C's and PPO's critic put the gradient variance below "
                 "REINFORCE's; reward and exact match rising together; KL under the red bound (dots: each update, "
                 "lines: smoothed)", fontsize=9)
    fig.tight_layout()
    return save_figure(fig, out / "curves.png")


def summarize(out: Path, world_size: int) -> dict:
    """comparison.md/.json, ladder.md/.json and curves.png of the run folder, and its metrics.json: the SFT and
    reward-model numbers, one comparison row per policy, one ladder row per rung. Main process only."""
    rows, ladder = comparison_rows(out), ladder_rows(out)
    atomic_write_json(out / "comparison.json", rows)
    atomic_write_text(out / "comparison.md", md_table(rows))
    atomic_write_json(out / "ladder.json", ladder)
    atomic_write_text(out / "ladder.md", md_table(ladder) if ladder else "")
    plot = plot_curves(out)
    sft, rm = _read(out / "sft" / "metrics.json"), _read(out / "reward" / "metrics.json")
    summary = {"world_size": world_size, **{k: v for k, v in sft.items() if k.startswith("sft_")},
               **{k: v for k, v in rm.items() if k.startswith("rm_")},
               "comparison": rows, "ladder": ladder, "curves_png": str(plot) if plot else None}
    atomic_write_json(out / "metrics.json", summary)
    return summary
