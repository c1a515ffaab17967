"""Stage 3: translation with a GRU encoder-decoder, the same with Bahdanau attention, and a small Transformer.

    data.py      parallel pairs (embedded LibreOffice help, or a user TSV/CSV/JSONL), shared BPE, length buckets
    rnn.py       the GRU encoder-decoder with/without additive attention (plain torch, a PreTrainedModel),
                 greedy and beam-search decoding
    train.py     arguments, the GRU training loop, Seq2SeqTrainer for the Transformer, evaluation, model cards
    decode.py    load a saved model, translate (greedy / beam), attention weights of one sentence
    scoring.py   BLEU/chrF via hfrepro/metrics/bleu (an `evaluate` module around sacrebleu), by length, bootstrap
    report.py    results table, BLEU-by-length plot, attention heat map, the claim check
    stage.py     `hfrepro reproduce` stage (claim s2s-attention-long)
    cli.py       `hfrepro translate`
"""
