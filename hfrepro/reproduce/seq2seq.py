"""Stage 3 of `hfrepro reproduce`: GRU encoder-decoder vs GRU + Bahdanau attention vs Transformer on the
embedded English->Korean LibreOffice help pairs; BLEU/chrF by source length; claim `s2s-attention-long`.

The stage is one run of `recipes/seq2seq.py` at the budget's config (recipes/configs/seq2seq/<budget>.yaml):
    tiny     CI smoke run (<= 45 s): tiny models, 60 updates, 300 test pairs; the claim is measured, not judged.
    default  <= 150 s of training on 2 CPU cores: 0.8-1.0M-parameter models, 500 updates of 32 pairs, greedy
             decoding of the whole test split (1,823 pairs).
    full     a GPU machine: larger models, 20,000 updates of 64 pairs, beam 4 (time not measured here).
"""

from __future__ import annotations

from hfrepro.claims import Claim, StageContext, StageResult
from hfrepro.config import load_yaml
from hfrepro.fsutil import read_json
from hfrepro.report import md_table
from hfrepro.reproduce.plan import RecipeRun
from hfrepro.seq2seq import report

CLAIMS = [Claim("s2s-attention-long",
                "Attention holds BLEU up on long sentences where plain seq2seq falls (Bahdanau et al. 2014)")]
RUNS = [RecipeRun("seq2seq", name="run")]


def section(ctx: StageContext) -> StageResult:
    root = ctx.run_dir("run")
    summary, config = read_json(root / "metrics.json"), load_yaml(root / "config.yaml")
    results = {a: read_json(root / a / "metrics.json") for a in summary["archs"]}
    claim = summary["claim"]
    held, evidence = claim.get("held"), claim["evidence"]
    if ctx.budget == "tiny":
        held, evidence = None, f"tiny budget ({config['max_steps']} updates): not judged; measured: {evidence}"
    first = next(iter(results.values()))
    beams = first["num_beams"]
    md = [f"English->Korean LibreOffice help pairs (`lo-help-en-ko`): {first['train_pairs']:,} training pairs of at "
          f"most {config['max_train_tokens']} tokens a side, the whole held-out test split "
          f"({first['test_sentences']:,} pairs) unless the budget says otherwise. Each model: "
          f"{config['max_steps']} updates of {first['batch_size']} pairs, shared BPE vocabulary of "
          f"{config['vocab_size']:,}, {'greedy decoding' if beams == 1 else f'beam {beams}'}. BLEU tokenisation "
          f"`{first['bleu_tokenize']}` (Hangul syllables; ko-mecab needs MeCab, not installed), chrF beside it.", "",
          md_table(report.results_rows(results), digits=2),
          f"BLEU signature: `{first['bleu_signature']}`", "",
          "BLEU and chrF by source length (words), with the number of test sentences in each bucket:", "",
          md_table(report.length_rows(results), digits=2),
          f"![BLEU by source length]({ctx.rel(root / 'bleu_by_length.png')})", "",
          report.claim_sentence(claim), ""]
    if summary.get("heatmap"):
        h = summary["heatmap"]
        md += [f"Attention weights of the GRU + attention model for one test sentence: *{h['source']}* -> "
               f"*{h['translation']}*", "", f"![attention heat map]({ctx.rel(root / 'attention.png')})", ""]
    md.append(f"Full results: [{ctx.rel(root / 'results.md')}]({ctx.rel(root / 'results.md')}). Reproduce with "
              f"`hfrepro seq2seq --budget {ctx.budget}` (recipes/seq2seq.py); translate with `hfrepro translate "
              f"--model {ctx.rel(root / 'rnn_attention')} \"Click OK.\"`.")
    metrics = {f"{a}_{k}": m[k] for a, m in results.items()
               for k in ("bleu", "chrf", "parameters", "train_seconds", "translate_seconds")}
    metrics["by_length"] = {a: m["by_length"] for a, m in results.items()}
    metrics["claim"] = claim
    return StageResult(markdown="\n".join(md), claims={"s2s-attention-long": (evidence, held)}, metrics=metrics)
