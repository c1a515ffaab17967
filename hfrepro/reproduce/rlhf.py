"""The RLHF stage of `hfrepro reproduce`: recipes/rlhf.py (SFT -> reward model -> the RL ladder and PPO on the
one-word-answer task) at the budget's config, and its claims, each decided by the protocol (docs/CLAIMS.md):

- `rm-ranks-pairs`   the reward model's held-out pairwise accuracy > 0.8 (bootstrap over held-out pairs);
- `rm-every-kind`    its accuracy on every kind of mistake (echo included) > 0.7 (each kind its bootstrap interval);
- `ppo-reward-gain`  PPO's held-out reward minus the SFT policy's > 0 (paired bootstrap over held-out prompts);
- `ppo-exact-match`  ... with a gain in exact match against the gold answers, which no model judged, > 0 (the same
                     sampled answers, paired bootstrap);
- `ppo-kl-bound`     the KL to the SFT policy < 2 nats at every logged update and on the held-out prompts (the
                     largest upper 95% bound);
- `ppo-no-echo`      PPO does not learn to echo the question back (the reward hack this task invites): the change
                     in the share of echoed answers < +0.05 (paired bootstrap);
- `rlhf-baseline-variance`, `rlhf-critic-variance`: the seed's "REINFORCE is high-variance; a baseline and a critic
                     reduce it": log(gradient variance of REINFORCE / that of RLOO, resp. A2C) > 0, paired over the
                     updates (the same prompts at the same update), bootstrap over updates.

Fewer than 2 items behind an interval make it undefined: the claim is INCONCLUSIVE, never decided by a NaN.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from hfrepro.claims import Claim, Decision, StageContext, StageResult, bootstrap, decide, paired_bootstrap
from hfrepro.config import load_yaml
from hfrepro.fsutil import read_json
from hfrepro.report import figure, md_table
from hfrepro.reproduce.plan import RecipeRun
from hfrepro.rlhf.compare import CURVES_CAPTION
from hfrepro.runtime import read_log

CLAIMS = [
    Claim("rm-ranks-pairs", "The reward model ranks held-out preference pairs (accuracy > 0.8)"),
    Claim("rm-every-kind", "... on every kind of mistake, echoing the question included (> 0.7)"),
    Claim("ppo-reward-gain", "PPO raises the held-out reward over the SFT policy"),
    Claim("ppo-exact-match", "... and exact match against the gold answers, which no model judged"),
    Claim("ppo-kl-bound", "... with the KL to the SFT policy under 2 nats at every logged update"),
    Claim("ppo-no-echo", "... without learning to echo the question (the reward hack)"),
    Claim("rlhf-baseline-variance", "A baseline lowers the variance of REINFORCE's gradient (RLOO)"),
    Claim("rlhf-critic-variance", "A critic lowers it too (A2C)"),
]
RUNS = [RecipeRun("rlhf")]

RM_THRESHOLD = 0.8     # held-out pairwise accuracy, overall
KIND_THRESHOLD = 0.7   # held-out pairwise accuracy, worst kind of rejected answer
KL_BOUND = 2.0         # nats per response
ECHO_MARGIN = 0.05     # the largest rise in the share of echoed answers that is not a reward hack
Z95 = 1.959963984540054


def _adapter_blocks(out: Path, blocks: int | str) -> str:
    """Where the RL run put the policy's adapter (`--rl_lora_layers`) among its `blocks`, in words."""
    n = int(load_yaml(out / "config.yaml").get("rl_lora_layers") or 0)
    return f"the top {n} of {blocks} blocks" if n else "every block"


def _blocks(out: Path) -> int | str:
    """The policy's number of decoder blocks (its saved config), "?" when it is not there."""
    cfg = out / "ppo" / "config.json"
    return read_json(cfg).get("num_hidden_layers", "?") if cfg.is_file() else "?"


