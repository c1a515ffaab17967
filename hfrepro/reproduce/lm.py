"""Stage 2 of `hfrepro reproduce`: language models from counting to attention, on one held-out text.

The recipes `ngram`, `lstm` and `clm` run at the budget's configs: every model trains on the training split of
Shakespeare's plays and is scored on the same held-out speeches (the recipes' `eval_max_chars`), in bits per
character. The LSTM and the GPT share one BPE tokenizer (the LSTM run trains it; `clm --tokenizer {stage}/lstm`).
Then the section scores every model, document by document, on that one text, plus the pretrained SmolLM2-135M
(the same kind of model at scale; it reads a few training speeches first, as a prompt, so that it knows what
text this is), decides the ladder with one bootstrap over documents, runs the temperature study (samples of our
GPT, judged by SmolLM2) and builds the GPT parameter table. Its own settings: recipes/configs/reproduce/lm/.

Claims:
    lm-ppl-ladder               unigram > bigram > Kneser-Ney > LSTM > GPT > SmolLM2 in bits/char: the
                                smallest step > 0 (bootstrap over documents, all rungs resampled together)
    lm-temperature-diversity    distinct-2 of samples at the highest T - at T = 0 (greedy) > 0
    lm-temperature-likelihood   SmolLM2 bits/char of samples at the highest T - at T = 0 > 0
    lm-arch-params              GPT-1/2/3 parameter counts built from their shapes within 3% of the papers
"""

from __future__ import annotations

import math
import time
from pathlib import Path

from hfrepro.claims import Claim, StageContext, StageResult, bootstrap, decide, paired_bootstrap
from hfrepro.config import config_path, load_yaml
from hfrepro.errors import UserError
from hfrepro.fsutil import read_json
from hfrepro.lm.arch import ARCHS, TOLERANCE
from hfrepro.lm.arch import markdown as arch_markdown
from hfrepro.lm.arch import table as arch_table
from hfrepro.lm.ladder import ladder_bootstrap
from hfrepro.lm.ngram import NgramLM, describe, score_documents
from hfrepro.lm.sampling import generate, per_prompt, plot_study, prompts_from, temperature_study
from hfrepro.lm.scoring import load_lm, neural_bits, start_token_for
from hfrepro.lm.text import load_corpus
from hfrepro.report import figure, md_table, pyplot, save_figure
from hfrepro.reproduce.plan import RecipeRun, timed
from hfrepro.runtime import read_log

CLAIMS = [
    Claim("lm-ppl-ladder", "Perplexity falls from unigram to bigram to Kneser-Ney to LSTM to GPT to a pretrained "
                           "GPT-style model (SmolLM2-135M)"),
    Claim("lm-temperature-diversity", "Sampling at a higher temperature gives more diverse text (distinct-2)"),
    Claim("lm-temperature-likelihood", "Sampling at a higher temperature gives text a pretrained model finds "
                                       "less likely"),
    Claim("lm-arch-params", "GPT-1/2/3 parameter counts follow from their layer and width numbers"),
]
RUNS = [
    RecipeRun("ngram"),
    RecipeRun("lstm"),                                          # trains the BPE tokenizer the GPT shares
    RecipeRun("clm", args=("--tokenizer", "{stage}/lstm")),
]
SMOL, SMOL_CONTEXT = "smollm2-135m-instruct", 1024


