"""The BERT chapter: pre-training (masked LM + next-sentence prediction), "BERT sees both sides", fine-tuning with
a task head, and contextual vs static word vectors.

    data.py      the text as sentences of documents, BERT's sentence-pair examples (NSP), blocks, classification sets
    model.py     BERT's pre-training heads with the masked-LM head run only at the masked positions (Google's BERT
                 did so), on BERT's blocks (learned absolute positions) or RoFormer's (rotary positions)
    mlm.py       masked-token accuracy and the most-frequent-token baseline; a <mask> that takes the space before it
    evaluate.py  per-position and per-pair results on held-out text: BERT vs a left-to-right twin, NSP accuracy
    senses.py    the same word in two senses: cosine of contextual vectors (BERT) vs static ones (word2vec)
    claims.py    the chapter's claims decided by the protocol (hfrepro.claims)

Recipes: `recipes/mlm.py` (pre-training; `--nsp`, `--positions`, and `--causal` for the left-to-right twin) and
`recipes/classify.py` (a sequence-classification head on a pre-trained or a randomly initialised encoder).
"""
