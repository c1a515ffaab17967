"""Stage 7 of `hfrepro reproduce`: fine-tuning. Head-only (transfer learning) vs LoRA vs full fine-tuning vs the
base model zero- and few-shot, on one task, the same rows and the same steps; decides `lora-near-full`.

RUNS: `recipes/sft.py` for each method (recipes/configs/sft/{head,lora,full}/<budget>.yaml: the same training
rows of `word_class`, epochs and batch; each method's own learning rate), each scoring its model on the task's
held-out words; LoRA and full fine-tuning again at two more training seeds (the run's seed + 100 and + 200: other
adapter initialisations and data orders). `section` scores the base model on those same words, zero-shot and
with k demonstrations (stage 6's evaluator; k in recipes/configs/reproduce/finetune/<budget>.yaml), and writes
the table and plot. Peak memory of the default budget is ~3 GiB: full fine-tuning with AdamW holds weights,
gradients and two moments of 135M fp32 parameters.

Claim `lora-near-full` (Hu et al. 2021), the rule fixed before the run: with under 1% of the parameters
trainable, LoRA keeps at least 90% of full fine-tuning's gain over zero-shot **on every training seed**.
Statistic: min over seeds of (acc_LoRA - acc_zero-shot) / (acc_full - acc_zero-shot), every model answering the
same held-out words; its 95% interval: a bootstrap over those words (resampled together for all models and
seeds, so the interval covers which words were held out, and the worst seed is re-chosen in each resample).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from hfrepro.claims import LEVEL, N_BOOT, Claim, Decision, StageContext, StageResult, decide
from hfrepro.config import config_path, load_yaml
from hfrepro.finetune.training_data import task_accuracy
from hfrepro.fsutil import atomic_write_json, atomic_write_text, read_json
from hfrepro.models import load_causal_lm, load_tokenizer
from hfrepro.report import figure, md_table, pyplot, save_figure
from hfrepro.reproduce.plan import RecipeRun
from hfrepro.runtime import release_memory

CLAIMS = [Claim("lora-near-full", "LoRA comes close to full fine-tuning with under 1% trainable parameters")]

METHODS = ("head", "lora", "full")
SEED_OFFSETS = (100, 200)   # the claim's extra training seeds: the run's seed + 100, + 200 (three seeds in all)
RUNS = [RecipeRun("sft", name=m, config=f"sft/{m}") for m in METHODS] + [
    RecipeRun("sft", name=f"{m}-seed+{k}", config=f"sft/{m}", args=("--seed", f"{{seed+{k}}}"))
    for k in SEED_OFFSETS for m in ("lora", "full")]

KEEP = 0.9             # LoRA must keep at least this share of full fine-tuning's gain over zero-shot
MAX_PCT = 1.0          # ... with under this % of the parameters trainable
MIN_GAIN = 0.05        # the ratio only means something if full fine-tuning learnt the task
LABELS = {"zero-shot": "zero-shot (base)", "few-shot": "few-shot (base, k={k})", "head": "head-only",
          "lora": "LoRA", "full": "full fine-tuning"}
INTRO = ("Transfer learning keeps the pretrained model and trains only its output end; full fine-tuning trains "
         "everything a little; LoRA trains small low-rank adapters. All three are trained with TRL's "
         "`SFTTrainer` on the same rows, for the same number of steps, and scored with the zero- and few-shot "
         "baselines by stage 6's evaluator. Head-only here means SmolLM2's output layer, untied from the input "
         "embeddings, plus the final norm: an LM's output end is its whole vocabulary projection, so it is not "
         "small.")


def seed_pairs(ctx: StageContext) -> dict[str, tuple[Path, Path]]:
    """{seed label: (LoRA run folder, full run folder)} for the claim's training seeds."""
    pairs = {str(ctx.seed): (ctx.run_dir("lora"), ctx.run_dir("full"))}
    for k in SEED_OFFSETS:
        pairs[str(ctx.seed + k)] = (ctx.run_dir(f"lora-seed+{k}"), ctx.run_dir(f"full-seed+{k}"))
    return pairs


def correct(path: Path, metric: str = "exact_match") -> list[float]:
    """Per held-out word, 1.0 if the model's answer was right (a samples JSONL file, in word order)."""
    rows = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]
    return [float(bool(r[metric])) for r in sorted(rows, key=lambda r: r["index"])]