def section(ctx: StageContext) -> StageResult:
    settings = load_yaml(config_path("reproduce/lm", ctx.budget))
    runs = {name: (load_yaml(ctx.run_dir(name) / "config.yaml"), read_json(ctx.run_dir(name) / "metrics.json"))
            for name in ("ngram", "lstm", "clm")}
    corpus, docs = _held_out(ctx, runs)
    times: dict[str, float] = {}
    with timed(times, "scoring", "lm"):
        rungs = _ngram_rungs(ctx, runs["ngram"][0], docs)
        gpt = load_lm(str(ctx.run_dir("clm")))
        rungs += _neural_rungs(ctx, runs, gpt, docs)
    with timed(times, "smollm2", "lm"):
        smol, smol_rungs, context = _smollm2(ctx, settings, corpus, docs)
    chars = [len(d) for d in docs]
    steps, joint = ladder_bootstrap([(r["key"], r["document_bits"]) for r in rungs + smol_rungs[:1]], chars,
                                    seed=ctx.seed)
    with timed(times, "temperature", "lm"):
        study = _temperature(ctx, settings, gpt, docs, smol)
    with timed(times, "arch", "lm"):
        arch = arch_table([a for a in ARCHS if a.family != "bert"])
    demo = generate(gpt[0], gpt[1], "ROMEO:", temperature=0.8, top_k=50, top_p=0.95, max_new_tokens=30,
                    seed=ctx.seed)[0]
    _plot_curves(ctx, runs, rungs, ctx.dir / "training_curves.png")
    rows = rungs + smol_rungs
    metrics = {
        "corpus": corpus, "documents": len(docs), "test_chars": sum(chars), "smol_context_chars": len(context or ""),
        "ladder": [{k: v for k, v in r.items() if k != "document_bits"} for r in rows], "steps": steps,
        "lstm": _plain(runs["lstm"][1]), "gpt": _plain(runs["clm"][1]),
        "temperature": study["summary"], "greedy_check": study["greedy_check"], "arch": arch,
        "seconds": {**_recipe_seconds(runs), **times}}
    claims = {"lm-ppl-ladder": _ladder_claim(steps, joint, len(docs)),
              **study["claims"], "lm-arch-params": _arch_claim(arch, TOLERANCE)}
    md = _markdown(ctx, rows, steps, metrics, study, arch_markdown(arch), demo, runs)
    return StageResult(markdown=md, claims=claims, metrics=metrics)


# --- the held-out text and the rungs of the ladder -------------------------------------------------------

def _held_out(ctx: StageContext, runs: dict) -> tuple[str, list[str]]:
    """The held-out speeches every recipe scored (the same dataset, size and seed in all three)."""
    keys = {name: (cfg["dataset"], cfg["eval_max_chars"], cfg["seed"]) for name, (cfg, _) in runs.items()}
    if len(set(keys.values())) != 1:
        raise UserError(f"the stage's recipes scored different held-out texts: {keys}",
                        fix="give recipes/configs/{ngram,lstm,clm}/<budget>.yaml the same dataset and "
                            "eval_max_chars")
    dataset, chars, _ = keys["ngram"]
    return dataset, load_corpus(dataset).documents("test", chars, seed=ctx.seed)


def _rung(key: str, label: str, trained_on: str, r: dict, notes: str = "", seconds=None) -> dict:
    return {"key": key, "model": label, "training text": trained_on, "train s": seconds,
            "bits/char": r["bits"] / r["chars"], "notes": notes, "document_bits": r["document_bits"]}


def _ngram_rungs(ctx: StageContext, cfg: dict, docs: list[str]) -> list[dict]:
    """unigram, bigram and the highest-order Kneser-Ney model, each document scored on its own."""
    out = []
    for name in ("unigram", "bigram", f"kn{max(cfg['kn_orders'])}"):
        lm, speller = NgramLM.from_pretrained(ctx.run_dir("ngram") / name)
        r = score_documents(lm, speller, docs)
        out.append(_rung(name, describe(lm), "all of it", r, notes=f"OOV {r['oov_rate']:.1%}"))
    return out


def _neural_rungs(ctx: StageContext, runs: dict, gpt, docs: list[str]) -> list[dict]:
    out = []
    gpt_label = f"GPT ({runs['clm'][0]['architecture']} architecture)"
    for key, run, label, loaded in (("lstm", "lstm", "LSTM", None), ("gpt", "clm", gpt_label, gpt)):
        cfg, m = runs[run]
        model, tok, _ = loaded or load_lm(str(ctx.run_dir(run)))
        r = neural_bits(model, tok, docs, cfg["block_size"])
        out.append(_rung(key, f"{label}, {m['parameters'] / 1e6:.2f}M params", f"{m['tokens_seen']:,} tokens", r,
                         notes=f"token ppl {r['perplexity']:.1f}", seconds=m["train_seconds"]))
    return out


