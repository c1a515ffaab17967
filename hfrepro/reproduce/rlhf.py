"""Stage 6 of `hfrepro reproduce`: recipes/rlhf.py (SFT -> reward model -> PPO on the one-word-answer task) at
the budget's config, with two claims:

- `rm-ranks-pairs`: the reward model ranks held-out preference pairs well (pairwise accuracy >= 0.75);
- `ppo-reward-kl`:  PPO raises the held-out reward (gain > 2 standard errors over the SFT policy) while the KL
  to the SFT policy stays under 2 nats per response.

The exact-match accuracy (the independent metric) is reported whichever way it moves. At the default budget
(recipes/configs/rlhf/default.yaml: 10 PPO updates, a 16-block reward model on 192 pairs, 48 held-out prompts)
both held on a quiet 2-core machine (298 s); an earlier 140-s plan (8-block reward model, 6 updates) left both
NOT REPRODUCED. `tiny` is as small as the pipeline allows (its verdicts are noise); `full` is for a GPU machine.
"""

from __future__ import annotations

import json
from pathlib import Path

from hfrepro.claims import Claim, StageContext, StageResult
from hfrepro.fsutil import read_json
from hfrepro.report import md_table
from hfrepro.reproduce.plan import RecipeRun
from hfrepro.runtime import read_log

CLAIMS = [
    Claim("rm-ranks-pairs", "The reward model ranks held-out preference pairs well"),
    Claim("ppo-reward-kl", "PPO raises reward with bounded KL"),
]
RUNS = [RecipeRun("rlhf")]

RM_THRESHOLD = 0.75  # held-out pairwise accuracy
KL_BOUND = 2.0       # nats per response


def _eval(path: Path) -> dict:
    return {k: v for k, v in read_json(path).items() if k != "key"}


def section(ctx: StageContext) -> StageResult:
    out = ctx.run_dir("rlhf")
    s = read_json(out / "metrics.json")
    sft_ev = _eval(out / "sft" / "eval.json")
    algo = "ppo" if (out / "ppo" / "eval.json").is_file() else s["comparison"][-1]["policy"]
    ev = _eval(out / algo / "eval.json")
    rewards = [r["reward"] for r in read_log(out / algo / "log.jsonl") if "reward" in r]
    rm_ev, rm_held = _rm_claim(s)
    ppo_ev, ppo_held = _ppo_claim(sft_ev, ev, rewards)
    em0, em1 = sft_ev.get("exact_match"), ev.get("exact_match")
    samples = _examples(out, algo, 6)
    md = [
        f"SFT (LoRA) on {s.get('sft_examples')} demonstrations -> reward model -> {algo.upper()} on "
        f"{len(rewards)} updates, on the one-word-answer task built from questions-words "
        f"(data_cards/qw-prefs.md); budget `{ctx.budget}`: reward model = first {s.get('rm_layers')} of 30 blocks "
        f"of the SFT model; evaluation on {ev.get('prompts')} held-out prompts.",
        "",
        md_table(s["comparison"]),
        f"Reward model: {rm_ev}.",
        "",
        f"![reward and KL per update]({ctx.rel(out / 'curves.png')})",
        "",
        "Held-out answers (greedy):",
        "",
        md_table(samples) if samples else "",
        f"Exact match is checked against the gold answers without the reward model: {em0:.3f} (SFT) -> {em1:.3f} "
        f"({algo.upper()}). Reward-hacking signs: tokens per answer {sft_ev['greedy_tokens']:.2f} -> "
        f"{ev['greedy_tokens']:.2f}, repeat rate {sft_ev['repeat_rate']:.2f} -> {ev['repeat_rate']:.2f}, "
        f"no-EOS rate {sft_ev['no_eos_rate']:.2f} -> {ev['no_eos_rate']:.2f}.",
    ]
    metrics = {k: v for k, v in s.items() if k != "comparison"}
    metrics["ppo_eval"], metrics["sft_eval"] = ev, sft_ev
    return StageResult(markdown="\n".join(md), metrics=metrics,
                       claims={"rm-ranks-pairs": (rm_ev, rm_held), "ppo-reward-kl": (ppo_ev, ppo_held)})


def _rm_claim(s: dict) -> tuple[str, bool]:
    acc, n_pairs = s["rm_test_accuracy"], s["rm_test_pairs"]
    by = s.get("rm_test_accuracy_by_kind") or {}
    evidence = (f"held-out pairwise accuracy {acc:.3f} on {n_pairs} pairs (threshold {RM_THRESHOLD}; "
                + ", ".join(f"{k} {v:.2f}" for k, v in by.items()) + ")")
    return evidence, acc >= RM_THRESHOLD


def _ppo_claim(sft_ev: dict, ev: dict, rewards: list[float]) -> tuple[str, bool | None]:
    gain, se, kl = ev.get("reward_gain"), ev.get("reward_gain_se"), ev.get("kl")
    k = max(1, len(rewards) // 3)
    curve = (sum(rewards[:k]) / k, sum(rewards[-k:]) / k) if rewards else (None, None)
    held = None
    if gain is not None and se is not None and kl is not None:
        held = bool(gain > 2 * se and kl <= KL_BOUND)
    if gain is None:
        return "no evaluation", held
    em0, em1 = sft_ev.get("exact_match"), ev.get("exact_match")
    return (f"held-out reward {sft_ev['reward']:.3f} -> {ev['reward']:.3f} (gain {gain:+.3f} ± {se:.3f} s.e., "
            f"needs > 2 s.e.), KL to SFT {kl:.3f} nats (bound {KL_BOUND:g}), win-rate {ev['win_rate']:.2f}; "
            f"training reward {curve[0]:.3f} -> {curve[1]:.3f} over {len(rewards)} updates; independent exact match "
            f"{em0:.3f} -> {em1:.3f}"), held


def _examples(out: Path, algo: str, n: int) -> list[dict]:
    a, b = out / "sft" / "eval_samples.jsonl", out / algo / "eval_samples.jsonl"
    if not (a.is_file() and b.is_file()):
        return []
    sa = [json.loads(x) for x in a.read_text(encoding="utf-8").splitlines() if x.strip()]
    sb = [json.loads(x) for x in b.read_text(encoding="utf-8").splitlines() if x.strip()]
    return [{"question": x["prompt"], "gold": x.get("answer"), "SFT": x["greedy"], algo.upper(): y["greedy"],
             "reward SFT": x["reward_greedy"], f"reward {algo.upper()}": y["reward_greedy"]}
            for x, y in list(zip(sa, sb))[:n]]
