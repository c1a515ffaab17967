"""Stage 3 of `hfrepro reproduce`: GRU encoder-decoder vs GRU + Bahdanau attention vs Transformer on the
embedded English->Korean LibreOffice help pairs; BLEU/chrF by source length; claim `s2s-attention-long`.

Budgets (same data, tokenizer, updates and batch size for the three models within a budget):
    tiny     CI smoke run (<= 45 s): tiny models, 60 updates, 300 test pairs; the claim is not judged.
    default  <= 150 s on 2 CPU cores: 0.8-1.0M-parameter models, 500 updates of 32 pairs (about 1.2 epochs, no
             dropout: far too short to overfit), greedy decoding of the whole test split (1,823 pairs).
    full     a GPU machine: larger models, 20,000 updates of 64 pairs, beam 4 (time not measured here).
"""

from __future__ import annotations

from hfrepro.claims import StageContext, StageResult

COMMON = dict(dataset="lo-help-en-ko", seed=0, progress=False, overwrite=True, max_train_tokens=64)
BUDGETS = {
    "tiny": dict(vocab_size=1000, tokenizer_examples=3000, embed_dim=32, hidden_size=64, d_model=64, layers=1,
                 heads=2, ffn_dim=128, dropout=0.0, learning_rate=6e-3, transformer_learning_rate=2e-3,
                 max_steps=60, batch_size=32, warmup_steps=10, save_steps=60, logging_steps=20, num_beams=1,
                 also_greedy=False, max_eval_examples=300),
    "default": dict(vocab_size=3000, embed_dim=64, hidden_size=128, d_model=128, layers=2, heads=4, ffn_dim=256,
                    dropout=0.0, learning_rate=6e-3, transformer_learning_rate=2e-3, max_steps=500, batch_size=32,
                    warmup_steps=50, save_steps=250, logging_steps=50, num_beams=1, also_greedy=False,
                    max_eval_examples=0),
    "full": dict(vocab_size=8000, embed_dim=256, hidden_size=512, d_model=512, layers=6, heads=8, ffn_dim=2048,
                 dropout=0.1, learning_rate=1e-3, transformer_learning_rate=5e-4, max_steps=20000, batch_size=64,
                 warmup_steps=1000, save_steps=2000, logging_steps=200, num_beams=4, also_greedy=True,
                 max_eval_examples=0, max_train_tokens=128),
}


def arguments(budget: str, out_dir, seed: int = 0):
    from hfrepro.seq2seq.train import Seq2SeqArguments
    kw = {**COMMON, **BUDGETS[budget], "seed": seed}
    return Seq2SeqArguments(output_dir=str(out_dir), **kw)


def reproduce(ctx: StageContext) -> StageResult:
    from hfrepro.report import md_table
    from hfrepro.seq2seq import report, train

    args = arguments(ctx.budget, ctx.dir / "run", ctx.seed)
    args.threads = ctx.threads
    summary = train.run(args)
    root = ctx.dir / "run"
    results = {a: train_metrics(root, a) for a in summary["archs"]}
    claim = summary["claim"]
    held = claim.get("held")
    evidence = claim["evidence"]
    if ctx.budget == "tiny":
        held, evidence = None, f"tiny budget ({args.max_steps} updates): not judged; measured: {evidence}"
    first = next(iter(results.values()))
    md = [f"English->Korean LibreOffice help pairs (`lo-help-en-ko`): {first['train_pairs']:,} training pairs of at "
          f"most {args.max_train_tokens} tokens a side, the whole held-out test split "
          f"({first['test_sentences']:,} pairs) unless the budget says otherwise. Each model: "
          f"{args.max_steps} updates of {args.batch_size} pairs, shared BPE vocabulary of {args.vocab_size:,}, "
          f"{'greedy decoding' if args.num_beams == 1 else f'beam {args.num_beams}'}. BLEU tokenisation "
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
              f"`hfrepro seq2seq` (recipes/seq2seq.py); translate with `hfrepro translate --model "
              f"{ctx.rel(root / 'rnn_attention')} \"Click OK.\"`.")
    metrics = {f"{a}_{k}": m[k] for a, m in results.items()
               for k in ("bleu", "chrf", "parameters", "train_seconds", "translate_seconds")}
    metrics["by_length"] = {a: m["by_length"] for a, m in results.items()}
    metrics["claim"] = claim
    return StageResult(markdown="\n".join(md), claims={"s2s-attention-long": (evidence, held)}, metrics=metrics)


def train_metrics(root, arch: str) -> dict:
    from hfrepro.training import RunDir
    return RunDir(root / arch).metrics()
