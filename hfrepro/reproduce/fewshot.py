"""Stage 6 of `hfrepro reproduce`: few-shot in-context learning on the embedded SmolLM2-135M-Instruct.

Runs `recipes/fewshot.py` at the budget's config (recipes/configs/fewshot/<budget>.yaml): every task at k = 0
and a few k > 0, plain-text prompts (GPT-3's protocol); and again with the chat template (recipes/configs/
fewshot/chat/<budget>.yaml: k = 0 and the largest k). The demonstrations are drawn with the run's seed
(`demos: fixed`: the first k of a seeded permutation of the task's demonstration pool, the same for every test
example of the task), so `--seed 0`, `--seed 1`, `--seed 2` ask with three different draws.

Claim `fewshot-beats-zeroshot` (GPT-3): with k demonstrations in the prompt and no parameter update, the model
does the tasks better than with none. The rule, fixed before the run:

    on the plain-text prompts, k_max-shot beats 0-shot on at least half of the tasks (MIN_SHARE), each task
    counted only when its paired bootstrap interval of accuracy(k_max) - accuracy(0) over its test examples
    lies above 0.

The interval of the count: its lower end is the number of tasks whose interval clears 0, its upper end the
number whose interval reaches above 0 (so NOT REPRODUCED means: even counting every undecided task, fewer than
half could be better). The decision is per task: the pairs of one task share one draw of demonstrations, so
they are never pooled across tasks into one sign test. The chat-template rows are reported beside, with their
own intervals, and decide nothing.
"""

from __future__ import annotations

import math

from hfrepro.claims import Claim, Decision, StageContext, StageResult, decide, paired_bootstrap
from hfrepro.fewshot.report import FewShotResults, load_results, markdown_table
from hfrepro.report import figure, md_table
from hfrepro.reproduce.plan import RecipeRun

CLAIMS = [Claim("fewshot-beats-zeroshot", "Few-shot beats zero-shot (GPT-3)")]
RUNS = [RecipeRun("fewshot"), RecipeRun("fewshot", name="chat", config="fewshot/chat")]

MIN_SHARE = 0.5     # k-shot must beat 0-shot on at least this share of the tasks (each by a clearing interval)

GPT3 = ("GPT-3 175B for comparison (Brown et al. 2020): LAMBADA 76.2 / 72.5 / 86.4 % (zero / one / few-shot), "
        "3-digit addition 80.4 % few-shot; the smallest GPT-3 (125M, about this model's size) was near 0 % on "
        "3-digit addition and on the unscrambling tasks.")


def task_gains(results: FewShotResults, k0: int, k1: int) -> list[dict]:
    """Per task: accuracy at k0 and k1 on the same test examples, and the paired bootstrap interval of the
    difference (k1 - k0) over those examples."""
    out = []
    for task, by_k in results.samples.items():
        metric = results.tasks[task]["metric"]
        a, b = by_k.get(k0), by_k.get(k1)
        if not a or not b:
            continue
        x = [float(bool(r[metric])) for r in a]
        y = [float(bool(r[metric])) for r in b]
        diff, lo, hi = paired_bootstrap(x, y)
        out.append({"task": task, "metric": metric, "n": len(x), f"{k0}-shot": sum(x) / len(x),
                    f"{k1}-shot": sum(y) / len(y), "gain": diff, "lo": lo, "hi": hi,
                    "fixed": sum(1 for u, v in zip(x, y) if v > u), "broken": sum(1 for u, v in zip(x, y) if u > v)})
    return out


def required_tasks(n_tasks: int) -> int:
    """How many tasks the claim needs: at least MIN_SHARE of them (half of 6 = 3)."""
    return max(1, math.ceil(MIN_SHARE * n_tasks))


def decide_claim(gains: list[dict], k0: int, k1: int) -> Decision:
    """`fewshot-beats-zeroshot` by the rule of the module docstring, from `task_gains` of the raw prompts."""
    n = len(gains)
    need = required_tasks(n) if n else 1
    clear = [g["task"] for g in gains if g["lo"] > 0]
    maybe = [g["task"] for g in gains if g["hi"] > 0]
    ahead = sum(1 for g in gains if g["gain"] > 0)
    per_task = "; ".join(f"{g['task']} {g[f'{k0}-shot']:.2f}→{g[f'{k1}-shot']:.2f} "
                         f"[{g['lo']:+.2f}, {g['hi']:+.2f}]" for g in gains)
    nan = math.nan
    return decide("fewshot-beats-zeroshot", f"tasks where {k1}-shot beats {k0}-shot (of {n})",
                  ahead if n else nan, len(clear) if n else nan, len(maybe) if n else nan, need - 0.5,
                  uncertainty=(f"per task, a paired bootstrap interval over its test examples; the count's lower "
                               f"end = tasks whose interval clears 0, upper end = tasks whose interval reaches "
                               f"above 0; needed: {need} of {n}"),
                  evidence=(f"cleared 0: {', '.join(clear) or 'none'}; per task ({k0}→{k1} shots, interval of the "
                            f"gain): {per_task or 'no task scored at both'}"))


