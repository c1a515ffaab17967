"""Stage 2 of `hfrepro reproduce`: language models from counting to attention, on one corpus.

The recipes `ngram`, `lstm`, `clm` and `mlm` run at the budget's configs: every model trains on the training
split of Shakespeare's plays and is scored on the same held-out speeches (text A: the recipes'
`eval_max_chars`), in bits per character (and per-word perplexity with one word count for all). The neural
models share one BPE tokenizer: the LSTM run trains it, clm and mlm reuse it (`--tokenizer {stage}/lstm`).
Then the section scores the models and SmolLM2-135M (as shipped) on text B, the start of text A, runs the
temperature study, builds the GPT/BERT parameter table and the pipelines, and decides the claims. Its own
evaluation settings are in recipes/configs/reproduce/lm/<budget>.yaml.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from pathlib import Path

from hfrepro.claims import Claim, StageContext, StageResult
from hfrepro.config import config_path, load_yaml
from hfrepro.errors import UserError
from hfrepro.fsutil import read_json
from hfrepro.lm.arch import TOLERANCE
from hfrepro.lm.arch import markdown as arch_markdown
from hfrepro.lm.arch import table as arch_table
from hfrepro.lm.ngram import NgramLM, describe, score_documents
from hfrepro.lm.sampling import plot_study, temperature_study
from hfrepro.lm.scoring import load_lm, n_words, neural_bits, start_token_for
from hfrepro.lm.text import load_corpus
from hfrepro.report import md_table, pyplot, save_figure
from hfrepro.reproduce.plan import RecipeRun
from hfrepro.runtime import read_log

CLAIMS = [
    Claim("lm-ppl-ladder", "Perplexity falls from unigram to bigram to Kneser-Ney to LSTM to GPT"),
    Claim("lm-temperature-entropy", "Temperature raises the entropy of the next-token distribution"),
    Claim("lm-arch-params", "GPT-1/2/3 parameter counts follow from their layer and width numbers"),
]
RUNS = [
    RecipeRun("ngram"),
    RecipeRun("lstm"),                                          # trains the BPE tokenizer the others share
    RecipeRun("clm", args=("--tokenizer", "{stage}/lstm")),
    RecipeRun("mlm", args=("--tokenizer", "{stage}/lstm")),
]
TEMPERATURES = (0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0)
PROMPTS = ("ROMEO:", "The king", "I pray you, sir,")
SMOL, SMOL_CONTEXT = "smollm2-135m-instruct", 512


def section(ctx: StageContext) -> StageResult:
    settings = load_yaml(config_path("reproduce/lm", ctx.budget))
    runs = {name: (load_yaml(ctx.run_dir(name) / "config.yaml"), read_json(ctx.run_dir(name) / "metrics.json"))
            for name in ("ngram", "lstm", "clm", "mlm")}
    corpus, test_docs = _held_out(ctx, runs)
    small_docs = _prefix(test_docs, settings["smol_chars"])
    words = n_words(test_docs), n_words(small_docs)
    times: dict[str, float] = {}
    with _clock(times, "text B"):
        rows = _ngram_rows(ctx, runs["ngram"], small_docs, words)
        neural = {run: load_lm(str(ctx.run_dir(run))) for run in ("lstm", "clm")}
        rows += _neural_rows(runs, neural, small_docs, words)
    with _clock(times, "smollm2"):
        smol, smol_tok, smol_row = _smollm2(small_docs, words[1])
    rows += [smol_row] if smol_row else []
    with _clock(times, "temperature"):
        studies = _studies(ctx, settings, neural["clm"], runs["clm"][0]["block_size"], test_docs, small_docs,
                           smol, smol_tok)
        plot_study(studies, ctx.dir / "temperature.png")
    with _clock(times, "arch"):
        arch = arch_table()
    with _clock(times, "pipelines"):
        demo = _pipelines(ctx, *neural["clm"][:2])
    _plot_curves({"LSTM": ctx.run_dir("lstm"), "GPT": ctx.run_dir("clm")}, ctx.run_dir("mlm"),
                 ctx.dir / "training_curves.png")
    kn = f"kn{max(runs['ngram'][0]['kn_orders'])}"
    metrics = {
        "corpus": corpus, "test_chars": sum(map(len, test_docs)), "smol_chars": sum(map(len, small_docs)),
        "documents": len(test_docs),
        "ngram": {k: runs["ngram"][1][k] for k in ("vocab_size", "train_tokens", "bigram_k_validation_bpc",
                                                   "bigram_k")} | {"oov_rate": runs["ngram"][1]["unigram"]["oov_rate"]},
        "lstm": _plain(runs["lstm"][1]), "gpt": _plain(runs["clm"][1]), "mlm": _plain(runs["mlm"][1]),
        "temperature": {k: [{x: y for x, y in r.items() if x != "example"} for r in v] for k, v in studies.items()},
        "arch": arch, "ppl_table": [{k: v for k, v in r.items() if not k.startswith("_")} for r in rows],
        "seconds": {**_recipe_seconds(runs), **times}}
    claims = {"lm-ppl-ladder": _ladder_claim(rows, metrics["test_chars"], kn),
              "lm-temperature-entropy": _entropy_claim(studies),
              "lm-arch-params": _arch_claim(arch, TOLERANCE)}
    md = _markdown(ctx, rows, metrics, runs["mlm"][1], studies, arch_markdown(arch), demo)
    return StageResult(markdown=md, claims=claims, metrics=metrics)


# --- the held-out text and the rows of the ladder ---------------------------------------------------------

def _held_out(ctx: StageContext, runs: dict) -> tuple[str, list[str]]:
    """Text A: the held-out speeches every recipe scored (the same dataset, size and seed in all four)."""
    keys = {name: (cfg["dataset"], cfg["eval_max_chars"], cfg["seed"]) for name, (cfg, _) in runs.items()}
    if len(set(keys.values())) != 1:
        raise UserError(f"the stage's recipes scored different held-out texts: {keys}",
                        fix="give recipes/configs/{ngram,lstm,clm,mlm}/<budget>.yaml the same dataset and "
                            "eval_max_chars")
    dataset, chars, _ = keys["ngram"]
    return dataset, load_corpus(dataset).documents("test", chars, seed=ctx.seed)


def _prefix(docs: list[str], max_chars: int) -> list[str]:
    out, n = [], 0
    for d in docs:
        if n + len(d) > max_chars and out:
            break
        out.append(d)
        n += len(d)
    return out


def _row(key, label, trained_on, seconds, ra, rb, words, extra="") -> dict:
    return {"model": label, "training text": trained_on, "train s": seconds,
            "bits/char (A)": ra["bits_per_character"] if ra else None,
            "per-word ppl (A)": 2 ** (ra["bits"] / words[0]) if ra else None,
            "bits/char (B)": rb["bits_per_character"], "per-word ppl (B)": 2 ** (rb["bits"] / words[1]),
            "notes": extra, "_key": key}


def _ngram_rows(ctx: StageContext, run: tuple[dict, dict], small_docs: list[str], words) -> list[dict]:
    """Every n-gram model: text A as the recipe scored it, text B scored here."""
    cfg, m = run
    rows = []
    for name in ("unigram", "bigram", *(f"kn{n}" for n in cfg["kn_orders"])):
        lm, speller = NgramLM.from_pretrained(ctx.run_dir("ngram") / name)
        ra, rb = m[name], score_documents(lm, speller, small_docs)
        rows.append(_row(name, describe(lm), "all", None, ra, rb, words, extra=f"OOV {ra['oov_rate']:.1%}"))
    return rows


def _neural_rows(runs: dict, neural: dict, small_docs: list[str], words) -> list[dict]:
    rows = []
    for key, run, label in (("lstm", "lstm", "LSTM"), ("gpt", "clm", "GPT (GPT-2 architecture)")):
        cfg, m = runs[run]
        model, tok, _ = neural[run]
        ra = {k[len("test_"):]: v for k, v in m.items() if k.startswith("test_")}
        rb = neural_bits(model, tok, small_docs, cfg["block_size"])
        rows.append(_row(key, f"{label}, {m['parameters'] / 1e6:.2f}M params", f"{m['tokens_seen']:,} tokens",
                         m["train_seconds"], ra, rb, words, extra=f"token ppl {ra['perplexity']:.1f}"))
    return rows


def _smollm2(docs: list[str], words: int):
    """SmolLM2-135M as shipped, on text B; (None, None, None) when the asset is missing on this machine."""
    try:
        model, tok, _ = load_lm(SMOL)
    except UserError as e:  # say so in the table, do not fail the stage
        print(f"[lm] SmolLM2 not scored: {e.what}", flush=True)
        return None, None, None
    t = time.time()
    r = neural_bits(model, tok, docs, max_length=SMOL_CONTEXT, batch_size=2, start_token=start_token_for(tok))
    row = _row("smollm2", "SmolLM2-135M-Instruct (as shipped)", "its pretraining (~2T tokens)", None, None, r,
               (None, words), extra=f"token ppl {r['perplexity']:.1f}; scored in {time.time() - t:.0f} s")
    return model, tok, row


def _studies(ctx, settings: dict, gpt, block: int, test_docs, small_docs, smol, smol_tok) -> dict[str, list[dict]]:
    """Temperature study: our GPT (entropy + samples) on text A, SmolLM2 (entropy; samples if asked) on B."""
    model, tok, _ = gpt
    common = dict(samples_per_prompt=settings["samples_per_prompt"], max_new_tokens=settings["sample_tokens"],
                  seed=ctx.seed)
    studies = {"GPT (ours)": temperature_study(model, tok, test_docs, PROMPTS, TEMPERATURES, max_length=block,
                                               entropy_tokens=settings["gpt_entropy_tokens"], **common)}
    if smol is not None:
        studies["SmolLM2-135M"] = temperature_study(
            smol, smol_tok, small_docs, PROMPTS, TEMPERATURES, entropy_tokens=settings["smol_entropy_tokens"],
            max_length=SMOL_CONTEXT, sample=settings["smol_samples"], **common)
    return studies


def _pipelines(ctx: StageContext, gpt_model, tok) -> dict:
    from transformers import pipeline, set_seed

    set_seed(ctx.seed)
    gen = pipeline("text-generation", model=gpt_model, tokenizer=tok)
    text = gen("ROMEO:", max_new_tokens=30, do_sample=True, temperature=0.8, top_k=50, top_p=0.95,
               return_full_text=True)[0]["generated_text"]
    fill = pipeline("fill-mask", model=str(ctx.run_dir("mlm")))
    masked = "Good <mask>, my lord."
    return {"generation": text, "masked": masked,
            "fills": [(p["token_str"], round(p["score"], 3)) for p in fill(masked, top_k=5)]}


def _plain(m: dict) -> dict:
    return {k: v for k, v in m.items() if isinstance(v, (int, float, str, bool, type(None)))}


def _recipe_seconds(runs: dict) -> dict[str, float]:
    return {"ngram fit": runs["ngram"][1]["fit_seconds"], "lstm train": runs["lstm"][1]["train_seconds"],
            "gpt train": runs["clm"][1]["train_seconds"], "mlm train": runs["mlm"][1]["train_seconds"]}


@contextmanager
def _clock(times: dict, name: str):
    t = time.time()
    print(f"[lm] {name} ...", flush=True)
    yield
    times[name] = round(time.time() - t, 1)


def _curve(log: Path, key: str) -> list[tuple]:
    return [(r["tokens_seen"], r[key]) for r in read_log(log) if key in r and r.get("tokens_seen")]


def _plot_curves(runs: dict[str, Path], mlm_run: Path, path: Path) -> None:
    plt = pyplot()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.8))
    for name, run in runs.items():
        tr, ev = _curve(run / "log.jsonl", "loss"), _curve(run / "log.jsonl", "eval_loss")
        line, = ax1.plot(*zip(*tr), label=f"{name} train") if tr else (None,)
        if ev:
            ax1.plot(*zip(*ev), marker="o", linestyle="--", color=line.get_color() if line else None,
                     label=f"{name} validation")
    ax1.set(xlabel="training tokens", ylabel="cross-entropy (nats / token)", title="LSTM vs GPT, same tokenizer")
    tr, ev = _curve(mlm_run / "log.jsonl", "loss"), _curve(mlm_run / "log.jsonl", "eval_loss")
    if tr:
        ax2.plot(*zip(*tr), label="BERT train")
    if ev:
        ax2.plot(*zip(*ev), marker="o", linestyle="--", label="BERT validation")
    ax2.set(xlabel="training tokens", ylabel="masked-token cross-entropy (nats)", title="BERT masked LM")
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    save_figure(fig, path)


# --- claims ---------------------------------------------------------------------------------------------

def _ladder_claim(rows: list[dict], chars: int, kn: str) -> tuple[str, bool]:
    by = {r["_key"]: r["bits/char (A)"] for r in rows}
    order = [("unigram", "unigram"), ("bigram", "bigram"), (kn, f"Kneser-Ney {kn[2:]}-gram"), ("lstm", "LSTM"),
             ("gpt", "GPT")]
    held, broken = True, []
    for (k1, n1), (k2, n2) in zip(order, order[1:]):
        ok = by[k1] > by[k2]
        held &= ok
        if not ok:
            broken.append(f"{n2} ({by[k2]:.3f}) is not below {n1} ({by[k1]:.3f})")
    parts = f"{order[0][1]} {by[order[0][0]]:.3f}"
    for (k1, _), (k2, n2) in zip(order, order[1:]):  # the sign says what was measured, not what was expected
        parts += f" {'>' if by[k1] > by[k2] else '<='} {n2} {by[k2]:.3f}"
    ev = f"bits/char on {chars:,} held-out characters: {parts}"
    if broken:
        ev += "; broken: " + "; ".join(broken)
    return ev, held


def _entropy_claim(studies: dict[str, list[dict]]) -> tuple[str, bool]:
    held, parts = True, []
    for name, rows in studies.items():
        hs = [r["entropy_bits"] for r in rows]
        inc = all(a < b for a, b in zip(hs, hs[1:]))
        held &= inc
        parts.append(f"{name}: " + ", ".join(f"T={r['temperature']:g}: {r['entropy_bits']:.2f}" for r in rows)
                     + ("" if inc else " (not increasing)"))
    return "mean next-token entropy (bits) on held-out text; " + "; ".join(parts), held


def _arch_claim(arch: list[dict], tol: float) -> tuple[str, bool]:
    worst = max(arch, key=lambda r: abs(r["diff %"]))
    held = all(r["within tolerance"] for r in arch)
    return (f"{len(arch)} architectures built on the meta device; largest difference {worst['model']} "
            f"{worst['diff %']:+.2f}% ({worst['computed']} vs {worst['published']}); GPT-3 175B "
            f"{next(r['computed'] for r in arch if r['model'] == 'GPT-3 175B')}; tolerance {tol:.0%}", held)


# --- the section ----------------------------------------------------------------------------------------

def _markdown(ctx, rows, metrics, mlm_m, studies, arch_md, demo) -> str:
    n_a, n_b, ng = metrics["test_chars"], metrics["smol_chars"], metrics["ngram"]
    show = [{k: v for k, v in r.items() if not k.startswith("_")} for r in rows]
    lines = [
        f"Corpus: **{metrics['corpus']}** (Shakespeare's plays, one speech per document, split 80/10/10 by speech). "
        "Every model trains on the training split and is scored on the same held-out speeches, each from a "
        "start-of-text state. **Normalisation: bits per character** = total -log2 P over every character of "
        "the held-out text (speeches and their newlines); per-word perplexity = 2^(total bits / words), with the "
        "same word count for every model (GPT-2-style pre-tokens + one end-of-line per speech). Word models "
        "pay for unknown words: -log2 P(<unk>) plus the word's spelling under a character model. Text A: "
        f"{n_a:,} characters ({metrics['documents']} speeches); text B: its first {n_b:,} characters, on which "
        "SmolLM2 is scored too.", "",
        md_table(show, digits=3),
        f"The n-gram models count all {ng['train_tokens']:,} training words (vocabulary {ng['vocab_size']:,}, "
        f"words seen once become <unk>; bigram k = {ng.get('bigram_k')} chosen on validation); the neural models "
        f"see the token count shown within this budget (`{ctx.budget}`). LSTM and GPT share one "
        f"{metrics['lstm']['vocab_size']}-token byte-level BPE.", "",
        f"![training curves]({ctx.rel(ctx.dir / 'training_curves.png')})", "",
        "**BERT masked LM** (from scratch, same tokenizer, 15% of held-out tokens masked with a fixed seed):", "",
        md_table([{"model": mlm_m["model"], "parameters": mlm_m["parameters"], "steps": mlm_m["steps"],
                   "masked-token accuracy": mlm_m["masked_accuracy"],
                   "most-frequent-token baseline": mlm_m["majority_baseline_accuracy"],
                   "masked tokens": mlm_m["masked_tokens"]}], digits=3),
        f"`pipeline('fill-mask')` on \"{demo['masked']}\": "
        + ", ".join(f"`{t.strip()}` {s}" for t, s in demo["fills"]), "",
        f"`pipeline('text-generation')` with our GPT (T=0.8, top-k 50, top-p 0.95): \"{demo['generation']}\"", "",
        "**Temperature study**: entropy of softmax(logits/T) averaged over held-out positions (bits; T=0 is greedy "
        "decoding, entropy 0) and distinct-n of sampled continuations (3 prompts).", "",
    ]
    trows = [{"model": name, "T": r["temperature"], "entropy (bits)": r["entropy_bits"],
              "distinct-1": r.get("distinct_1"), "distinct-2": r.get("distinct_2"),
              "sample": (r.get("example") or "")[:80]} for name, rs in studies.items() for r in rs]
    lines += [md_table(trows, digits=3), f"![temperature study]({ctx.rel(ctx.dir / 'temperature.png')})", "",
              "**Parameter counts** built on the meta device vs the published numbers:", "", arch_md,
              "Timings (s): " + ", ".join(f"{k} {v}" for k, v in metrics["seconds"].items()), ""]
    return "\n".join(lines)