def section(ctx: StageContext) -> StageResult:
    out = ctx.run_dir("rlhf")
    s = read_json(out / "metrics.json")
    claims = {d.claim: d for d in rm_claims(out / "reward")} | ppo_claims(out) | ladder_claims(out)
    sft_ev, ppo_ev = _eval(out / "sft"), _eval(out / "ppo")
    blocks = _blocks(out)
    adapter = _adapter_blocks(out, blocks)
    md = [
        f"SFT (LoRA) on {s.get('sft_examples')} demonstrations -> reward model (first {s.get('rm_layers')} of "
        f"{blocks} blocks of the SFT model) -> the RL ladder (REINFORCE, RLOO, A2C, PPO: one loop, the same "
        f"prompts and rollouts; the policy's LoRA adapter in {adapter}), on the one-word-answer task "
        f"built from questions-words (data_cards/qw-prefs.md); budget `{ctx.budget}`; evaluation on "
        f"{ppo_ev.get('prompts')} held-out prompts, {ppo_ev.get('samples_per_prompt')} sampled answers each.",
        "",
        md_table(s["comparison"]),
        "",
        "The ladder (training rollouts; gradient variance across the micro-batches of each update):",
        "",
        md_table(s["ladder"]) if s.get("ladder") else "(not run at this budget)",
        "",
        f"Reward model: held-out pairwise accuracy {s['rm_test_accuracy']:.3f} on {s['rm_test_pairs']} pairs ("
        + ", ".join(f"{k} {v:.2f}" for k, v in (s.get("rm_test_accuracy_by_kind") or {}).items()) + ").",
        "",
        *figure(ctx.rel(out / "curves.png"),
                "the ladder per update: reward, exact match, KL with its bound, gradient variance", CURVES_CAPTION),
        "Held-out answers (greedy):",
        "",
        md_table(_examples(out, 6)) if _examples(out, 6) else "",
        f"Reward-hacking signs, SFT -> PPO: echoed answers {sft_ev.get('echo_rate_sampled', 0):.2f} -> "
        f"{ppo_ev.get('echo_rate_sampled', 0):.2f}, tokens per answer {sft_ev.get('sampled_tokens', 0):.2f} -> "
        f"{ppo_ev.get('sampled_tokens', 0):.2f}, no-EOS rate {sft_ev.get('no_eos_rate', 0):.2f} -> "
        f"{ppo_ev.get('no_eos_rate', 0):.2f}.",
    ]
    metrics = {k: v for k, v in s.items() if k not in ("comparison", "ladder")}
    metrics["ppo_eval"], metrics["sft_eval"] = ppo_ev, sft_ev
    return StageResult(markdown="\n".join(md), metrics=metrics, claims=claims)


# --- the reward model -----------------------------------------------------------------------------------------

def rm_claims(folder: Path) -> list[Decision]:
    recs = _jsonl(folder / "eval_pairs.jsonl")
    right = [float(r["right"]) for r in recs]
    by: dict[str, list[float]] = {}
    for r in recs:
        by.setdefault(r["kind"], []).append(float(r["right"]))
    n = len(right)
    overall = decide("rm-ranks-pairs", "held-out pairwise accuracy", *_boot(right), threshold=RM_THRESHOLD,
                     uncertainty=f"bootstrap over {n:,} held-out pairs",
                     evidence=", ".join(f"{k} {sum(v) / len(v):.2f} (n={len(v)})" for k, v in sorted(by.items())))
    est, lo, hi = worst_group_bootstrap(by)
    worst = min(by, key=lambda k: sum(by[k]) / len(by[k])) if by else "n/a"
    kinds = decide("rm-every-kind", "accuracy on the worst kind of rejected answer", est, lo, hi,
                   threshold=KIND_THRESHOLD, uncertainty=f"the lowest bounds of {len(by)} kinds' bootstrap intervals",
                   evidence=f"worst: {worst}")
    return [overall, kinds]


def worst_group_bootstrap(groups: dict[str, list[float]]) -> tuple[float, float, float]:
    """Every group must clear the threshold: (the worst group's mean, the lowest of the groups' lower 95%
    bounds, the lowest of their upper bounds), each group's interval a bootstrap within it. The claim is
    REPRODUCED when every group's interval clears it, NOT REPRODUCED when one group's lies below. NaN when a
    group has fewer than 2 items (no interval)."""
    if not groups or any(len(v) < 2 for v in groups.values()):
        return math.nan, math.nan, math.nan
    per = [bootstrap(v) for v in groups.values()]
    return min(p[0] for p in per), min(p[1] for p in per), min(p[2] for p in per)


# --- PPO against the SFT policy ---------------------------------------------------------------------------------

PPO_CLAIMS = ("ppo-reward-gain", "ppo-exact-match", "ppo-kl-bound", "ppo-no-echo")
LADDER_CLAIMS = ("rlhf-baseline-variance", "rlhf-critic-variance")


def ppo_claims(out: Path) -> dict:
    """The four PPO claims (NOT RUN when this budget ran no PPO)."""
    if not (out / "ppo" / "eval_samples.jsonl").is_file():
        return {c: ("PPO did not run at this budget", None) for c in PPO_CLAIMS}
    base, pol = _jsonl(out / "sft" / "eval_samples.jsonl"), _jsonl(out / "ppo" / "eval_samples.jsonl")
    if len(base) != len(pol) or [r["prompt"] for r in base] != [r["prompt"] for r in pol]:
        base, pol = [], []  # not the same held-out prompts: nothing to pair
    n = len(pol)
    paired = f"paired bootstrap over {n} held-out prompts"
    col = lambda rs, k: [float(r.get(k) or 0.0) for r in rs]  # noqa: E731
    reward = decide("ppo-reward-gain", "held-out reward, PPO - SFT", *_paired(col(base, "reward_sampled"),
                    col(pol, "reward_sampled")), threshold=0.0, uncertainty=paired,
                    evidence=_pair_evidence(base, pol, "reward_sampled"))
    em = decide("ppo-exact-match", "exact match of the sampled answers, PPO - SFT",
                *_paired(col(base, "em_sampled"), col(pol, "em_sampled")), threshold=0.0, uncertainty=paired,
                evidence=_pair_evidence(base, pol, "em_sampled") + "; greedy: "
                + _pair_evidence(base, pol, "em_greedy"))
    echo = decide("ppo-no-echo", "share of echoed answers, PPO - SFT",
                  *_paired(col(base, "echo_sampled"), col(pol, "echo_sampled")), threshold=ECHO_MARGIN,
                  higher=False, uncertainty=paired, evidence=_pair_evidence(base, pol, "echo_sampled"))
    decisions = [reward, em, kl_bound(read_log(out / "ppo" / "log.jsonl"), pol), echo]
    return {d.claim: d for d in decisions}


