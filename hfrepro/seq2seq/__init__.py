"""Stage 3: translation with a GRU encoder-decoder, the same with Bahdanau attention, and a small Transformer.

The reproduction itself is `recipes/seq2seq.py`; this package holds what it needs that the ecosystem lacks:

    data.py      parallel pairs (embedded LibreOffice help, or a user TSV/CSV/JSONL), shared BPE, length buckets
    rnn.py       the GRU encoder-decoder with/without additive attention (a PreTrainedModel returning .loss, so
                 the Trainer trains it), greedy and beam-search decoding
    decode.py    load a saved model, translate (greedy / beam), attention weights of one sentence, source check
    scoring.py   BLEU/chrF via hfrepro/metrics/bleu (an `evaluate` module around sacrebleu), by length, bootstrap
    report.py    results table, BLEU-by-length plot, attention heat-map plot, the claim check
    cli.py       `hfrepro translate`
"""