def _smollm2(ctx: StageContext, settings: dict, corpus: str, docs: list[str]):
    """SmolLM2-135M on the same text: after a context of training speeches (the rung), and as shipped on a
    prefix of the text (for the record). ((model, tokenizer, start), rungs, context); no rungs when the asset
    is missing on this machine."""
    try:
        model, tok, _ = load_lm(SMOL)
    except UserError as e:  # say so in the table, do not fail the stage
        print(f"[lm] SmolLM2 not scored: {e.what}", flush=True)
        return None, [], None
    start = start_token_for(tok)
    context = "".join(load_corpus(corpus).documents("train", settings["smol_context_chars"], seed=ctx.seed))
    t = time.time()
    r = neural_bits(model, tok, docs, SMOL_CONTEXT, batch_size=4, start_token=start, context=context)
    rungs = [_rung("smollm2", "SmolLM2-135M-Instruct (as shipped) after a prompt of training speeches",
                   "its pretraining (~2T tokens)", r,
                   notes=f"prompt {len(context):,} characters, not scored; scored in {time.time() - t:.0f} s")]
    n = settings["smol_plain_documents"]
    if n:
        plain = neural_bits(model, tok, docs[:n], SMOL_CONTEXT, batch_size=4, start_token=start)
        rungs.append({**_rung("smollm2-plain", f"SmolLM2-135M-Instruct, no prompt (first {n} speeches only)",
                              "its pretraining", plain), "bits/char": plain["bits_per_character"],
                      "notes": "for the record; not a rung"})
    return (model, tok, start), rungs, context


# --- temperature ---------------------------------------------------------------------------------------

def _temperature(ctx: StageContext, settings: dict, gpt, docs: list[str], smol) -> dict:
    """Samples of our GPT at each temperature, for prompts cut from the held-out speeches; their distinct-2
    and (when SmolLM2 is here) their bits/char under SmolLM2; two claims: T max vs T = 0."""
    model, tok, _ = gpt
    temps = settings["temperatures"]
    prompts = prompts_from(docs, settings["prompts"])
    res = temperature_study(model, tok, prompts, temps, judge=smol, samples_per_prompt=settings["samples_per_prompt"],
                            max_new_tokens=settings["sample_tokens"], seed=ctx.seed)
    rows, summary = res["rows"], []
    for T in temps:
        s = {"temperature": T, "samples": sum(r["temperature"] == T for r in rows)}
        for key in ("distinct_2", "judge_bits_per_char"):
            vals = list(per_prompt(rows, T, key).values())
            if vals:
                s[key], s[f"{key}_lo"], s[f"{key}_hi"] = bootstrap(vals, seed=ctx.seed)
        s["example"] = next(r["text"] for r in rows if r["temperature"] == T)
        summary.append(s)
    plot_study(summary, ctx.dir / "temperature.png")
    claims = temperature_claims(rows, temps[0], temps[-1], seed=ctx.seed)
    return {"rows": rows, "summary": summary, "greedy_check": res["greedy_check"], "claims": claims}


