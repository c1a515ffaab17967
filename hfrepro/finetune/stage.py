"""Stage 5 in `hfrepro reproduce`: zero-shot vs few-shot vs head-only vs LoRA vs full fine-tuning on one task,
same data and budget; fills the claim `lora-near-full`.

Budgets (hfrepro/finetune/compare.py: BUDGETS): tiny (CI, <= 45 s on 2 cores), default (<= ~110 s on 2 cores,
peak memory ~3 GiB: full fine-tuning with AdamW holds weights, gradients and two moments of 135M fp32
parameters), full (a GPU: every training row, 3 epochs, all models saved; a few minutes).
"""

from __future__ import annotations

from hfrepro.claims import StageContext, StageResult


def reproduce(ctx: StageContext) -> StageResult:
    from hfrepro.finetune.compare import run_comparison

    res = run_comparison(ctx.dir, budget=ctx.budget, seed=ctx.seed, echo=True)
    claim = res["claim"]
    r = res["results"]
    md = [
        "Transfer learning keeps the pretrained model and trains only its output end; full fine-tuning trains "
        "everything a little; LoRA trains small low-rank adapters. All three are trained with TRL's "
        "`SFTTrainer` on the same rows, for the same number of steps, and scored with the zero- and few-shot "
        "baselines by stage 4's evaluator. Head-only here means SmolLM2's output layer, untied from the input "
        "embeddings, plus the final norm: an LM's output end is its whole vocabulary projection, so it is not "
        "small.",
        "",
        res["markdown"].strip(),
        "",
        f"![accuracy by method and training loss]({ctx.rel(res['plot'])})",
        "",
        f"Files: [{ctx.rel(ctx.dir / 'results.json')}]({ctx.rel(ctx.dir / 'results.json')}), the LoRA adapter in "
        f"`{ctx.rel(ctx.dir / 'runs' / 'lora' / 'model')}`. Re-run alone: `hfrepro finetune compare --budget "
        f"{ctx.budget}`.",
    ]
    metrics = {k: v["accuracy"] for k, v in r.items()}
    metrics.update({f"{k}_trainable_pct": r[k]["trainable_pct"] for k in ("head", "lora", "full")})
    metrics.update({f"{k}_train_seconds": r[k]["train_seconds"] for k in ("head", "lora", "full")})
    return StageResult(markdown="\n".join(md), claims={"lora-near-full": (claim["evidence"], claim["held"])},
                       metrics=metrics)
