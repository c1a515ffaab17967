"""Stage 3 of `hfrepro reproduce`: a GRU encoder-decoder with and without attention (and a Transformer) on the
embedded LibreOffice help pairs, English->Korean and English->French; BLEU/chrF by source length; the sweep of the
fixed vector's size; claim `s2s-attention-long`.

Two runs of `recipes/seq2seq.py`, each at the budget's config:
    run   recipes/configs/seq2seq/<budget>.yaml        en->ko: rnn, rnn_attention, transformer, and the sweep
    fr    recipes/configs/seq2seq/en-fr/<budget>.yaml  en->fr: rnn, rnn_attention, and the sweep
The Transformer chapter reads `run/transformer` (an attention map of the translator).

The claim, fixed before the runs that decide it: with the smallest fixed vector of the sweep, the attention model
beats the plain one on long test sentences (21+ source words) in chrF and in BLEU, on en->ko and on en->fr. The
statistic is the smallest of those four attention − plain gaps; its 95% interval comes from a paired bootstrap
over the long sentences (each language pair's sentences resampled on their own, one resample shared by both
metrics and both models; the interval of the minimum over the four). REPRODUCED when the interval lies above 0.
"""

from __future__ import annotations

import numpy as np

from hfrepro.claims import LEVEL, N_BOOT, Claim, Decision, StageContext, StageResult, decide
from hfrepro.config import load_yaml
from hfrepro.fsutil import read_json
from hfrepro.report import figure, md_table
from hfrepro.reproduce.plan import RecipeRun
from hfrepro.seq2seq import report, scoring

CLAIM = "s2s-attention-long"
CLAIMS = [Claim(CLAIM, "Attention holds translation up on long sentences where one fixed vector is too small to "
                       "carry them (Bahdanau et al. 2014)")]
RUNS = [RecipeRun("seq2seq", name="run"), RecipeRun("seq2seq", name="fr", config="seq2seq/en-fr")]
NAMES = {"run": "en-ko", "fr": "en-fr"}


def attention_decision(gaps: dict, size: int, long_from: int, level: float = LEVEL, full: dict | None = None
                       ) -> Decision:
    """The claim from each language pair's attention − plain gaps on long sentences at the smallest fixed vector:
    {pair: {"n", "bleu": (gap, samples), "chrf": (gap, samples)}} (report.long_gaps; the samples of one pair share
    their resamples). The statistic is the smallest of the gaps, its interval the bootstrap interval of that
    minimum. `full`: the same gaps at the main models' size, for the evidence only."""
    cells = [(pair, m) for pair in gaps for m in ("chrf", "bleu")]
    estimate = min(gaps[p][m][0] for p, m in cells)
    samples = np.min(np.stack([np.asarray(gaps[p][m][1]) for p, m in cells]), axis=0)
    lo, hi = scoring.interval(samples, level)
    name = {"chrf": "chrF", "bleu": "BLEU"}
    parts = [f"{p} (n={gaps[p]['n']}): " + ", ".join(
        f"{name[m]} {report.gap_text([gaps[p][m][0], *scoring.interval(gaps[p][m][1], level)])}"
        for m in ("chrf", "bleu")) for p in gaps]
    evidence = f"attention − plain with a {size}-number fixed vector: " + "; ".join(parts)
    if full:
        evidence += "; with the full-size vector: " + "; ".join(
            f"{p} chrF {report.gap_text(v['chrf'])}, BLEU {report.gap_text(v['bleu'])}" for p, v in full.items())
    return decide(CLAIM, f"smallest attention − plain gap on {long_from}+ word sources (chrF and BLEU, "
                         f"{' and '.join(gaps)}), fixed vector of {size}", estimate, lo, hi, threshold=0.0,
                  uncertainty=f"paired bootstrap over the long test sentences, {len(samples):,} resamples",
                  evidence=evidence)


def decide_claim(ctx: StageContext, runs: dict) -> Decision | tuple[str, None]:
    """Read both runs' test translations and decide the claim (not judged at the tiny budget)."""
    sizes = {name: min((r["context_size"] for r in s["sweep"] if r["name"] != r["arch"]), default=None)
             for name, s in runs.items()}
    if ctx.budget == "tiny":
        return f"tiny budget: not judged (measured: {'; '.join(_check_text(s) for s in runs.values())})", None
    if len(runs) < len(RUNS) or len(set(sizes.values())) != 1 or None in sizes.values():
        return f"needs both language pairs swept to the same smallest fixed vector (got {sizes})", None
    size, rng = next(iter(sizes.values())), np.random.default_rng(0)
    gaps, full = {}, {}
    for name, s in runs.items():
        root, tok, long_from = ctx.run_dir(name), s["tokenize"], s["long_from_words"]
        g = report.long_gaps(root, f"rnn-c{size}", f"rnn_attention-c{size}", tok, long_from, rng, N_BOOT)
        if g is None:
            return f"{NAMES[name]}: too few long test sentences to measure", None
        gaps[NAMES[name]] = g
        if s.get("long_check", {}).get("full_chrf"):
            full[NAMES[name]] = {"chrf": s["long_check"]["full_chrf"], "bleu": s["long_check"]["full_bleu"]}
    return attention_decision(gaps, size, long_from, full=full)


def _check_text(summary: dict) -> str:
    c = summary.get("long_check")
    if not c:
        return f"{summary.get('language_pair')}: no long-sentence gap"
    return (f"{summary['language_pair']} c={c['size']}: chrF {report.gap_text(c['chrf'])}, "
            f"BLEU {report.gap_text(c['bleu'])}")


