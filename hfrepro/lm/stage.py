"""Stage 2 of `hfrepro reproduce`: language models from counting to attention, on one corpus.

Every model is trained on the training split of Shakespeare's plays and scored on the same held-out
speeches, in bits per character (and per-word perplexity with one word count for all). The neural models
share one BPE tokenizer trained on their training text. Then: masked-token accuracy of a BERT, the
temperature study, the GPT/BERT parameter table, and the pipelines.

Budgets (seconds on a quiet 2-core machine, all models included): tiny <= 45, default <= 150; full is
sized for a GPU machine.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from hfrepro.claims import StageContext, StageResult

CORPUS = "shakespeare"
TEMPERATURES = (0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0)
PROMPTS = ("ROMEO:", "The king", "I pray you, sir,")


@dataclass
class Budget:
    test_chars: int              # held-out text A: every model but SmolLM2
    smol_chars: int              # held-out text B (the start of A): every model, SmolLM2 included
    val_chars: int               # validation text (bigram k, loss curves)
    neural_train_chars: int      # training text the neural models draw their blocks from (and the BPE)
    vocab: int
    block: int
    gpt: dict = field(default_factory=dict)
    lstm: dict = field(default_factory=dict)
    mlm: dict = field(default_factory=dict)
    smol_entropy_tokens: int = 256
    samples_per_prompt: int = 4
    sample_tokens: int = 40
    smol_samples: bool = False


BUDGETS = {
    "tiny": Budget(test_chars=6000, smol_chars=1000, val_chars=6000, neural_train_chars=300_000, vocab=1024,
                   block=64,
                   gpt=dict(max_steps=150, batch=8, lr=3e-3, n_layer=2, n_embd=64, n_head=2),
                   lstm=dict(max_steps=150, batch=8, lr=3e-3, d_model=128),
                   mlm=dict(max_steps=100, batch=8, lr=2e-3, n_layer=2, n_embd=64, n_head=2),
                   smol_entropy_tokens=64, samples_per_prompt=2, sample_tokens=20),
    "default": Budget(test_chars=30000, smol_chars=5000, val_chars=20000, neural_train_chars=1_500_000,
                      vocab=4096, block=128,
                      gpt=dict(max_steps=340, batch=8, lr=3e-3, n_layer=2, n_embd=128, n_head=2),
                      lstm=dict(max_steps=340, batch=8, lr=3e-3, d_model=192),
                      mlm=dict(max_steps=150, batch=8, lr=2e-3, n_layer=2, n_embd=128, n_head=2)),
    "full": Budget(test_chars=200_000, smol_chars=50_000, val_chars=100_000, neural_train_chars=None, vocab=8192,
                   block=256,
                   gpt=dict(max_steps=5000, batch=32, lr=1e-3, n_layer=6, n_embd=384, n_head=6),
                   lstm=dict(max_steps=5000, batch=32, lr=2e-3, d_model=768, n_layers=2),
                   mlm=dict(max_steps=3000, batch=32, lr=5e-4, n_layer=6, n_embd=384, n_head=6),
                   smol_entropy_tokens=2048, samples_per_prompt=8, sample_tokens=60, smol_samples=True),
}


def reproduce(ctx: StageContext) -> StageResult:
    from hfrepro.lm.text import load_corpus

    b = BUDGETS[ctx.budget]
    times: dict[str, float] = {}
    clock = _Clock(times)
    with clock("corpus"):
        corpus = load_corpus(CORPUS)
        test_docs = corpus.documents("test", b.test_chars, seed=ctx.seed)
        small_docs = _prefix(test_docs, b.smol_chars)
        val_docs = corpus.documents("validation", b.val_chars, seed=ctx.seed)
    rows, metrics = [], {"corpus": CORPUS, "test_chars": sum(map(len, test_docs)),
                         "smol_chars": sum(map(len, small_docs)), "documents": len(test_docs)}
    from hfrepro.lm.scoring import n_words
    words_a, words_b = n_words(test_docs), n_words(small_docs)

    # 1. n-grams, on all of the training text
    with clock("n-grams"):
        from hfrepro.lm.ngram import describe, fit_ladder, score_documents
        vocab, speller, ngrams, info = fit_ladder(corpus, min_count=2, kn_orders=(2, 3), val_docs=val_docs)
        for name in ("unigram", "bigram", "kn2", "kn3"):
            lm = ngrams[name]
            ra, rb = score_documents(lm, speller, test_docs), score_documents(lm, speller, small_docs)
            rows.append(_row(name, describe(name, lm), "all", None, ra, rb, words_a, words_b,
                             extra=f"OOV {ra['oov_rate']:.1%}"))
    metrics["ngram"] = {**info, "oov_rate": rows[0]["_a"]["oov_rate"]}

    # 2. one BPE for the neural models, trained on the text they learn from
    from hfrepro.lm.data import train_tokenizer
    with clock("tokenizer"):
        train_docs = corpus.documents("train", b.neural_train_chars, seed=ctx.seed)
        tok_dir = ctx.dir / "tokenizer"
        tok = train_tokenizer(train_docs, b.vocab, model_max_length=max(1024, b.block))
        tok.save_pretrained(str(tok_dir))
    common = dict(dataset=CORPUS, tokenizer=str(tok_dir), train_max_chars=b.neural_train_chars,
                  block_size=b.block, eval_max_chars=b.test_chars, val_max_chars=b.val_chars)

    # 3. LSTM (plain torch loop) and GPT (Trainer), same blocks, same scoring
    from hfrepro.lm.scoring import neural_bits
    with clock("lstm"):
        lstm_m, lstm_model = _train_lstm(ctx, b, common)
    with clock("gpt"):
        gpt_m, gpt_model = _train_gpt(ctx, b, common)
    for key, label, m, model in (("lstm", "LSTM", lstm_m, lstm_model), ("gpt", "GPT (GPT-2 architecture)", gpt_m, gpt_model)):
        ra = _neural(m)
        rb = neural_bits(model, tok, small_docs, b.block)
        rows.append(_row(key, f"{label}, {m['parameters'] / 1e6:.2f}M params", f"{m['tokens_seen']:,} tokens",
                         m["train_seconds"], ra, rb, words_a, words_b, extra=f"token ppl {ra['perplexity']:.1f}"))
    metrics["lstm"], metrics["gpt"] = _plain(lstm_m), _plain(gpt_m)

    # 4. SmolLM2-135M, as shipped (no training), on text B
    with clock("smollm2"):
        smol, smol_tok, smol_row = _smollm2(small_docs, words_b)
    if smol_row:
        rows.append(smol_row)

    # 5. BERT masked LM
    with clock("mlm"):
        mlm_m = _train_mlm(ctx, b, common)
    metrics["mlm"] = _plain(mlm_m)

    # 6. temperature study: our GPT (entropy + samples), SmolLM2 (entropy; samples in `full`)
    from hfrepro.lm.sampling import plot_study, temperature_study
    with clock("temperature"):
        studies = {"GPT (ours)": temperature_study(gpt_model, tok, test_docs, PROMPTS, TEMPERATURES,
                                                  entropy_tokens=4 * b.smol_entropy_tokens, max_length=b.block,
                                                  samples_per_prompt=b.samples_per_prompt,
                                                  max_new_tokens=b.sample_tokens, seed=ctx.seed)}
        if smol is not None:
            studies["SmolLM2-135M"] = temperature_study(
                smol, smol_tok, small_docs, PROMPTS, TEMPERATURES, entropy_tokens=b.smol_entropy_tokens,
                max_length=512, samples_per_prompt=b.samples_per_prompt, max_new_tokens=b.sample_tokens,
                seed=ctx.seed, sample=b.smol_samples)
        temp_png = ctx.dir / "temperature.png"
        plot_study(studies, temp_png)
    metrics["temperature"] = {k: [{x: y for x, y in r.items() if x != "example"} for r in v] for k, v in studies.items()}

    # 7. parameter counts of the published architectures
    from hfrepro.lm.arch import TOLERANCE, markdown as arch_md, table as arch_table
    with clock("arch"):
        arch = arch_table()
    metrics["arch"] = [{k: v for k, v in r.items()} for r in arch]

    # 8. pipelines with the trained models
    with clock("pipelines"):
        demo = _pipelines(ctx, gpt_model, tok, mlm_m)
    del smol

    # plots, tables, claims
    curves_png = ctx.dir / "training_curves.png"
    _plot_curves({"LSTM": ctx.dir / "lstm" / "log.jsonl", "GPT": ctx.dir / "gpt" / "log.jsonl"},
                 ctx.dir / "mlm" / "log.jsonl", curves_png)
    metrics["ppl_table"] = [{k: v for k, v in r.items() if not k.startswith("_")} for r in rows]
    metrics["seconds"] = times
    claims = {"lm-ppl-ladder": _ladder_claim(rows, metrics["test_chars"]),
              "lm-temperature-entropy": _entropy_claim(studies),
              "lm-arch-params": _arch_claim(arch, TOLERANCE)}
    md = _markdown(ctx, b, rows, metrics, mlm_m, studies, temp_png, curves_png, arch_md(arch), demo, times)
    return StageResult(markdown=md, claims=claims, metrics=metrics)


# --- pieces ---------------------------------------------------------------------------------------------

class _Clock:
    def __init__(self, times):
        self.times = times

    def __call__(self, name):
        clock = self

        class _C:
            def __enter__(self):
                self.t = time.time()
                print(f"[lm] {name} ...", flush=True)

            def __exit__(self, *exc):
                clock.times[name] = round(time.time() - self.t, 1)
        return _C()


def _prefix(docs: list[str], max_chars: int) -> list[str]:
    out, n = [], 0
    for d in docs:
        if n + len(d) > max_chars and out:
            break
        out.append(d)
        n += len(d)
    return out


def _row(key, label, trained_on, seconds, ra, rb, words_a, words_b, extra="") -> dict:
    return {"model": label, "training text": trained_on, "train s": seconds,
            "bits/char (A)": ra["bits_per_character"], "per-word ppl (A)": 2 ** (ra["bits"] / words_a),
            "bits/char (B)": rb["bits_per_character"] if rb else None,
            "per-word ppl (B)": 2 ** (rb["bits"] / words_b) if rb else None, "notes": extra,
            "_key": key, "_a": ra}


def _neural(m: dict) -> dict:
    return {k[len("test_"):]: v for k, v in m.items() if k.startswith("test_")}


def _plain(m: dict) -> dict:
    return {k: v for k, v in m.items() if isinstance(v, (int, float, str, bool, type(None)))}


def _train_lstm(ctx: StageContext, b: Budget, common: dict):
    from hfrepro.config import resolved
    from hfrepro.lm import lstm
    from hfrepro.lm.lstm import LSTMArguments

    g = b.lstm
    args = LSTMArguments(**common, output_dir=str(ctx.dir / "lstm"), d_model=g["d_model"],
                         n_layers=g.get("n_layers", 1), dropout=0.0, max_steps=g["max_steps"], batch_size=g["batch"],
                         learning_rate=g["lr"], warmup_steps=max(1, g["max_steps"] // 10),
                         logging_steps=max(1, g["max_steps"] // 40), eval_steps=max(1, g["max_steps"] // 4),
                         save_steps=max(1, g["max_steps"] // 2), seed=ctx.seed, threads=ctx.threads, overwrite=True)
    m = lstm.train(args, resolved(args), progress=False)
    return m, lstm.LSTMLM.from_pretrained(ctx.dir / "lstm" / "model")


def _targs(ctx, out: str, g: dict):
    from hfrepro.training import make_training_args
    steps = g["max_steps"]
    return make_training_args(
        output_dir=str(ctx.dir / out), max_steps=steps, per_device_train_batch_size=g["batch"],
        per_device_eval_batch_size=32, learning_rate=g["lr"], lr_scheduler_type="cosine",
        warmup_steps=max(1, steps // 10), weight_decay=0.01, adam_beta2=0.98, optim="adamw_torch",
        logging_steps=max(1, steps // 40), eval_strategy="steps", eval_steps=max(1, steps // 4),
        save_steps=max(1, steps // 2), seed=ctx.seed, disable_tqdm=True)


def _train_gpt(ctx: StageContext, b: Budget, common: dict):
    from transformers import AutoModelForCausalLM

    from hfrepro.config import resolved
    from hfrepro.lm import clm
    from hfrepro.lm.clm import CLMArguments

    g = b.gpt
    args = CLMArguments(**common, n_layer=g["n_layer"], n_embd=g["n_embd"], n_head=g["n_head"], dropout=0.0,
                        threads=ctx.threads, overwrite=True)
    targs = _targs(ctx, "gpt", g)
    m = clm.train(args, targs, resolved(args, targs))
    return m, AutoModelForCausalLM.from_pretrained(ctx.dir / "gpt" / "model").eval()


def _train_mlm(ctx: StageContext, b: Budget, common: dict) -> dict:
    from hfrepro.config import resolved
    from hfrepro.lm import mlm
    from hfrepro.lm.mlm import MLMArguments

    g = b.mlm
    args = MLMArguments(**common, n_layer=g["n_layer"], n_embd=g["n_embd"], n_head=g["n_head"], dropout=0.0,
                        threads=ctx.threads, overwrite=True)
    targs = _targs(ctx, "mlm", g)
    return mlm.train(args, targs, resolved(args, targs))


def _smollm2(docs: list[str], words: int):
    from hfrepro.errors import UserError
    from hfrepro.lm.scoring import neural_bits, start_token_for
    from hfrepro.models import load_causal_lm, load_tokenizer

    try:
        model, tok = load_causal_lm("smollm2-135m-instruct").eval(), load_tokenizer("smollm2-135m-instruct")
    except UserError as e:  # the asset is missing on this machine: say so in the table, do not fail the stage
        print(f"[lm] SmolLM2 not scored: {e.what}", flush=True)
        return None, None, None
    t = time.time()
    r = neural_bits(model, tok, docs, max_length=512, batch_size=2, start_token=start_token_for(tok))
    row = {"model": "SmolLM2-135M-Instruct (as shipped)", "training text": "its pretraining (~2T tokens)",
           "train s": None, "bits/char (A)": None, "per-word ppl (A)": None,
           "bits/char (B)": r["bits_per_character"], "per-word ppl (B)": 2 ** (r["bits"] / words),
           "notes": f"token ppl {r['perplexity']:.1f}; scored in {time.time() - t:.0f} s", "_key": "smollm2", "_a": None}
    return model, tok, row


def _pipelines(ctx, gpt_model, tok, mlm_m: dict) -> dict:
    from transformers import pipeline, set_seed

    set_seed(ctx.seed)
    gen = pipeline("text-generation", model=gpt_model, tokenizer=tok)
    text = gen("ROMEO:", max_new_tokens=30, do_sample=True, temperature=0.8, top_k=50, top_p=0.95,
               return_full_text=True)[0]["generated_text"]
    fill = pipeline("fill-mask", model=str(Path(mlm_m["model_dir"])))
    masked = "Good <mask>, my lord."
    preds = fill(masked, top_k=5)
    return {"generation": text, "masked": masked,
            "fills": [(p["token_str"], round(p["score"], 3)) for p in preds]}


def _plot_curves(logs: dict[str, Path], mlm_log: Path, path: Path) -> None:
    import json

    from hfrepro.report import pyplot, save_figure

    plt = pyplot()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.8))
    for name, f in logs.items():
        if not f.is_file():
            continue
        recs = [json.loads(x) for x in f.read_text().splitlines()]
        tr = [(r["tokens_seen"], r["loss"]) for r in recs if "loss" in r and r.get("tokens_seen")]
        ev = [(r["tokens_seen"], r["eval_loss"]) for r in recs if "eval_loss" in r and r.get("tokens_seen")]
        line, = ax1.plot(*zip(*tr), label=f"{name} train") if tr else (None,)
        if ev:
            ax1.plot(*zip(*ev), marker="o", linestyle="--", color=line.get_color() if line else None,
                     label=f"{name} validation")
    ax1.set(xlabel="training tokens", ylabel="cross-entropy (nats / token)", title="LSTM vs GPT, same tokenizer")
    if mlm_log.is_file():
        recs = [json.loads(x) for x in mlm_log.read_text().splitlines()]
        tr = [(r["tokens_seen"], r["loss"]) for r in recs if "loss" in r and r.get("tokens_seen")]
        ev = [(r["tokens_seen"], r["eval_loss"]) for r in recs if "eval_loss" in r and r.get("tokens_seen")]
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

def _ladder_claim(rows: list[dict], chars: int) -> tuple[str, bool]:
    by = {r["_key"]: r["bits/char (A)"] for r in rows}
    order = [("unigram", "unigram"), ("bigram", "bigram"), ("kn3", "Kneser-Ney 3-gram"), ("lstm", "LSTM"),
             ("gpt", "GPT")]
    parts, held, broken = [], True, []
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

def _markdown(ctx, b, rows, metrics, mlm_m, studies, temp_png, curves_png, arch_md, demo, times) -> str:
    from hfrepro.report import md_table

    n_a, n_b = metrics["test_chars"], metrics["smol_chars"]
    show = [{k: v for k, v in r.items() if not k.startswith("_")} for r in rows]
    lines = [
        f"Corpus: **{CORPUS}** (Shakespeare's plays, one speech per document, split 80/10/10 by speech). "
        "Every model trains on the training split and is scored on the same held-out speeches, each from a "
        "start-of-text state. **Normalisation: bits per character** = total -log2 P over every character of "
        "the held-out text (speeches and their newlines); per-word perplexity = 2^(total bits / words), with the "
        "same word count for every model (GPT-2-style pre-tokens + one end-of-line per speech). Word models "
        "pay for unknown words: -log2 P(<unk>) plus the word's spelling under a character model. Text A: "
        f"{n_a:,} characters ({metrics['documents']} speeches); text B: its first {n_b:,} characters, on which "
        "SmolLM2 is scored too.", "",
        md_table(show, digits=3),
        f"The n-gram models count all {metrics['ngram']['train_tokens']:,} training words "
        f"(vocabulary {metrics['ngram']['vocab_size']:,}, words seen once become <unk>; bigram k = "
        f"{metrics['ngram'].get('bigram_k')} chosen on validation); the neural models see the token count shown "
        f"within this budget (`{ctx.budget}`). LSTM and GPT share one {b.vocab}-token byte-level BPE.", "",
        f"![training curves]({ctx.rel(curves_png)})", "",
        "**BERT masked LM** (from scratch, same tokenizer, 15% of held-out tokens masked with a fixed seed):", "",
        md_table([{"model": mlm_m["model"], "parameters": mlm_m["parameters"], "steps": mlm_m["steps"],
                   "masked-token accuracy": mlm_m["masked_accuracy"],
                   "most-frequent-token baseline": mlm_m["majority_baseline_accuracy"],
                   "masked tokens": mlm_m["masked_tokens"]}], digits=3),
        f"`pipeline('fill-mask')` on \"{demo['masked']}\": "
        + ", ".join(f"`{t.strip()}` {s}" for t, s in demo["fills"]) + "", "",
        f"`pipeline('text-generation')` with our GPT (T=0.8, top-k 50, top-p 0.95): \"{demo['generation']}\"", "",
        "**Temperature study**: entropy of softmax(logits/T) averaged over held-out positions (bits; T=0 is greedy "
        "decoding, entropy 0) and distinct-n of sampled continuations (3 prompts).", "",
    ]
    trows = []
    for name, rs in studies.items():
        for r in rs:
            trows.append({"model": name, "T": r["temperature"], "entropy (bits)": r["entropy_bits"],
                          "distinct-1": r.get("distinct_1"), "distinct-2": r.get("distinct_2"),
                          "sample": (r.get("example") or "")[:80]})
    lines += [md_table(trows, digits=3), f"![temperature study]({ctx.rel(temp_png)})", "",
              "**Parameter counts** built on the meta device vs the published numbers:", "", arch_md,
              "Stage timings (s): " + ", ".join(f"{k} {v}" for k, v in times.items()), ""]
    return "\n".join(lines)
