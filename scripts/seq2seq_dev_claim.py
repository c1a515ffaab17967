"""`s2s-attention-long`'s statistic on the VALIDATION sentences, for choosing a default at development seeds.

The stage decides the claim on the test sentences; a change of default is chosen before that, on the validation
sentences of 21+ source words, at development seeds (docs/CLAIMS.md). Train the four c = 8 models of a seed with
the lever under test, e.g.

    hfrepro seq2seq --config recipes/configs/seq2seq/default.yaml --arch rnn,rnn_attention --context_size 8 \\
        --sweep_context_sizes "" --seed 3 --threads 1 --output_dir DEV/s3-ko [the lever's options]
    hfrepro seq2seq --config recipes/configs/seq2seq/en-fr/default.yaml ... --output_dir DEV/s3-fr

then `python scripts/seq2seq_dev_claim.py 3 DEV [--guard N]`: both models of each pair translate the validation
sentences greedily, and the claim's own rule (`attention_decision`: the smallest of the four attention - plain
gaps, chrF and BLEU on en-ko and en-fr, 2,000 paired bootstrap resamples, rng seed 0) gives one JSON line.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

PAIRS = (("en-ko", "lo-help-en-ko", "ko"), ("en-fr", "lo-help-en-fr", "fr"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("seed", type=int)
    ap.add_argument("root", type=Path, help="holds s<seed>-ko/ and s<seed>-fr/, each with rnn/ and rnn_attention/")
    ap.add_argument("--guard", type=int, default=0, help="no_repeat_ngram_size of the decoding (0: plain greedy)")
    ap.add_argument("--size", type=int, default=8, help="the models' fixed-vector size, for the statistic's label")
    a = ap.parse_args()

    import numpy as np
    import torch

    from hfrepro.claims import N_BOOT
    from hfrepro.reproduce.seq2seq import attention_decision
    from hfrepro.seq2seq import report, scoring
    from hfrepro.seq2seq.data import LONG_FROM, load_pairs, n_words
    from hfrepro.seq2seq.decode import load_model, translate

    torch.set_num_threads(1)
    gaps, lengths, scores = {}, {}, {}
    for pair, dataset, lang in PAIRS:
        val = load_pairs(dataset).splits["validation"]
        long = [(s, t) for s, t in zip(val["source"], val["target"]) if n_words(s) >= LONG_FROM]
        src, ref = [s for s, _ in long], [t for _, t in long]
        tokenize, stats = scoring.default_tokenize(lang), {}
        for arch in ("rnn", "rnn_attention"):
            model, tok = load_model(a.root / f"s{a.seed}-{lang}" / arch)
            hyp = translate(model, tok, src, no_repeat_ngram_size=a.guard)
            stats[arch] = scoring.sentence_stats(hyp, ref, tokenize)
            whole = scoring.subset_score(stats[arch], range(len(src)), tokenize)  # sacrebleu's corpus scores
            scores[f"{pair} {arch}"] = {k: round(whole[k], 2) for k in ("bleu", "chrf")}
            lengths[f"{pair} {arch}"] = round(sum(map(len, hyp)) / sum(map(len, ref)), 2)  # characters
        gaps[pair] = report.gaps_on(src, stats["rnn"], stats["rnn_attention"], list(range(len(src))), tokenize,
                                    np.random.default_rng(0), N_BOOT)
    d = attention_decision(gaps, a.size, LONG_FROM)
    print(json.dumps({"seed": a.seed, "verdict": d.verdict, "estimate": d.estimate, "lo": d.lo, "hi": d.hi,
                      "gaps": {p: {m: round(float(g[m][0]), 2) for m in ("chrf", "bleu")} | {"n": g["n"]}
                               for p, g in gaps.items()},
                      "long_scores": scores, "long_output_over_reference_chars": lengths}))


if __name__ == "__main__":
    main()