def section(ctx: StageContext) -> StageResult:
    runs = {m: read_json(ctx.run_dir(m) / "metrics.json") for m in METHODS}
    setup = load_yaml(ctx.run_dir("lora") / "config.yaml")      # the rows and settings every method used
    shots = int(load_yaml(config_path("reproduce/finetune", ctx.budget))["shots"])
    results = {**baselines(ctx, runs["lora"], setup, shots), **{m: method_row(runs[m]) for m in METHODS}}
    pairs = seed_pairs(ctx)
    seeds = {s: {"lora": correct(lo / "heldout_samples.jsonl"), "full": correct(fu / "heldout_samples.jsonl"),
                 "lora_pct": read_json(lo / "metrics.json")["trainable_pct"]} for s, (lo, fu) in pairs.items()}
    claim = decide_claim(correct(ctx.dir / "samples" / "zero-shot.jsonl"), seeds)
    table = markdown_table(results, shots, n_train=runs["lora"]["examples"], epochs=setup["num_train_epochs"],
                           batch=setup["per_device_train_batch_size"])
    seed_md = seeds_table(correct(ctx.dir / "samples" / "zero-shot.jsonl"), seeds)
    plot = plot_comparison(results, ctx.dir / "comparison.png", {m: ctx.run_dir(m) for m in METHODS})
    atomic_write_json(ctx.dir / "results.json", {"budget": ctx.budget, "task": runs["lora"]["eval_task"],
                                                 "shots": shots, "results": results, "claim": claim.to_dict()})
    atomic_write_text(ctx.dir / "table.md", table + "\n\n" + seed_md + "\n")
    res = ctx.rel(ctx.dir / "results.json")
    md = [INTRO, "", table, "",
          f"**LoRA against full fine-tuning, per training seed** (the same held-out words; the claim needs LoRA to "
          f"keep at least {KEEP:.0%} of full fine-tuning's gain over zero-shot on every seed):", "", seed_md, "",
          *figure(ctx.rel(plot), "accuracy by method and training loss",
                  "Look at: the LoRA bar next to the full fine-tuning bar (and how far both are above zero-shot); on "
                  "the right, the three loss curves falling in the same 16 steps."),
          f"Files: [{res}]({res}); each method's run folder (`{ctx.rel(ctx.run_dir('lora'))}` holds the LoRA "
          f"adapter). Re-run one method alone: `hfrepro sft --config recipes/configs/sft/lora/{ctx.budget}.yaml`; "
          f"the stage: `hfrepro reproduce --stages finetune --budget {ctx.budget}`."]
    metrics = {k: v["accuracy"] for k, v in results.items()}
    metrics.update({f"{k}_trainable_pct": results[k]["trainable_pct"] for k in METHODS})
    metrics.update({f"{k}_train_seconds": results[k]["train_seconds"] for k in METHODS})
    metrics["seeds"] = {s: {"lora": sum(v["lora"]) / len(v["lora"]), "full": sum(v["full"]) / len(v["full"])}
                        for s, v in seeds.items()}
    return StageResult(markdown="\n".join(md), claims={claim.claim: claim}, metrics=metrics)


def baselines(ctx: StageContext, lora: dict, setup: dict, shots: int) -> dict:
    """The base model on the fine-tuned models' held-out rows: with the task's instruction, 0 and `shots`
    demonstrations (no parameter update)."""
    tokenizer, model = load_tokenizer(setup["model_name_or_path"]), load_causal_lm(setup["model_name_or_path"])
    out = {}
    for name, k in (("zero-shot", 0), ("few-shot", shots)):
        r = task_accuracy(model, tokenizer, lora["eval_task"], limit=setup.get("eval_limit", 0),
                          seed=1234 + ctx.seed, shots=k, instruction=True,
                          batch_size=setup.get("per_device_eval_batch_size", 32))
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


# --- the claim ----------------------------------------------------------------------------------------------

def gain_ratios(zero, lora, full):
    """(LoRA's gain over zero-shot) / (full fine-tuning's gain) from per-word correctness; arrays of shape
    [..., words] give one ratio per leading index. A non-positive full gain gives -inf (nothing to keep)."""
    import numpy as np

    z, lo, fu = (np.asarray(a, dtype=float).mean(axis=-1) for a in (zero, lora, full))
    den = fu - z
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, (lo - z) / np.where(den > 0, den, 1.0), -np.inf)


