"""Stage 4 of `hfrepro reproduce`: few-shot in-context learning on the embedded SmolLM2-135M-Instruct.

Claim `fewshot-beats-zeroshot` (GPT-3): with k demonstrations in the prompt and no parameter update, the
model does the tasks better than with none. Decided on the largest k of the budget against k = 0, over every
(task, test example) pair of the run: held when few-shot is right more often than zero-shot AND an exact
two-sided sign test on the pairs where they disagree gives p < 0.05. Nothing is tuned on the test rows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from hfrepro.claims import StageContext, StageResult

MODEL = "smollm2-135m-instruct"


@dataclass(frozen=True)
class Plan:
    tasks: tuple[str, ...]
    shots: tuple[int, ...]
    limit: int | None
    formats: tuple[str, ...] = ("raw",)
    instructions: tuple[bool, ...] = (True,)   # False: also without the task's instruction line (GPT-3 Fig. 1.2)


PLANS = {
    "tiny": Plan(("uppercase", "capital_mc"), (0, 3), 12),
    "default": Plan(("uppercase", "unscramble_swap", "capital_city", "add_2digit", "translate_en_fr",
                     "capital_mc"), (0, 1, 3, 8), 40),
    "full": Plan(("all",), (0, 1, 3, 8, 16), None, ("raw", "chat"), (True, False)),
}

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


def decide(results, k0: int, k1: int) -> tuple[str, bool | None, dict]:
    """Compare k1-shot with k0-shot over all (task, example) pairs of the raw-prompt results."""
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


def reproduce(ctx: StageContext) -> StageResult:
    from hfrepro.fewshot.evaluator import build_prompt, default_device, demonstrations, evaluate
    from hfrepro.fewshot.report import markdown_table, save_results
    from hfrepro.fewshot.tasks import load_task, load_tasks
    from hfrepro.models import load_causal_lm, load_tokenizer

    plan = PLANS[ctx.budget]
    tasks = load_tasks(list(plan.tasks))
    tok, model = load_tokenizer(MODEL), load_causal_lm(MODEL)
    results = [evaluate(model, tasks, plan.shots, tokenizer=tok, limit=plan.limit, seed=1234, prompt_format=fmt,
                        model_name=MODEL, progress=False, instruction=ins, device=default_device(),
                        batch_size=128 if default_device() == "cuda" else 32)
               for fmt in plan.formats for ins in plan.instructions]
    paths = save_results(results, ctx.dir, title=f"SmolLM2-135M-Instruct: accuracy by number of demonstrations "
                                                 f"({ctx.budget} budget)")
    raw = results[0]
    k0, k1 = plan.shots[0], plan.shots[-1]
    evidence, held, stats = decide(raw, k0, k1)

    t = load_task(tasks[0].name)
    example = build_prompt(t, demonstrations(t, min(3, k1), 1234), t.test_rows()[0])
    rate = sum(r.examples for r in results) / max(1e-9, sum(r.seconds for r in results))
    md = [
        f"{MODEL} answers each task from a prompt holding a task line and k solved examples (k = "
        f"{', '.join(map(str, plan.shots))}), with no parameter update — GPT-3's zero-, one- and few-shot "
        f"protocol, plain-text prompts. Test examples per task: {plan.limit or 'all'}; the demonstrations are "
        "drawn from a separate split with a fixed seed, the same for every model. Generation tasks are scored "
        "by exact match after normalisation, multiple choice by log-likelihood (lm-eval's acc).", "",
        markdown_table(results), "",
        f"![accuracy vs shots]({ctx.rel(paths['plot'])})", "",
        f"A {min(3, k1)}-shot prompt (`{t.name}`; the model continues after the last line):", "",
        "```", example, "```", "",
        f"Every prompt and answer: `{ctx.rel(ctx.dir / 'samples')}/`; scores: `{ctx.rel(paths['results'])}`. "
        f"Speed: {rate:.1f} scored prompts/s (batched, shared-prefix KV cache).", "",
        GPT3,
    ]
    metrics = {"scores": {r.label: r.to_dict()["scores"] for r in results}, "claim": stats,
               "examples_per_s": round(rate, 2)}
    return StageResult(markdown="\n".join(md), claims={"fewshot-beats-zeroshot": (evidence, held)},
                       metrics=metrics)
