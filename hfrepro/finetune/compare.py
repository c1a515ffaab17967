"""The stage-5 comparison: one task of stage 4's kind, the same data and the same training budget, five ways.

    zero-shot    the base model, the task's instruction and the question only (stage 4's evaluator, k=0)
    few-shot     the same with k demonstrations from the training rows in the prompt (stage 4's evaluator)
    head-only    transfer learning: untied output layer + final norm trained, body frozen
    LoRA         rank-8 adapters on the attention projections, base frozen
    full         every parameter trained

The task is `word_class` (hfrepro/finetune/tasks/word_class.yaml, a stage-4 multiple-choice YAML): the part of
speech of an English word, 4 choices scored by log-likelihood. Its `train` rows are the few-shot
demonstration pool and the fine-tuning data (prompt = instruction + question exactly as the evaluator writes
it, completion = " " + answer); its `test` rows are held out. Every fine-tuned model is then scored by the
same evaluator at k=0, so all five rows of the table are measured the same way.

The single evaluation function is `evaluate_accuracy` (stage 4's `hfrepro.fewshot.evaluate`).
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from hfrepro.finetune.sft import LoraSettings

TASK_FILE = Path(__file__).resolve().parent / "tasks" / "word_class.yaml"
METHOD_ORDER = ("head", "lora", "full")
COMPARE_LR = {"head": 3e-2, "lora": 5e-3, "full": 1e-4}   # best on validation; 16 short steps want big ones
LABELS = {"zero-shot": "zero-shot (base)", "few-shot": "few-shot (base, k={k})", "head": "head-only",
          "lora": "LoRA", "full": "full fine-tuning"}


@dataclass
class CompareSettings:
    model: str = "smollm2-135m-instruct"
    task: str = "word_class"    # a task YAML in hfrepro/finetune/tasks/, or a path
    n_train: int = 512          # training rows (the first n of the task's train split; the other 88 validate)
    n_test: int = 120           # held-out rows scored
    shots: int = 8              # few-shot baseline
    epochs: float = 1.0         # the same for every method
    batch_size: int = 32
    # chosen on the 88 validation words (bench/sft_lr_sweep.py; docs/finetune.md), not on the test words
    learning_rate: dict = field(default_factory=lambda: dict(COMPARE_LR))
    lora_r: int = 8
    lora_alpha: int = 16
    seed: int = 0
    save_models: bool = False   # write each trained model folder (GPU budget); otherwise only LoRA's adapter
    eval_batch_size: int = 32


BUDGETS = {
    # CI smoke size: a few steps, a small held-out set (the numbers are noisy at this size).
    "tiny": dict(n_train=64, n_test=32, shots=4, epochs=1.0, batch_size=32),
    # 2 CPU cores, about 110 s for the whole comparison: 16 steps of 32 rows.
    "default": dict(n_train=512, n_test=120, shots=8, epochs=1.0, batch_size=32),
    # a GPU: the same 512 rows for 3 epochs, the whole held-out set, every model saved.
    "full": dict(n_train=512, n_test=240, shots=8, epochs=3.0, batch_size=32, save_models=True),
}


def task_path(name: str) -> str:
    p = TASK_FILE.parent / f"{name}.yaml"
    return str(p) if p.is_file() else name


def settings_for(budget: str, **over) -> CompareSettings:
    return CompareSettings(**{**BUDGETS[budget], **over})


# --- the one evaluation step ----------------------------------------------------------------------------

def evaluate_accuracy(model, tokenizer, task, shots: int, limit: int, seed: int, batch_size: int = 32) -> dict:
    """Held-out accuracy of `model` on `task` with `shots` demonstrations, by stage 4's evaluator.

    Returns {"accuracy": acc (the task's headline metric), "n": ..., "seconds": ..., "cpu_seconds": ...,
    "scores": {...}, "samples": [every prompt, answer and prediction]}.
    """
    from hfrepro.fewshot import evaluate

    t0, c0 = time.time(), time.process_time()
    res = evaluate(model, [task], shots=[shots], tokenizer=tokenizer, limit=limit, seed=1234 + seed,
                   batch_size=batch_size, progress=False)
    score = res.scores[task.name][shots]
    return {"accuracy": float(score[task.primary_metric]), "n": int(score["n"]),
            "seconds": round(time.time() - t0, 2), "cpu_seconds": round(time.process_time() - c0, 2),
            "scores": score, "samples": res.samples[task.name][shots]}


def _save_samples(out: Path, name: str, r: dict) -> None:
    import json

    from hfrepro.fsutil import atomic_write_text
    atomic_write_text(out / "samples" / f"{name}.jsonl",
                      "".join(json.dumps(x, ensure_ascii=False) + "\n" for x in r["samples"]))


# --- data -----------------------------------------------------------------------------------------------

def training_rows(task, n: int) -> list[dict]:
    """prompt/completion rows from the task's demo (train) split, formatted as the evaluator writes a
    question and its answer: prompt = question ("executable ->"), completion = target delimiter + answer.

    No instruction line: a fine-tuned model learns the task from the examples (it is queried the way it was
    trained, see `finetuned_task`), and the 17-token instruction would triple the tokens of every step."""
    rows = task.demo_rows()[:n]
    return [{"prompt": task.question(r), "completion": task.target_delimiter + task.target(r)} for r in rows]


def finetuned_task(task):
    """The task as fine-tuned models are scored: the same test rows and template, no instruction line."""
    import dataclasses
    return dataclasses.replace(task, instruction="")


# --- the comparison -------------------------------------------------------------------------------------

def run_comparison(out: Path, budget: str = "default", model: str | None = None, seed: int = 0,
                   settings: CompareSettings | None = None, echo: bool = True) -> dict:
    """Run the five conditions; write results.json, table.md, comparison.png under `out`; return the results
    (with "markdown", "rows", "claim")."""
    from hfrepro.fewshot import load_task
    from hfrepro.finetune.memory import release_memory
    from hfrepro.finetune.sft import build_trainer, fit, save
    from hfrepro.fsutil import atomic_write_json, atomic_write_text
    from hfrepro.models import load_causal_lm, load_tokenizer, resolve

    st = settings or settings_for(budget, **({"model": model} if model else {}), seed=seed)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    say = (lambda m: print(f"[finetune] {m}", flush=True)) if echo else (lambda m: None)
    task = load_task(task_path(st.task))
    path = resolve(st.model)
    tok = load_tokenizer(path)
    rows = training_rows(task, st.n_train)
    results: dict[str, dict] = {}

    # baselines: the base model, no parameter update
    base = load_causal_lm(path)
    for name, k in (("zero-shot", 0), ("few-shot", st.shots)):
        r = evaluate_accuracy(base, tok, task, k, st.n_test, st.seed, st.eval_batch_size)
        results[name] = {"accuracy": r["accuracy"], "n_test": r["n"], "eval_seconds": r["seconds"],
                         "eval_cpu_seconds": r["cpu_seconds"], "trainable_params": 0, "trainable_pct": 0.0,
                         "shots": k}
        _save_samples(out, name, r)
        say(f"{name}: accuracy {r['accuracy']:.3f} on {r['n']} held-out words ({r['seconds']:.1f}s)")
    total_base = sum(p.numel() for p in base.parameters())
    del base
    release_memory()

    # the three fine-tuning methods: same rows, same epochs, same batch size; the method's learning rate
    for method in METHOD_ORDER:
        lr = st.learning_rate[method]
        model_obj = load_causal_lm(path)
        kw = dict(num_train_epochs=st.epochs, per_device_train_batch_size=st.batch_size, learning_rate=lr,
                  seed=st.seed, data_seed=st.seed, max_length=128, logging_steps=1,
                  save_strategy="epoch" if st.save_models else "no")
        s = build_trainer(model_obj, rows, method=method, run_dir=out / "runs" / method, tokenizer=tok,
                          lora=LoraSettings(r=st.lora_r, alpha=st.lora_alpha), overwrite=True, echo=False,
                          config={"comparison": asdict(st), "method": method}, **kw)
        c0 = time.process_time()
        m = fit(s)
        m["train_cpu_seconds"] = round(time.process_time() - c0, 2)
        if st.save_models or method == "lora":
            m = save(s, m, card={"datasets": ["word_class (hfrepro stage 5)"]})
        else:
            s.run.write_metrics(m)
        trained = s.trainer.model
        r = evaluate_accuracy(trained, tok, finetuned_task(task), 0, st.n_test, st.seed, st.eval_batch_size)
        _save_samples(out, method, r)
        results[method] = {"accuracy": r["accuracy"], "n_test": r["n"], "eval_seconds": r["seconds"],
                           "eval_cpu_seconds": r["cpu_seconds"], "learning_rate": lr, **{k: m[k] for k in (
                               "trainable_params", "total_params", "trainable_pct", "train_seconds",
                               "train_cpu_seconds",
                               "peak_memory_bytes", "train_loss", "first_loss", "last_loss", "tokens_seen",
                               "steps", "flops_estimate") if k in m}}
        say(f"{method}: accuracy {r['accuracy']:.3f}, {m['trainable_params']:,} trainable "
            f"({m['trainable_pct']:.2f}%), {m['train_seconds']:.1f}s, peak {m['peak_memory_bytes'] / 2**30:.2f} GiB")
        del trained, s, model_obj
        release_memory()

    claim = decide(results)
    table = markdown_table(results, st)
    plot = plot_comparison(results, out / "comparison.png", out / "runs")
    doc = {"settings": asdict(st), "budget": budget, "task": task.name, "n_train_rows": len(rows),
           "base_params": total_base, "results": results, "claim": claim, "table": table}
    atomic_write_json(out / "results.json", doc)
    atomic_write_text(out / "table.md", table + "\n" + claim["sentence"] + "\n")
    doc["markdown"] = table + "\n" + claim["sentence"] + "\n"
    doc["plot"] = str(plot)
    return doc


# --- verdict, table, plot -------------------------------------------------------------------------------

TOLERANCE = 0.05       # "close": LoRA's held-out accuracy within 5 points of full fine-tuning's (or above)
MIN_GAIN = 0.05        # the comparison only means something if full fine-tuning learnt the task


def decide(results: dict) -> dict:
    """Does 'LoRA ~ full with < 1% trainable parameters' hold? held is None when full fine-tuning did not beat
    the zero-shot baseline by MIN_GAIN (then 'close to full' would say nothing)."""
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
                        f"{lora['accuracy']:.3f} vs full {full['accuracy']:.3f} held-out accuracy (n={full['n_test']}).")
    return {"held": held, "evidence": evidence, "sentence": sentence, "gap": gap, "lora_pct": pct}


def markdown_table(results: dict, st: CompareSettings) -> str:
    from hfrepro.report import md_table

    rows = []
    for key in ("zero-shot", "few-shot", *METHOD_ORDER):
        r = results[key]
        name = LABELS[key].format(k=st.shots)
        mem = r.get("peak_memory_bytes")
        rows.append({
            "method": name,
            "held-out accuracy": r["accuracy"],
            "trainable params": r.get("trainable_params", 0),
            "trainable %": r.get("trainable_pct", 0.0),
            "train time (s)": r.get("train_seconds"),
            "eval time (s)": r.get("eval_seconds"),
            "peak memory (GiB)": mem / 2**30 if mem else None,
            "learning rate": r.get("learning_rate"),
            "final train loss": r.get("last_loss"),
        })
    head = (f"Task `word_class` (the part of speech of an English word: noun, verb, adjective or adverb), "
            f"{results['zero-shot']['n_test']} held-out words; {st.n_train} training words, {st.epochs:g} epoch(s) "
            f"of batch {st.batch_size}, the same for every method. Accuracy = exact match of the greedy answer, by "
            f"stage 4's evaluator (chance with a valid label: 0.25). Times are wall-clock seconds on this machine, "
            f"{_threads()} torch thread(s).\n\n")
    return head + md_table(rows, digits=4)


def _threads() -> int:
    import torch
    return torch.get_num_threads()


def plot_comparison(results: dict, path: Path, runs: Path) -> Path:
    import json

    from hfrepro.report import pyplot, save_figure

    plt = pyplot()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4))
    keys = ["zero-shot", "few-shot", *METHOD_ORDER]
    accs = [results[k]["accuracy"] for k in keys]
    names = ["zero-shot", f"few-shot\n(k={results['few-shot'].get('shots')})", "head-only", "LoRA", "full"]
    bars = a1.bar(names, accs, color=["#999", "#bbb", "#6a9fd4", "#e3883c", "#4a9a5a"])
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
    for k, c in zip(METHOD_ORDER, ["#6a9fd4", "#e3883c", "#4a9a5a"]):
        f = runs / k / "log.jsonl"
        if not f.is_file():
            continue
        pts = [json.loads(x) for x in f.read_text().splitlines() if x.strip()]
        pts = [(p["step"], p["loss"]) for p in pts if isinstance(p.get("loss"), (int, float))]
        if pts:
            a2.plot(*zip(*pts), label=LABELS[k], color=c)
    a2.set_xlabel("step")
    a2.set_ylabel("training loss (completion tokens)")
    a2.set_title("training loss")
    a2.legend()
    return save_figure(fig, path)