def section(ctx: StageContext) -> StageResult:
    runs = {}
    for r in RUNS:
        root = ctx.run_dir(r.folder)
        summary = read_json(root / "metrics.json")
        summary["results"] = {n: read_json(root / n / "metrics.json") for n in summary["models"]}
        summary["config"] = load_yaml(root / "config.yaml")
        summary["tokenize"] = next(iter(summary["results"].values()))["bleu_tokenize"]
        runs[r.folder] = summary
    decision = decide_claim(ctx, runs)
    sweeps = {NAMES[n]: s["sweep"] for n, s in runs.items() if len({r["context_size"] for r in s["sweep"]}) > 1}
    if sweeps:
        report.plot_sweep(sweeps, ctx.dir / "sweep.png", "Long sentences (21+ words) as the fixed vector shrinks: "
                          "the plain model falls, the attention model holds")
    md = _markdown(ctx, runs, decision, bool(sweeps))
    metrics = {NAMES[n]: {"models": {m: {k: r.get(k) for k in ("bleu", "chrf", "parameters", "context_size",
                                                                 "val_loss", "train_seconds", "translate_seconds")}
                                     for m, r in s["results"].items()},
                          "bucket_gaps": s.get("bucket_gaps"), "sweep": s.get("sweep"),
                          "long_check": s.get("long_check")}
               for n, s in runs.items()}
    return StageResult(markdown=md, claims={CLAIM: decision}, metrics=metrics)


def _markdown(ctx: StageContext, runs: dict, decision, swept: bool) -> str:
    ko = runs["run"]
    first, cfg = next(iter(ko["results"].values())), ko["config"]
    md = [f"LibreOffice help pairs, English->Korean (`lo-help-en-ko`) and English->French (`lo-help-en-fr`). Every "
          f"GRU model: {cfg['max_steps']} updates of {first['batch_size']} pairs{_sweep_steps(cfg)}, a BPE "
          f"vocabulary of {cfg['vocab_size']:,} per language pair, "
          f"{_decoding(first)} of the whole test split. "
          "BLEU on Hangul syllables for Korean (`tok:char`), `13a` for French; chrF beside it. The attention model is "
          f"the plain one plus an attention read of every encoder state, "
          f"{report.attention_order(cfg.get('attention_read', 'after'))}; `c` is the size of the fixed "
          "vector, the plain model's only view of the source.", ""]
    for name, s in runs.items():
        root = ctx.run_dir(name)
        main = {n: m for n, m in s["results"].items() if n == m["arch"]}
        md += [f"### {NAMES[name]}", "", md_table(report.results_rows(s["results"]), digits=2),
               f"BLEU signature: `{first['bleu_signature'] if name == 'run' else _sig(s)}`", "",
               *figure(ctx.rel(root / "curves.png"), f"validation loss, {NAMES[name]}", report.CAPTIONS["curves"]),
               "BLEU and chrF by source length (words), attention − plain with its 95% paired bootstrap interval:", "",
               md_table(report.length_rows(main, s.get("bucket_gaps")), digits=2),
               *figure(ctx.rel(root / "bleu_by_length.png"), f"BLEU by source length, {NAMES[name]}",
                       report.CAPTIONS["bleu_by_length"])]
        if len({r["context_size"] for r in s["sweep"]}) > 1:
            md += ["The fixed vector's size (long = 21+ source words):", "",
                   md_table(report.sweep_table(s["sweep"]), digits=2)]
    if swept:
        md += figure(ctx.rel(ctx.dir / "sweep.png"), "the sweep", report.CAPTIONS["sweep"])
    if isinstance(decision, Decision):
        md += [f"**{CLAIM}: {decision.verdict}.** {decision.summary()}", ""]
    if ko.get("heatmap"):
        h = ko["heatmap"]
        md += [f"Attention weights of the GRU + attention model for one test sentence: *{h['source']}* -> "
               f"*{h['translation']}*", "",
               *figure(ctx.rel(ctx.run_dir("run") / "attention.png"), "attention heat map",
                       report.CAPTIONS["attention"])]
    ko_md, fr_md = ctx.rel(ctx.run_dir("run") / "results.md"), ctx.rel(ctx.run_dir("fr") / "results.md")
    md.append(f"Full results: [{ko_md}]({ko_md}), [{fr_md}]({fr_md}). Reproduce with `hfrepro seq2seq --budget "
              f"{ctx.budget}` and `hfrepro seq2seq --config seq2seq/en-fr --budget {ctx.budget}`; translate with "
              f"`hfrepro translate --model {ctx.rel(ctx.run_dir('run') / 'rnn_attention')} \"Click OK.\"`.")
    return "\n".join(md)


def _sig(summary: dict) -> str:
    return next(iter(summary["results"].values()))["bleu_signature"]


def _sweep_steps(cfg: dict) -> str:
    steps = cfg.get("sweep_max_steps") or cfg["max_steps"]
    return "" if steps == cfg["max_steps"] else f" ({steps} for the sweep's smaller fixed vectors)"


def _decoding(first: dict) -> str:
    beams, guard = first["num_beams"], first.get("no_repeat_ngram_size")
    way = "greedy decoding" if beams == 1 else f"beam {beams}"
    return f"{way} (no {guard}-gram of output tokens twice: a loop guard)" if guard else way
