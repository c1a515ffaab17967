"""Chapter of `hfrepro reproduce`: reinforcement learning from first principles, on FrozenLake and CartPole.

Runs recipes/rl_basics.py at the budget's config (recipes/configs/rl_basics/<budget>.yaml). `--seed s` trains the
seeds s*n .. s*n+n-1 of every learner (n: the budget's `tabular_seeds` / `reinforce_seeds` / `cartpole_seeds`),
so the main job's seeds 0, 1, 2 never share a training run. Every claim is decided by Student's t interval over
those training seeds (docs/CLAIMS.md); the statistics and thresholds were fixed before any run of the main job
(the number of REINFORCE seeds was raised from 3 to 6 after seed 2 left the variance claim INCONCLUSIVE at 3:
see docs/rl_basics.md):

    rl-tabular-beats-random  per seed, the smaller of Q-learning's and SARSA's gains in greedy success rate over
                             a random policy (the same FrozenLake test episodes for all); mean > 0
    rl-exploration           per seed, epsilon-greedy Q-learning's greedy success rate minus that of Q-learning
                             with epsilon = 0 (exploitation only); mean > 0
    rl-baseline-variance     per seed, the mean over training snapshots of log(variance of REINFORCE's gradient
                             estimate with the baseline V(s) / without), on the same sampled episodes; the
                             geometric mean ratio < 1
"""

from __future__ import annotations

import math

from hfrepro.claims import Claim, Decision, StageContext, StageResult, decide, t_interval
from hfrepro.fsutil import read_json
from hfrepro.reproduce.plan import RecipeRun
from hfrepro.rlbasics import results

CLAIMS = [
    Claim("rl-tabular-beats-random", "Tabular Q-learning and SARSA learn FrozenLake from experience alone: their "
                                     "greedy policies beat a random policy"),
    Claim("rl-exploration", "Exploration matters: ε-greedy Q-learning beats Q-learning that only exploits (ε = 0)"),
    Claim("rl-baseline-variance", "A baseline (critic) lowers the variance of the policy-gradient estimate "
                                  "(REINFORCE is high-variance; A = R − V)"),
]
RUNS = [RecipeRun("rl_basics")]

GAIN_THRESHOLD = 0.0      # success-rate gains: > 0
VARIANCE_THRESHOLD = 1.0  # variance ratio with / without a baseline: < 1


def _seeds(n: int) -> str:
    return f"t interval over {n} training seed{'s' if n != 1 else ''}"


def tabular_claim(f: dict) -> Decision | tuple[str, None]:
    learners = f["learners"]
    if "q_learning" not in learners or "sarsa" not in learners:
        return "Q-learning or SARSA was not run (--tabular_learners)", None
    q, s, rnd = learners["q_learning"]["success"], learners["sarsa"]["success"], f["random_success"]
    gains = [min(a, b) - rnd for a, b in zip(q, s)]
    m, lo, hi = t_interval(gains)
    return decide("rl-tabular-beats-random", "min(Q-learning, SARSA) greedy success − random", m, lo, hi,
                  GAIN_THRESHOLD, uncertainty=_seeds(len(gains)),
                  evidence=f"success rate on {f['eval_episodes']:,} test episodes: Q-learning "
                           f"{', '.join(f'{x:.3f}' for x in q)}; SARSA {', '.join(f'{x:.3f}' for x in s)}; random "
                           f"{rnd:.3f}; optimal (value iteration) {f['optimal_success']:.3f}")


def exploration_claim(f: dict) -> Decision | tuple[str, None]:
    learners = f["learners"]
    if "q_learning" not in learners or "greedy" not in learners:
        return "Q-learning with or without exploration was not run (--tabular_learners)", None
    explore, exploit = learners["q_learning"]["success"], learners["greedy"]["success"]
    diffs = [a - b for a, b in zip(explore, exploit)]
    m, lo, hi = t_interval(diffs)
    return decide("rl-exploration", "ε-greedy − ε = 0 Q-learning greedy success", m, lo, hi, GAIN_THRESHOLD,
                  uncertainty=_seeds(len(diffs)),
                  evidence=f"ε-greedy {', '.join(f'{x:.3f}' for x in explore)} vs ε = 0 "
                           f"{', '.join(f'{x:.3f}' for x in exploit)} (same seeds, {f['eval_episodes']:,} test "
                           "episodes each)")


def variance_claim(c: dict) -> Decision | tuple[str, None]:
    if not c["variance"]:
        return "REINFORCE with a baseline was not run (--algorithms)", None
    per_seed = results.variance_log_ratios(c["variance"])
    logs = list(per_seed.values())
    m, lo, hi = t_interval(logs)
    snaps = len(c["variance"]) // max(1, len(per_seed))
    ratios = ", ".join(f"{math.exp(x):.2f}" for x in logs)
    return decide("rl-baseline-variance", "variance with baseline / without (geometric mean)", math.exp(m),
                  math.exp(lo) if not math.isnan(lo) else lo, math.exp(hi) if not math.isnan(hi) else hi,
                  VARIANCE_THRESHOLD, higher=False, uncertainty=_seeds(len(logs)) + " (on log ratios)",
                  evidence=f"per seed (geometric mean over {snaps} snapshots of training, the same sampled "
                           f"episodes for both estimators): {ratios}")


def claims_from(metrics: dict) -> dict:
    return {"rl-tabular-beats-random": tabular_claim(metrics["frozenlake"]),
            "rl-exploration": exploration_claim(metrics["frozenlake"]),
            "rl-baseline-variance": variance_claim(metrics["cartpole"])}


def section(ctx: StageContext) -> StageResult:
    folder = ctx.run_dir("rl_basics")
    m = read_json(folder / "metrics.json")
    f, c = m["frozenlake"], m["cartpole"]
    n_lake = max((len(v["seeds"]) for v in f["learners"].values()), default=0)
    n_pole = ", ".join(f"{results.LABELS[k]} {len(v['seeds'])}" for k, v in c["algorithms"].items())
    head = (f"Budget `{ctx.budget}`: FrozenLake {f['map']} with {n_lake} training seeds per tabular learner; "
            f"CartPole-v1 training seeds: {n_pole}; {m['cpu_seconds']:.0f} CPU-s of training and evaluation "
            f"in {m['processes']} process(es). "
            "Full run: `hfrepro rl-basics --budget full`; the recipe: `recipes/rl_basics.py`; docs: "
            "docs/rl_basics.md.")
    md = [head, "", results.markdown(m, rel=lambda p: ctx.rel(folder / p))]
    metrics = {"frozenlake": {k: v for k, v in f.items() if k != "learners"},
               "frozenlake_success": {k: v["success"] for k, v in f["learners"].items()},
               "cartpole": {k: {x: v[x] for x in ("final_return", "steps_to_solve", "steps")}
                            for k, v in c["algorithms"].items()},
               "variance_ratio_per_seed": {str(k): math.exp(v) for k, v in
                                           results.variance_log_ratios(c["variance"]).items()},
               "cpu_seconds": m["cpu_seconds"]}
    return StageResult(markdown="\n".join(md), claims=claims_from(m), metrics=metrics)