def gains_table(rows: list[tuple[str, list[dict]]], k0: int, k1: int) -> str:
    out = []
    for fmt, gains in rows:
        for g in gains:
            out.append({"task": g["task"], "prompt": fmt, "metric": g["metric"], "n": g["n"],
                        f"{k0}-shot": g[f"{k0}-shot"], f"{k1}-shot": g[f"{k1}-shot"],
                        "gain [95% interval]": f"{g['gain']:+.3f} [{g['lo']:+.3f}, {g['hi']:+.3f}]",
                        "fixed / broken": f"{g['fixed']} / {g['broken']}",
                        "clears 0": "yes" if g["lo"] > 0 else "no"})
    return md_table(out, digits=3)


def section(ctx: StageContext) -> StageResult:
    run = ctx.run_dir("fewshot")
    results = load_results(run, samples=True)
    if (ctx.run_dir("chat") / "results.json").is_file():
        results += load_results(ctx.run_dir("chat"), samples=True)
    raw = next(r for r in results if r.config["prompt_format"] == "raw" and r.config["instruction"])
    chat = next((r for r in results if r.config["prompt_format"] == "chat" and r.config["instruction"]), None)
    shots, limit = raw.config["shots"], raw.config["limit"]
    k0, k1 = shots[0], shots[-1]
    gains = {"raw": task_gains(raw, k0, k1), **({"chat": task_gains(chat, k0, k1)} if chat else {})}
    decision = decide_claim(gains["raw"], k0, k1)
    task = next(iter(raw.samples))
    k = max((x for x in raw.samples[task] if x <= 3), default=k1)
    example = raw.samples[task][k][0]["prompt"]
    rate = sum(r.examples for r in results) / max(1e-9, sum(r.seconds for r in results))
    md = [
        f"{raw.model} answers each task from a prompt holding a task line and k solved examples (k = "
        f"{', '.join(map(str, shots))}), with no parameter update — GPT-3's zero-, one- and few-shot "
        f"protocol. Test examples per task: {limit or 'all'}; the demonstrations are drawn with the run's seed "
        f"({ctx.seed}): the first k of a seeded permutation of each task's demonstration pool, the same for every "
        "test example of a task, so another `--seed` asks with another draw. Generation tasks are scored by exact "
        "match after normalisation, multiple choice by log-likelihood (lm-eval's acc). Plain-text prompts "
        "(GPT-3's) decide the claim; the chat template's rows are reported beside. Recipe: "
        f"`hfrepro fewshot --budget {ctx.budget} --seed {ctx.seed}`.", "",
        markdown_table(results), "",
        f"**{k1}-shot vs {k0}-shot, per task** (paired bootstrap over the task's test examples, 95%): the claim "
        f"counts a task only when its interval clears 0, and needs {required_tasks(len(gains['raw']))} of "
        f"{len(gains['raw'])} tasks (at least {MIN_SHARE:.0%}).", "",
        gains_table(list(gains.items()), k0, k1), "",
        *figure(ctx.rel(run / "accuracy_vs_shots.png"), "accuracy vs shots",
                "Look at: each panel's line with round markers (plain text) rising from k = 0; squares: the chat "
                "template; the dotted line is chance."),
        f"A {k}-shot prompt (`{task}`; the model continues after the last line):", "",
        "```", example, "```", "",
        f"Every prompt and answer: `{ctx.rel(run / 'samples')}/`; scores: `{ctx.rel(run / 'results.json')}`. "
        f"Speed: {rate:.1f} scored prompts/s (batched, shared-prefix KV cache).", "",
        GPT3,
    ]
    metrics = {"scores": {r.label: r.to_dict()["scores"] for r in results}, "gains": gains,
               "claim": decision.to_dict(), "examples_per_s": round(rate, 2)}
    return StageResult(markdown="\n".join(md), claims={decision.claim: decision}, metrics=metrics)
