"""Stage 4 of `hfrepro reproduce`: few-shot in-context learning on the embedded SmolLM2-135M-Instruct.

Runs `recipes/fewshot.py` at the budget's config (recipes/configs/fewshot/<budget>.yaml) and decides claim
`fewshot-beats-zeroshot` (GPT-3): with k demonstrations in the prompt and no parameter update, the model does
the tasks better than with none. Decided on the largest k of the budget against k = 0, over every (task, test
example) pair of the plain-text prompts with the task's description: held when few-shot is right more often
than zero-shot AND an exact two-sided sign test on the pairs where they disagree gives p < 0.05. Nothing is
tuned on the test rows.
"""

from __future__ import annotations

import math

from hfrepro.claims import Claim, StageContext, StageResult
from hfrepro.fewshot.report import FewShotResults, load_results, markdown_table
from hfrepro.reproduce.plan import RecipeRun

CLAIMS = [Claim("fewshot-beats-zeroshot", "Few-shot beats zero-shot (GPT-3)")]
RUNS = [RecipeRun("fewshot")]

GPT3 = ("GPT-3 175B for comparison (Brown et al. 2020): LAMBADA 76.2 / 72.5 / 86.4 % (zero / one / few-shot), "
        "3-digit addition 80.4 % few-shot; the smallest GPT-3 (125M, about this model's size) was near 0 % on "
        "3-digit addition and on the unscrambling tasks.")


def sign_test(wins: int, losses: int) -> float:
    """Exact two-sided binomial sign test p-value for `wins` vs `losses` (ties dropped)."""
    n = wins + losses
    if n == 0:
        return 1.0
    k = min(wins, losses)
    p = sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n
    return min(1.0, 2 * p)


def decide(results: FewShotResults, k0: int, k1: int) -> tuple[str, bool | None, dict]:
    """Compare k1-shot with k0-shot over all (task, example) pairs of one FewShotResults."""
    wins = losses = both = n = improved = 0
    per_task = []
    for task, by_k in results.samples.items():
        metric = results.tasks[task]["metric"]
        a, b = by_k.get(k0), by_k.get(k1)
        if not a or not b:
            continue
        for x, y in zip(a, b):
            n += 1
            wins += bool(y[metric]) and not bool(x[metric])
            losses += bool(x[metric]) and not bool(y[metric])
            both += bool(x[metric]) and bool(y[metric])
        a0, a1 = results.accuracy(task, k0), results.accuracy(task, k1)
        improved += a1 > a0
        per_task.append(f"{task} {a0:.2f}→{a1:.2f}")
    if n == 0:
        return "no task could be scored at both shot counts", None, {}
    acc0, acc1 = (both + losses) / n, (both + wins) / n
    p = sign_test(wins, losses)
    held = acc1 > acc0 and p < 0.05
    ev = (f"{k1}-shot vs 0-shot over {n} (task, example) pairs: accuracy {acc0:.3f} → {acc1:.3f}; "
          f"{wins} fixed, {losses} broken, sign test p={p:.2g}; better on {improved}/{len(per_task)} tasks "
          f"({'; '.join(per_task)})")
    return ev, held, {"pairs": n, "acc_zero": acc0, "acc_few": acc1, "wins": wins, "losses": losses, "p": p}


def section(ctx: StageContext) -> StageResult:
    run = ctx.run_dir("fewshot")
    results = load_results(run, samples=True)
    raw = next(r for r in results if r.config["prompt_format"] == "raw" and r.config["instruction"])
    shots, limit = raw.config["shots"], raw.config["limit"]
    evidence, held, stats = decide(raw, shots[0], shots[-1])
    task = next(iter(raw.samples))
    k = max((x for x in raw.samples[task] if x <= 3), default=shots[-1])
    example = raw.samples[task][k][0]["prompt"]
    rate = sum(r.examples for r in results) / max(1e-9, sum(r.seconds for r in results))
    md = [
        f"{raw.model} answers each task from a prompt holding a task line and k solved examples (k = "
        f"{', '.join(map(str, shots))}), with no parameter update — GPT-3's zero-, one- and few-shot "
        f"protocol, plain-text prompts. Test examples per task: {limit or 'all'}; the demonstrations are "
        "fixed in each task file (lm-evaluation-harness's schema), the same for every model and test example. "
        "Generation tasks are scored by exact match after normalisation, multiple choice by log-likelihood "
        "(lm-eval's acc). Recipe: `hfrepro fewshot --budget " + ctx.budget + "`.", "",
        markdown_table(results), "",
        f"![accuracy vs shots]({ctx.rel(run / 'accuracy_vs_shots.png')})", "",
        f"A {k}-shot prompt (`{task}`; the model continues after the last line):", "",
        "```", example, "```", "",
        f"Every prompt and answer: `{ctx.rel(run / 'samples')}/`; scores: `{ctx.rel(run / 'results.json')}`. "
        f"Speed: {rate:.1f} scored prompts/s (batched, shared-prefix KV cache).", "",
        GPT3,
    ]
    metrics = {"scores": {r.label: r.to_dict()["scores"] for r in results}, "claim": stats,
               "examples_per_s": round(rate, 2)}
    return StageResult(markdown="\n".join(md), claims={"fewshot-beats-zeroshot": (evidence, held)},
                       metrics=metrics)
