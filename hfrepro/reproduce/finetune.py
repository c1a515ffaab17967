"""Stage 5 of `hfrepro reproduce`: fine-tuning. Head-only (transfer learning) vs LoRA vs full fine-tuning vs the
base model zero- and few-shot, on one task, the same rows and the same steps; decides `lora-near-full`.

RUNS: `recipes/sft.py` three times (recipes/configs/sft/{head,lora,full}/<budget>.yaml: the same training rows
of `word_class`, epochs and batch; each method's own learning rate), each scoring its model on the task's
held-out words. `section` scores the base model on those same words, zero-shot and with k demonstrations
(stage 4's evaluator; k in recipes/configs/reproduce/finetune/<budget>.yaml), and writes the table and plot.
Peak memory of the default budget is ~3 GiB: full fine-tuning with AdamW holds weights, gradients and two
moments of 135M fp32 parameters.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from hfrepro.claims import Claim, StageContext, StageResult
from hfrepro.config import config_path, load_yaml
from hfrepro.finetune.memory import release_memory
from hfrepro.finetune.training_data import task_accuracy
from hfrepro.fsutil import atomic_write_json, atomic_write_text, read_json
from hfrepro.models import load_causal_lm, load_tokenizer
from hfrepro.report import md_table, pyplot, save_figure
from hfrepro.reproduce.plan import RecipeRun

CLAIMS = [Claim("lora-near-full", "LoRA comes close to full fine-tuning with under 1% trainable parameters")]

METHODS = ("head", "lora", "full")
RUNS = [RecipeRun("sft", name=m, config=f"sft/{m}") for m in METHODS]

TOLERANCE = 0.05       # "close": LoRA's held-out accuracy within 5 points of full fine-tuning's (or above)
MIN_GAIN = 0.05        # the comparison only means something if full fine-tuning learnt the task
LABELS = {"zero-shot": "zero-shot (base)", "few-shot": "few-shot (base, k={k})", "head": "head-only",
          "lora": "LoRA", "full": "full fine-tuning"}
INTRO = ("Transfer learning keeps the pretrained model and trains only its output end; full fine-tuning trains "
         "everything a little; LoRA trains small low-rank adapters. All three are trained with TRL's "
         "`SFTTrainer` on the same rows, for the same number of steps, and scored with the zero- and few-shot "
         "baselines by stage 4's evaluator. Head-only here means SmolLM2's output layer, untied from the input "
         "embeddings, plus the final norm: an LM's output end is its whole vocabulary projection, so it is not "
         "small.")


def section(ctx: StageContext) -> StageResult:
    runs = {m: read_json(ctx.run_dir(m) / "metrics.json") for m in METHODS}
    setup = load_yaml(ctx.run_dir("lora") / "config.yaml")      # the rows and settings every method used
    shots = int(load_yaml(config_path("reproduce/finetune", ctx.budget))["shots"])
    results = {**baselines(ctx, runs["lora"], setup, shots), **{m: method_row(runs[m]) for m in METHODS}}
    claim = decide(results)
    table = markdown_table(results, shots, n_train=runs["lora"]["examples"], epochs=setup["num_train_epochs"],
                           batch=setup["per_device_train_batch_size"])
    plot = plot_comparison(results, ctx.dir / "comparison.png", {m: ctx.run_dir(m) for m in METHODS})
    atomic_write_json(ctx.dir / "results.json", {"budget": ctx.budget, "task": runs["lora"]["eval_task"],
                                                 "shots": shots, "results": results, "claim": claim})
    atomic_write_text(ctx.dir / "table.md", table + "\n" + claim["sentence"] + "\n")
    res = ctx.rel(ctx.dir / "results.json")
    md = [INTRO, "", table, "", claim["sentence"], "", f"![accuracy by method and training loss]({ctx.rel(plot)})", "",
          f"Files: [{res}]({res}); each method's run folder (`{ctx.rel(ctx.run_dir('lora'))}` holds the LoRA "
          f"adapter). Re-run one method alone: `hfrepro sft --config recipes/configs/sft/lora/{ctx.budget}.yaml`; "
          f"the stage: `hfrepro reproduce --stages finetune --budget {ctx.budget}`."]
    metrics = {k: v["accuracy"] for k, v in results.items()}
    metrics.update({f"{k}_trainable_pct": results[k]["trainable_pct"] for k in METHODS})
    metrics.update({f"{k}_train_seconds": results[k]["train_seconds"] for k in METHODS})
    return StageResult(markdown="\n".join(md), claims={"lora-near-full": (claim["evidence"], claim["held"])},
                       metrics=metrics)


def baselines(ctx: StageContext, lora: dict, setup: dict, shots: int) -> dict:
    """The base model on the fine-tuned models' held-out rows: with the task's instruction, 0 and `shots`
    demonstrations (no parameter update)."""
    tokenizer, model = load_tokenizer(setup["model_name_or_path"]), load_causal_lm(setup["model_name_or_path"])
    out = {}
    for name, k in (("zero-shot", 0), ("few-shot", shots)):
        r = task_accuracy(model, tokenizer, lora["eval_task"], limit=setup.get("eval_limit", 0),
                          seed=1234 + ctx.seed, shots=k, instruction=True)
        atomic_write_text(ctx.dir / "samples" / f"{name}.jsonl",
                          "".join(json.dumps(x, ensure_ascii=False) + "\n" for x in r["samples"]))
        out[name] = {"accuracy": r["accuracy"], "n_test": r["n"], "eval_seconds": r["seconds"],
                     "eval_cpu_seconds": r["cpu_seconds"], "trainable_params": 0, "trainable_pct": 0.0, "shots": k}
        print(f"[finetune] {name}: accuracy {r['accuracy']:.3f} on {r['n']} held-out words ({r['seconds']:.1f}s)",
              flush=True)
    del model
    release_memory()
    return out


def method_row(m: dict) -> dict:
    keep = ("learning_rate", "trainable_params", "total_params", "trainable_pct", "train_seconds",
            "train_cpu_seconds", "peak_memory_bytes", "train_loss", "first_loss", "last_loss", "tokens_seen",
            "steps", "flops_estimate")
    return {"accuracy": m["heldout_accuracy"], "n_test": m["heldout_n"], "eval_seconds": m["heldout_seconds"],
            "eval_cpu_seconds": m["heldout_cpu_seconds"], **{k: m[k] for k in keep if k in m}}


# --- verdict, table, plot -------------------------------------------------------------------------------

def decide(results: dict) -> dict:
    """Does 'LoRA ~ full with < 1% trainable parameters' hold? held is None when neither full fine-tuning nor
    LoRA beat the zero-shot baseline by MIN_GAIN (then 'close to full' would say nothing)."""
    lora, full, zs = results["lora"], results["full"], results["zero-shot"]
    gap = round(full["accuracy"] - lora["accuracy"], 9)   # 0.800 - 0.750 must compare equal to 0.05
    pct = lora["trainable_pct"]
    learnt = full["accuracy"] - zs["accuracy"] >= MIN_GAIN or lora["accuracy"] - zs["accuracy"] >= MIN_GAIN
    se = math.sqrt(max(full["accuracy"] * (1 - full["accuracy"]), 1e-9) / max(full["n_test"], 1))
    evidence = (f"LoRA {lora['accuracy']:.3f} vs full {full['accuracy']:.3f} held-out accuracy (n={full['n_test']}, "
                f"SE ~{se:.3f}; zero-shot {zs['accuracy']:.3f}) with {pct:.2f}% vs 100% of parameters trainable")
    if not learnt:
        held = None
        sentence = (f"**LoRA ≈ full with <1% of parameters: not decidable here** — neither full fine-tuning "
                    f"({full['accuracy']:.3f}) nor LoRA ({lora['accuracy']:.3f}) beat zero-shot "
                    f"({zs['accuracy']:.3f}) by {MIN_GAIN:.0%} at this budget, so there is nothing to be close to.")
    else:
        held = bool(pct < 1.0 and gap <= TOLERANCE + 1e-9)
        if held:
            sentence = (f"**LoRA ≈ full with <1% of parameters: holds here.** LoRA trains {pct:.2f}% of the "
                        f"parameters and reaches {lora['accuracy']:.3f} held-out accuracy against full fine-tuning's "
                        f"{full['accuracy']:.3f} (gap {gap:+.3f}, within the {TOLERANCE:.0%} tolerance; "
                        f"one standard error is ~{se:.3f} at n={full['n_test']}).")
        else:
            why = (f"LoRA trains {pct:.2f}% of the parameters (not under 1%)" if pct >= 1.0 else
                   f"full fine-tuning is ahead by {gap:.3f} (more than {TOLERANCE:.0%})")
            sentence = (f"**LoRA ≈ full with <1% of parameters: does not hold here** — {why}: LoRA "
                        f"{lora['accuracy']:.3f} vs full {full['accuracy']:.3f} held-out accuracy "
                        f"(n={full['n_test']}).")
    return {"held": held, "evidence": evidence, "sentence": sentence, "gap": gap, "lora_pct": pct}


def markdown_table(results: dict, shots: int, n_train: int, epochs: float, batch: int) -> str:
    import torch

    rows = []
    for key in ("zero-shot", "few-shot", *METHODS):
        r = results[key]
        mem = r.get("peak_memory_bytes")
        rows.append({
            "method": LABELS[key].format(k=shots), "held-out accuracy": r["accuracy"],
            "trainable params": r.get("trainable_params", 0), "trainable %": r.get("trainable_pct", 0.0),
            "train time (s)": r.get("train_seconds"), "eval time (s)": r.get("eval_seconds"),
            "peak memory (GiB)": mem / 2**30 if mem else None, "learning rate": r.get("learning_rate"),
            "final train loss": r.get("last_loss")})
    head = (f"Task `word_class` (the part of speech of an English word: noun, verb, adjective or adverb), "
            f"{results['zero-shot']['n_test']} held-out words; {n_train} training words, {epochs:g} epoch(s) "
            f"of batch {batch}, the same for every method. Accuracy = exact match of the greedy answer, by "
            f"stage 4's evaluator (chance with a valid label: 0.25). Times are wall-clock seconds on this machine, "
            f"{torch.get_num_threads()} torch thread(s).\n\n")
    return head + md_table(rows, digits=4)


def plot_comparison(results: dict, path: Path, run_dirs: dict[str, Path]) -> Path:
    """Held-out accuracy by method (left) and the three training-loss curves (right, from log.jsonl)."""
    plt = pyplot()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4))
    keys = ["zero-shot", "few-shot", *METHODS]
    names = ["zero-shot", f"few-shot\n(k={results['few-shot'].get('shots')})", "head-only", "LoRA", "full"]
    colors = ["#999", "#bbb", "#6a9fd4", "#e3883c", "#4a9a5a"]
    bars = a1.bar(names, [results[k]["accuracy"] for k in keys], color=colors)
    a1.axhline(0.25, ls=":", color="k", lw=1)
    a1.text(-0.4, 0.26, "chance", ha="left", fontsize=8)
    for b, k in zip(bars, keys):
        pct = results[k].get("trainable_pct", 0.0)
        a1.text(b.get_x() + b.get_width() / 2, b.get_height() + 0.01,
                f"{b.get_height():.2f}\n{pct:.3g}% trained" if pct else f"{b.get_height():.2f}", ha="center",
                fontsize=8)
    a1.set_ylim(0, 1.05)
    a1.set_ylabel("held-out accuracy")
    a1.set_title("word_class: accuracy by method")
    for k, c in zip(METHODS, ["#6a9fd4", "#e3883c", "#4a9a5a"]):
        f = run_dirs[k] / "log.jsonl"
        rows = [json.loads(x) for x in f.read_text().splitlines() if x.strip()] if f.is_file() else []
        pts = [(p["step"], p["loss"]) for p in rows if isinstance(p.get("loss"), (int, float))]
        if pts:
            a2.plot(*zip(*pts), label=LABELS[k], color=c)
    a2.set_xlabel("step")
    a2.set_ylabel("training loss (completion tokens)")
    a2.set_title("training loss")
    a2.legend()
    return save_figure(fig, path)