def worst_seed_ratio(zero: list[float], seeds: dict[str, dict], *, seed: int = 0, n_boot: int = N_BOOT,
                     level: float = LEVEL) -> tuple[float, float, float]:
    """(estimate, lo, hi): the smallest per-seed gain ratio, and its bootstrap interval over the held-out words
    (the same resampled words for zero-shot and every seed's two models)."""
    import numpy as np

    z = np.asarray(zero, dtype=float)
    lora = np.asarray([v["lora"] for v in seeds.values()], dtype=float)   # [seeds, words]
    full = np.asarray([v["full"] for v in seeds.values()], dtype=float)
    if lora.shape[1] != z.size or full.shape != lora.shape:
        raise ValueError(f"every model must answer the same words: zero-shot {z.size}, LoRA {lora.shape}, "
                         f"full {full.shape}")
    est = float(gain_ratios(z, lora, full).min())
    idx = np.random.default_rng(seed).integers(0, z.size, size=(n_boot, z.size))
    by_resample = (1, 0, 2)                                                # [resamples, seeds, words]
    boots = gain_ratios(z[idx][:, None, :], lora[:, idx].transpose(by_resample),
                        full[:, idx].transpose(by_resample)).min(axis=1)
    lo, hi = np.quantile(boots, [(1 - level) / 2, 1 - (1 - level) / 2])
    return est, float(lo), float(hi)


def decide_claim(zero: list[float], seeds: dict[str, dict]) -> Decision:
    """`lora-near-full` by the rule of the module docstring. A LoRA with >= 1% trainable parameters is NOT
    REPRODUCED whatever its accuracy; when full fine-tuning did not beat zero-shot by MIN_GAIN on some seed there
    is nothing to keep a share of (INCONCLUSIVE)."""
    acc = {s: (sum(v["lora"]) / len(v["lora"]), sum(v["full"]) / len(v["full"])) for s, v in seeds.items()}
    zs = sum(zero) / len(zero)
    pct = max(v["lora_pct"] for v in seeds.values())
    per_seed = "; ".join(f"seed {s}: LoRA {a:.3f}, full {f:.3f}" for s, (a, f) in acc.items())
    evidence = (f"{per_seed}; zero-shot {zs:.3f}; {len(zero)} held-out words; LoRA trains {pct:.2f}% of the "
                "parameters")
    claim = "lora-near-full"
    if pct >= MAX_PCT:
        return decide(claim, "LoRA's trainable share of the parameters (%)", pct, pct, pct, MAX_PCT, higher=False,
                      uncertainty="exact", evidence=evidence)
    stat = f"LoRA gain / full gain over zero-shot, worst of {len(seeds)} training seeds"
    unc = f"bootstrap over the {len(zero)} held-out words, all models resampled together"
    if min(f for _, f in acc.values()) - zs < MIN_GAIN:
        return decide(claim, stat, math.nan, math.nan, math.nan, KEEP, uncertainty=unc,
                      evidence=evidence + f"; full fine-tuning did not beat zero-shot by {MIN_GAIN} on every seed")
    return decide(claim, stat, *worst_seed_ratio(zero, seeds), KEEP, uncertainty=unc, evidence=evidence)


def seeds_table(zero: list[float], seeds: dict[str, dict]) -> str:
    zs = sum(zero) / len(zero)
    rows = []
    for s, v in seeds.items():
        est, lo, hi = worst_seed_ratio(zero, {s: v})
        a, f = sum(v["lora"]) / len(v["lora"]), sum(v["full"]) / len(v["full"])
        rows.append({"training seed": s, "zero-shot": zs, "LoRA": a, "full": f,
                     "LoRA gain / full gain [95% interval]": f"{est:.3f} [{lo:.3f}, {hi:.3f}]",
                     f"keeps >= {KEEP:.0%}": "yes" if lo > KEEP else ("no" if hi < KEEP else "undecided")})
    return md_table(rows, digits=3)


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
            f"stage 6's evaluator (chance with a valid label: 0.25). Times are wall-clock seconds on this machine, "
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