def temperature_claims(rows: list[dict], lo: float, hi: float, seed: int = 0, min_prompts: int = 5) -> dict:
    """Both temperature claims from the study's rows: the per-prompt mean at T=hi minus at T=lo, > 0, with a
    paired bootstrap over the prompts that have both; not measured with fewer than `min_prompts` of them
    (e.g. no SmolLM2 on this machine: no judge numbers at all)."""
    claims = {}
    for cid, key, what in (("lm-temperature-diversity", "distinct_2", "distinct-2"),
                           ("lm-temperature-likelihood", "judge_bits_per_char", "SmolLM2 bits/char")):
        a, b = per_prompt(rows, lo, key), per_prompt(rows, hi, key)
        both = sorted(set(a) & set(b))
        if len(both) < min_prompts:
            claims[cid] = (f"not measured: {what} for {len(both)} prompts at both temperatures "
                           f"(< {min_prompts})", None)
            continue
        x, y = [a[k] for k in both], [b[k] for k in both]
        claims[cid] = decide(cid, f"{what} at T={hi:g} − at T={lo:g}", *paired_bootstrap(x, y, seed=seed),
                             threshold=0.0, uncertainty=f"paired bootstrap over {len(both)} prompts",
                             evidence=f"mean {sum(x) / len(x):.3f} at T={lo:g}, {sum(y) / len(y):.3f} at T={hi:g}")
    return claims


# --- claims ---------------------------------------------------------------------------------------------

def _ladder_claim(steps: list[dict], joint: tuple[float, float, float], n_docs: int):
    names = {"unigram": "unigram", "bigram": "bigram", "lstm": "LSTM", "gpt": "GPT", "smollm2": "SmolLM2"}
    name = lambda k: names.get(k, f"Kneser-Ney {k[2:]}-gram" if k.startswith("kn") else k)  # noqa: E731
    parts = [f"{name(s['from'])} {s['bpc_from']:.3f} → {name(s['to'])} {s['bpc_to']:.3f}: {s['gap']:+.3f} "
             f"[{s['lo']:+.3f}, {s['hi']:+.3f}]" for s in steps]
    weakest = min(steps, key=lambda s: s["gap"])
    return decide("lm-ppl-ladder", "smallest step down the ladder (bits/char)", *joint, threshold=0.0,
                  uncertainty=f"bootstrap over {n_docs} held-out speeches, all models resampled together",
                  evidence=f"weakest step {name(weakest['from'])} → {name(weakest['to'])}; steps (drop in "
                           f"bits/char [95% interval]): " + "; ".join(parts))


def _arch_claim(arch: list[dict], tol: float) -> tuple[str, bool]:
    worst = max(arch, key=lambda r: abs(r["diff %"]))
    held = all(r["within tolerance"] for r in arch)
    return (f"{len(arch)} architectures built on the meta device; largest difference {worst['model']} "
            f"{worst['diff %']:+.2f}% ({worst['computed']} vs {worst['published']}); GPT-3 175B "
            f"{next(r['computed'] for r in arch if r['model'] == 'GPT-3 175B')}; tolerance {tol:.0%}", held)


# --- curves, timings ------------------------------------------------------------------------------------

def _plain(m: dict) -> dict:
    return {k: v for k, v in m.items() if isinstance(v, (int, float, str, bool, type(None)))}


def _recipe_seconds(runs: dict) -> dict[str, float]:
    return {"ngram fit": runs["ngram"][1]["fit_seconds"], "lstm train": runs["lstm"][1]["train_seconds"],
            "gpt train": runs["clm"][1]["train_seconds"]}



def _plot_curves(ctx: StageContext, runs: dict, rungs: list[dict], path: Path) -> None:
    """Validation loss of the LSTM and the GPT in bits/char against training tokens, with the n-gram rungs."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4))
    for key, run, label in (("lstm", "lstm", "LSTM"), ("gpt", "clm", "GPT")):
        m = runs[run][1]
        per_char = 1 / m["val_chars_per_token"] / math.log(2)   # nats/token -> bits/char (validation text)
        ev = [(r["tokens_seen"], r["eval_loss"] * per_char)
              for r in read_log(ctx.run_dir(run) / "log.jsonl") if "eval_loss" in r and r.get("tokens_seen")]
        if ev:
            ax.plot(*zip(*ev), marker="o", label=f"{label}, validation")
    for r in rungs:
        if r["key"] in ("bigram",) or r["key"].startswith("kn"):
            ax.axhline(r["bits/char"], linestyle="--", color="grey", linewidth=1)
            ax.text(ax.get_xlim()[0], r["bits/char"], f" {r['model'].split(' (')[0]} (test)", fontsize=8,
                    va="bottom", color="grey")
    ax.set(xlabel="training tokens", ylabel="bits per character",
           title="Where the neural models are: validation bits/char while training")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    save_figure(fig, path)


# --- the section ----------------------------------------------------------------------------------------

def _with_interval(summary: dict, key: str) -> str | None:
    """"mean [lo, hi]" of one temperature's `key`, or None where it was not measured."""
    if summary.get(key) is None:
        return None
    return f"{summary[key]:.3f} [{summary[f'{key}_lo']:.3f}, {summary[f'{key}_hi']:.3f}]"


