"""Stage 6 of `hfrepro reproduce`: SFT -> reward model -> PPO on the one-word-answer task, at a size set by the
budget, with two claims:

- `rm-ranks-pairs`: the reward model ranks held-out preference pairs well (pairwise accuracy >= 0.75);
- `ppo-reward-kl`:  PPO raises the held-out reward (gain > 2 standard errors over the SFT policy) while the KL
  to the SFT policy stays under `kl_bound` nats per response.

The exact-match accuracy (the independent metric) is reported whichever way it moves.
"""

from __future__ import annotations

from hfrepro.claims import StageContext, StageResult

RM_THRESHOLD = 0.75

# Sizes per budget. Much of a small run is fixed cost: loading the 135M model 6 times and writing 4 model
# folders (~0.5 GB each). `tiny` (CI) is as small as the pipeline allows (its verdicts are noise). `default` is
# the recipe's pipeline at 10 PPO updates instead of 24 and 48 held-out prompts: 298 s wall with 2 threads on a
# quiet 2-core machine (566 CPU-s, peak 4.3 GiB), where both claims held (RM 0.798, PPO gain 2.5 s.e.); the
# earlier 140-s plan (8-block reward model, 6 updates) left both claims NOT REPRODUCED. `full` is for a GPU
# machine (about 1 hour there, dominated by the four RL runs; not run).
BUDGETS: dict[str, dict] = {
    "tiny": dict(eval_prompts=8, eval_samples=2, sft_examples=16, sft_steps=2, sft_batch_size=8, rm_pairs=32,
                 rm_batch_size=8, rm_layers=4, rm_trainable_layers=1, rl_steps=2, rl_batch_size=8, ppo_epochs=1,
                 save_steps=0, samples_per_step=2),
    "default": dict(eval_prompts=48, eval_samples=4, sft_examples=128, sft_steps=16, sft_batch_size=8,
                    rm_pairs=192, rm_batch_size=8, rm_layers=16, rm_trainable_layers=4, rl_steps=10,
                    rl_batch_size=16, ppo_epochs=2, save_steps=0, samples_per_step=4),
    "full": dict(eval_prompts=0, sft_examples=384, sft_steps=96, sft_batch_size=8, rm_pairs=0, rm_epochs=2,
                 rm_layers=0, rm_trainable_layers=0, rl_steps=200, rl_batch_size=16, save_steps=50,
                 algo="all"),
}


def reproduce(ctx: StageContext) -> StageResult:
    from hfrepro.fsutil import read_json
    from hfrepro.report import md_table
    from hfrepro.rlhf.pipeline import RLHFArguments, read_log, run_pipeline

    args = RLHFArguments(output_dir=str(ctx.dir / "run"), seed=ctx.seed, threads=ctx.threads,
                         **BUDGETS[ctx.budget])
    s = run_pipeline(args)
    out = ctx.dir / "run"
    sft_ev = read_json(out / "sft" / "eval.json")
    algo = "ppo" if (out / "ppo" / "eval.json").is_file() else args.algos()[0]
    ev = read_json(out / algo / "eval.json")
    log = read_log(out / algo / "log.jsonl")

    # claim 1: the reward model
    acc, n_pairs = s["rm_test_accuracy"], s["rm_test_pairs"]
    by = s.get("rm_test_accuracy_by_kind") or {}
    rm_ev = (f"held-out pairwise accuracy {acc:.3f} on {n_pairs} pairs (threshold {RM_THRESHOLD}; "
             + ", ".join(f"{k} {v:.2f}" for k, v in by.items()) + ")")
    rm_held = acc >= RM_THRESHOLD

    # claim 2: PPO raises reward with bounded KL
    gain, se, kl = ev.get("reward_gain"), ev.get("reward_gain_se"), ev.get("kl")
    rewards = [r["reward"] for r in log if "reward" in r]
    k = max(1, len(rewards) // 3)
    curve = (sum(rewards[:k]) / k, sum(rewards[-k:]) / k) if rewards else (None, None)
    ppo_held = None
    if gain is not None and se is not None and kl is not None:
        ppo_held = bool(gain > 2 * se and kl <= args.kl_bound)
    em0, em1 = sft_ev.get("exact_match"), ev.get("exact_match")
    ppo_ev = (f"held-out reward {sft_ev['reward']:.3f} -> {ev['reward']:.3f} (gain {gain:+.3f} ± {se:.3f} s.e., "
              f"needs > 2 s.e.), KL to SFT {kl:.3f} nats (bound {args.kl_bound:g}), win-rate {ev['win_rate']:.2f}; "
              f"training reward {curve[0]:.3f} -> {curve[1]:.3f} over {len(rewards)} updates; independent exact match "
              f"{em0:.3f} -> {em1:.3f}" if gain is not None else "no evaluation")

    rows = s["comparison"]
    samples = _examples(out, algo, 6)
    md = [
        f"SFT (LoRA) on {s.get('sft_examples')} demonstrations -> reward model -> {algo.upper()} on "
        f"{len(rewards)} updates, on the one-word-answer task built from questions-words "
        f"(data_cards/qw-prefs.md); budget `{ctx.budget}`: reward model = first {s.get('rm_layers')} of 30 blocks "
        f"of the SFT model; evaluation on {ev.get('prompts')} held-out prompts.",
        "",
        md_table(rows),
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
    metrics = {k: v for k, v in s.items() if k not in ("comparison",)}
    metrics["ppo_eval"] = {k: v for k, v in ev.items() if k != "key"}
    metrics["sft_eval"] = {k: v for k, v in sft_ev.items() if k != "key"}
    return StageResult(markdown="\n".join(md), metrics=metrics,
                       claims={"rm-ranks-pairs": (rm_ev, rm_held), "ppo-reward-kl": (ppo_ev, ppo_held)})


def _examples(out, algo: str, n: int) -> list[dict]:
    import json
    a = out / "sft" / "eval_samples.jsonl"
    b = out / algo / "eval_samples.jsonl"
    if not (a.is_file() and b.is_file()):
        return []
    sa = [json.loads(x) for x in a.read_text(encoding="utf-8").splitlines() if x.strip()]
    sb = [json.loads(x) for x in b.read_text(encoding="utf-8").splitlines() if x.strip()]
    rows = []
    for x, y in list(zip(sa, sb))[:n]:
        rows.append({"question": x["prompt"], "gold": x.get("answer"), "SFT": x["greedy"], algo.upper(): y["greedy"],
                     "reward SFT": x["reward_greedy"], f"reward {algo.upper()}": y["reward_greedy"]})
    return rows