def kl_bound(log: list[dict], held_out: list[dict]) -> Decision:
    """The largest KL among the logged updates (each a mean over its rollouts) and the held-out evaluation
    (a mean over prompts), with the largest lower and upper 95% bounds (normal, from their standard errors)."""
    points = [(r["kl"], r.get("kl_se")) for r in log if r.get("kl") is not None]
    kls = [float(r["kl"]) for r in held_out if r.get("kl") is not None]
    if len(kls) >= 2:
        m = sum(kls) / len(kls)
        points.append((m, math.sqrt(sum((k - m) ** 2 for k in kls) / (len(kls) - 1) / len(kls))))
    if not points or any(se is None or not math.isfinite(se) for _, se in points):
        est = max((p for p, _ in points), default=math.nan)
        return decide("ppo-kl-bound", "largest KL to the SFT policy", est, math.nan, math.nan, threshold=KL_BOUND,
                      higher=False, evidence="a logged update without a standard error")
    lo = max(p - Z95 * se for p, se in points)
    hi = max(p + Z95 * se for p, se in points)
    top = max(range(len(points)), key=lambda i: points[i][0])
    where = f"update {top + 1}" if top < len(log) else "the held-out prompts"
    return decide("ppo-kl-bound", "largest KL to the SFT policy (nats/answer)", points[top][0], lo, hi,
                  threshold=KL_BOUND, higher=False,
                  uncertainty=f"95% bounds of {len(points)} means (logged updates + held-out)",
                  evidence=f"largest at {where}")


# --- the ladder ----------------------------------------------------------------------------------------------------

def ladder_claims(out: Path) -> dict:
    """The two variance claims (NOT RUN when this budget ran no ladder)."""
    var = {a: {r["step"]: r.get("grad_var") for r in read_log(out / a / "log.jsonl")}
           for a in ("reinforce", "rloo", "a2c")}
    if not var["reinforce"]:
        return {c: ("the ladder did not run at this budget", None) for c in LADDER_CLAIMS}
    decisions = [variance_ratio("rlhf-baseline-variance", "RLOO", var["reinforce"], var["rloo"]),
                 variance_ratio("rlhf-critic-variance", "A2C", var["reinforce"], var["a2c"])]
    return {d.claim: d for d in decisions}


def variance_ratio(claim: str, name: str, reinforce: dict, other: dict) -> Decision:
    """Mean over updates of log(var REINFORCE / var other), the same update index pairing the same prompts;
    bootstrap over updates."""
    steps = sorted(s for s in set(reinforce) & set(other)
                   if _pos(reinforce[s]) and _pos(other[s]))
    logs = [math.log(reinforce[s] / other[s]) for s in steps]
    est, lo, hi = _boot(logs)
    ratio = f"ratio {math.exp(est):.3g}" if math.isfinite(est) else "no ratio"
    return decide(claim, f"log(gradient variance REINFORCE / {name})", est, lo, hi, threshold=0.0,
                  uncertainty=f"bootstrap over {len(logs)} updates", evidence=ratio)


# --- helpers -----------------------------------------------------------------------------------------------------

def _boot(xs: list[float]) -> tuple[float, float, float]:
    """Bootstrap interval of the mean; undefined (NaN) below 2 items, so that the claim stays INCONCLUSIVE."""
    if len(xs) < 2:
        return (xs[0] if xs else math.nan), math.nan, math.nan
    return bootstrap(xs)


def _paired(a: list[float], b: list[float]) -> tuple[float, float, float]:
    if len(a) < 2:
        return (b[0] - a[0] if a else math.nan), math.nan, math.nan
    return paired_bootstrap(a, b)


def _pos(x) -> bool:
    return x is not None and math.isfinite(x) and x > 0


def _pair_evidence(base: list[dict], pol: list[dict], key: str) -> str:
    if not base:
        return "no paired evaluation"
    a = sum(float(r.get(key) or 0) for r in base) / len(base)
    b = sum(float(r.get(key) or 0) for r in pol) / len(pol)
    return f"{a:.3f} -> {b:.3f}"


def _eval(folder: Path) -> dict:
    f = folder / "eval.json"
    return {k: v for k, v in read_json(f).items() if k != "key"} if f.is_file() else {}


def _jsonl(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]


def _examples(out: Path, n: int) -> list[dict]:
    a, b = _jsonl(out / "sft" / "eval_samples.jsonl"), _jsonl(out / "ppo" / "eval_samples.jsonl")
    return [{"question": x["prompt"], "gold": x.get("answer"), "SFT": x["greedy"], "PPO": y["greedy"],
             "reward SFT": x["reward_greedy"], "reward PPO": y["reward_greedy"]} for x, y in list(zip(a, b))[:n]]