def _markdown(ctx, rows, steps, metrics, study, arch_md, demo, runs) -> str:
    show = [{k: v for k, v in r.items() if k not in ("key", "document_bits")} for r in rows]
    step_rows = [{"step": f"{s['from']} → {s['to']}", "bits/char drop": s["gap"], "95% interval":
                  f"[{s['lo']:.3f}, {s['hi']:.3f}]"} for s in steps]
    lstm, gpt = runs["lstm"][1], runs["clm"][1]
    g = study["greedy_check"]
    lines = [
        f"Corpus: **{metrics['corpus']}** (Shakespeare's plays, one speech per document, split 80/10/10 by speech). "
        f"Every model trains on the training split and is scored on the same {metrics['documents']} held-out "
        f"speeches ({metrics['test_chars']:,} characters), each from a start-of-text state. **Bits per character** "
        "= total -log2 P over every character of the held-out text (speeches and their newlines); word models pay "
        "for unknown words with a character model. SmolLM2 reads "
        f"{metrics['smol_context_chars']:,} characters of training speeches before each held-out speech (a "
        "prompt, not scored): it has never been told what text this is, while every other model was trained on "
        "nothing else.", "",
        md_table(show, digits=3),
        f"LSTM and GPT share one {lstm['vocab_size']:,}-token byte-level BPE; LSTM: {lstm['steps']} steps, "
        f"{lstm['tokens_seen']:,} tokens in {lstm['train_seconds']:.0f} s; GPT: {gpt['steps']} steps, "
        f"{gpt['tokens_seen']:,} tokens in {gpt['train_seconds']:.0f} s (budget `{ctx.budget}`).", "",
        "**The ladder, step by step** (drop in bits/char from one rung to the next, with a 95% bootstrap interval "
        "over held-out speeches):", "", md_table(step_rows, digits=3),
        *figure(ctx.rel(ctx.dir / "training_curves.png"), "training curves",
                "Validation loss of the LSTM and the GPT while they train, in bits/char, against the n-gram models' "
                "level on the test text: a curve still falling at its end would go lower with more training."),
        f"`pipeline('text-generation')` with our GPT (T=0.8, top-k 50, top-p 0.95): \"ROMEO:{demo}\"", "",
        "**Temperature** (our GPT, prompts cut from held-out speeches): each continuation's distinct-2 (distinct "
        "word bigrams / bigrams) and its bits/char under SmolLM2 given the prompt; mean over prompts with a 95% "
        f"bootstrap interval. T=0 is greedy decoding; sampled at T={g['temperature']:g}, {g['identical']} of "
        f"{g['prompts']} continuations equal greedy decoding's.", "",
    ]
    trows = [{"T": s["temperature"], "samples": s["samples"], "distinct-2": _with_interval(s, "distinct_2"),
              "SmolLM2 bits/char": _with_interval(s, "judge_bits_per_char"), "example": s["example"][:70]}
             for s in study["summary"]]
    lines += [md_table(trows, digits=3),
              *figure(ctx.rel(ctx.dir / "temperature.png"), "temperature study",
                      "Left: samples repeat themselves less as T rises; right: SmolLM2 finds them less likely."),
              "**Parameter counts** built on the meta device vs the published numbers:", "", arch_md,
              "Timings (s): " + ", ".join(f"{k} {v}" for k, v in metrics["seconds"].items()), ""]
    return "\n".join(lines)
