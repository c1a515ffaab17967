"""The results of one RLHF run folder: one comparison row per policy, the training curves, the summary.

    runs/rlhf/
        config.yaml, metrics.json        the recipe's arguments; the summary written here (`summarize`)
        sft/  reward/  ppo/  rloo/ ...   one run folder per step (each the model's Hub repository)
        comparison.md / .json            one row per policy: reward gain, KL, win-rate, exact match, time
        curves.png                       reward and KL per RL update
"""

from __future__ import annotations

import math
from pathlib import Path

from hfrepro.fsutil import atomic_write_json, atomic_write_text, read_json
from hfrepro.report import md_table, pyplot, save_figure
from hfrepro.rlhf.online import ALGOS
from hfrepro.runtime import read_log

CURVE_KEYS = {"ppo": ("reward", "kl"), "rloo": ("reward", "kl"), "grpo": ("reward", "kl"),
              "dpo": ("rewards/margins", None)}


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
    em, em0 = ev.get("exact_match"), base.get("exact_match")
    return {
        "policy": name,
        "reward (held-out)": ev.get("reward"),
        "reward gain": ev.get("reward_gain", 0.0 if name.startswith("sft") else None),
        "± se": ev.get("reward_gain_se"),
        "win-rate vs SFT": ev.get("win_rate"),
        "KL to SFT": ev.get("kl"),
        "exact match": em,
        "EM change": (em - em0) if em is not None and em0 is not None else None,
        "EM sampled": ev.get("exact_match_sampled"),
        "tokens/answer": ev.get("greedy_tokens"),
        "repeat rate": ev.get("repeat_rate"),
        "no-EOS rate": ev.get("no_eos_rate"),
        "train time (s)": m.get("train_seconds"),
        "train CPU s": m.get("train_cpu_seconds"),  # steadier than wall time on a shared machine
    }


def plot_curves(out: Path) -> Path | None:
    series = {}
    for algo, (rk, kk) in CURVE_KEYS.items():
        log = [r for r in read_log(out / algo / "log.jsonl") if rk in r]
        if log:
            series[algo] = ([r["step"] for r in log], [r[rk] for r in log],
                            [r.get(kk) for r in log] if kk else None)
    if not series:
        return None
    plt = pyplot()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.6))
    for algo, (x, y, k) in series.items():
        a1.plot(x, y, marker=".", label=algo if algo != "dpo" else "dpo (implicit reward margin)")
        if k and any(v is not None for v in k):
            a2.plot(x, [v if v is not None else math.nan for v in k], marker=".", label=algo)
    a1.set(title="reward per step (training rollouts)", xlabel="update", ylabel="reward-model score")
    a2.set(title="KL to the reference (SFT) policy", xlabel="update", ylabel="nats per response")
    a1.legend(fontsize=8)
    a2.legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, out / "curves.png")


def summarize(out: Path, world_size: int) -> dict:
    """comparison.md/.json and curves.png of the run folder, and its metrics.json: the SFT and reward-model
    numbers, one comparison row per policy. Main process only."""
    rows = comparison_rows(out)
    atomic_write_json(out / "comparison.json", rows)
    atomic_write_text(out / "comparison.md", md_table(rows))
    plot = plot_curves(out)
    sft, rm = _read(out / "sft" / "metrics.json"), _read(out / "reward" / "metrics.json")
    summary = {"world_size": world_size, **{k: v for k, v in sft.items() if k.startswith("sft_")},
               **{k: v for k, v in rm.items() if k.startswith("rm_")},
               "comparison": rows, "curves_png": str(plot) if plot else None}
    atomic_write_json(out / "metrics.json", summary)
    return summary
